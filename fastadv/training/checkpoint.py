"""Checkpoints of a training run: one format for every trainer, written atomically, and one way
to resume.

A checkpoint is one safetensors file (nothing pickled): the model's state ("model.*"), the
optimiser's per-parameter state ("optimizer.<i>.*"), torch's random-number states ("random.*")
and, in its metadata, the progress (steps or epochs done), the settings that define the run and
the trainer's own small state (e.g. a GradScaler's). It is written to a temporary file in the
same folder, flushed to disk and renamed over the old one, so a run killed at any moment leaves
the old checkpoint or the new one, never a mix; a file cut short some other way is refused with
an error that says so.

Resuming is the same for every trainer: run the same command again. It goes on from the
checkpoint if there is one, with the random-number state the checkpoint saved, so a stopped and
resumed run equals an uninterrupted one. The settings that define the run must be the
checkpoint's (its length, the steps or epochs, may change); `--stop-after N` stops a run after
its checkpoint at N.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fastadv.errors import UsageError

FORMAT = "fastadv-checkpoint-1"


class CheckpointError(UsageError):
    """A checkpoint that cannot be resumed: cut short, of another format or another run."""


def add_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
    """The options of a resumable run; `unit` is what its progress counts ("step", "epoch")."""
    parser.add_argument(
        "--stop-after", type=int, metavar=unit.upper(),
        help=f"stop after the checkpoint at this {unit}; the same command without it goes on",
    )  # fmt: skip
    parser.add_argument(
        "--reseed-on-resume", action="store_true",
        help="on resume, restart the random numbers (dropout) from --seed instead of restoring "
        "the checkpoint's: how the trainers resumed when the shipped weights were made",
    )  # fmt: skip


def save(
    path: Path, model: nn.Module, optimizer, progress: int, settings: dict, extra=None
) -> None:
    """Writes the checkpoint of a run at `progress` (steps or epochs done) atomically."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if value is not None:
                tensors[f"optimizer.{i}.{name}"] = torch.as_tensor(value).detach().cpu().clone()
    tensors["random.cpu"] = torch.get_rng_state()
    if torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"random.cuda.{i}"] = state
    metadata = {
        "format": FORMAT,
        "progress": str(progress),
        "settings": json.dumps(settings),
        "extra": json.dumps(extra or {}),
    }
    atomic_write(Path(path), save(tensors, metadata))


def atomic_write(path: Path, data: bytes) -> None:
    """`path` holds `data`, or what it held before: never a part (temporary file in the same
    folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's file is private; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself reaches the disk
    finally:
        os.close(folder)


@dataclass
class Checkpoint:
    """A checkpoint read back and checked, to be restored into a model and its optimiser."""

    path: Path
    progress: int
    extra: dict
    tensors: dict


def load(path: Path, settings: dict) -> Checkpoint | None:
    """The checkpoint at `path` (None when there is none), checked before any work: a
    CheckpointError when it is cut short, of another format, or of a run whose settings are not
    `settings`."""
    path = Path(path)
    if not path.exists():
        return None
    tensors, metadata = _read(path)
    _check_settings(path, json.loads(metadata["settings"]), settings)
    return Checkpoint(path, int(metadata["progress"]), json.loads(metadata["extra"]), tensors)


def restore(saved: Checkpoint | None, model: nn.Module, optimizer, *, reseed=False) -> int:
    """Loads `saved` into model and optimizer and returns its progress (0 for None). Call it
    last before the training loop: it also restores torch's random-number state, unless
    `reseed` keeps the state the command's own seeding gave."""
    if saved is None:
        return 0
    tensors = saved.tensors
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    groups = optimizer.state_dict()["param_groups"]  # the command's; lr is set every step
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    if not reseed:
        torch.set_rng_state(tensors["random.cpu"])
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("random.cuda.")]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
    print(f"resuming from {saved.path} ({saved.progress} done)")
    return saved.progress


def _read(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {k: file.get_tensor(k) for k in file.keys()}
    except Exception as error:  # safetensors raises its own error type for damaged files
        raise CheckpointError(
            f"checkpoint {path} is cut short or damaged ({error}); delete it to start the run over"
        ) from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a {FORMAT} file (an older trainer's checkpoint?); delete it to start "
            "the run over"
        )
    return tensors, metadata


def _check_settings(path: Path, saved: dict, current: dict) -> None:
    current = json.loads(json.dumps(current))  # tuples as the checkpoint holds them: lists
    differ = [
        f"{k} {saved.get(k)!r} there, {current.get(k)!r} here"
        for k in sorted(set(saved) | set(current))
        if saved.get(k) != current.get(k)
    ]
    if differ:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run ({'; '.join(differ)}); give the same "
            "settings to resume it, or another output path"
        )
