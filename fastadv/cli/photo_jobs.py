"""What the photo commands (hide, protect) share: their common options; the checks made before
any work (the output folder, every photo read once and planned with its working size and
output file, the memory each attack will need); the attack on a photo's working copy with a
progress bar, the full-size photo written and read back, so that the verdict is on what the
file holds."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from fastadv.cli.memory import PROBE_SIDES, AttackMemory, available, gigabytes, write_bytes
from fastadv.errors import UsageError
from fastadv.experiments import study
from fastadv.experiments.study import MODEL_HELP, positive_int, torch_device
from fastadv.models import CLASSIFICATION, SEGMENTATION, ModelInfo, describe
from fastadv.photos import (
    DEFAULT_MAX_SIDE,
    PhotoError,
    free_path,
    output_warning,
    photo_model,
    read_photo,
    working_copy,
    working_size,
    write_photo,
)

FORMATS = ("png", "jpg", "webp")
PROGRESS_DELAY = 2.0  # seconds an attack runs before its progress bar is shown


def add_arguments(p: argparse.ArgumentParser, default_model: str, task_text: str) -> None:
    """The options hide and protect share; `task_text` says what --model must be."""
    p.add_argument(
        "--model", default=default_model,
        help=f"{task_text}: {MODEL_HELP}. The shipped models were trained on synthetic scenes",
    )  # fmt: skip
    p.add_argument(
        "--max-side", type=positive_int, default=DEFAULT_MAX_SIDE,
        help="the longest side the attack runs at: a larger photo is attacked on a copy of "
        "this size (means of whole-pixel cells) and the perturbation is repeated back over "
        "the full photo, which keeps its size. Memory and time grow with its square",
    )  # fmt: skip
    p.add_argument(
        "--format", choices=FORMATS, default="png",
        help="the files written; PNG is lossless, JPEG re-encoding undoes part of the "
        "perturbation",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="folder of the files written")
    p.add_argument(
        "--device", type=torch_device, default=None,
        help="torch device (default: the GPU if there is one, else the CPU)",
    )  # fmt: skip


LOGITS = {  # what each command's model must give: the logits' dimensions, in words
    SEGMENTATION: (4, "a segmentation model (logits [1, K, H, W])"),
    CLASSIFICATION: (2, "a classifier (logits [1, K])"),
}


@dataclass
class Job:
    """A photo to attack: where it is and where its result goes, its (height, width), its
    colour channels, the size the attack runs at, and what its output format loses."""

    path: Path
    out: Path
    size: tuple[int, int]
    channels: int
    work: tuple[int, int]
    warning: str | None


@dataclass
class Setup:
    """What a photo command has found before any work: the model (and what it is), the device,
    the photos to attack, the messages of those that cannot be read, the model's memory
    probes, and the shape of its logits on a probe: [1, K] or [1, K, H, W]."""

    model: torch.nn.Module
    info: ModelInfo
    device: str
    jobs: list[Job]
    unreadable: list[str]
    memory: AttackMemory
    logits: tuple[int, ...]


def setup(args: argparse.Namespace, task: str, suffix: str, copies: int) -> Setup:
    """The checks before any work, each a UsageError naming its option: --out, --model (which
    must load, be of `task` and give logits of its form), every photo read and planned (its
    output <stem>_<suffix>.<format>). `copies`: the attack's own tensors in working images
    (fastadv.cli.memory)."""
    device = study.device(args.device)
    output_folder(args.out, args.images)
    model = study.load_model("--model", args.model, device, task=task)
    jobs, unreadable = plan(args, suffix)
    memory = AttackMemory(model, device, copies)
    logits = memory.count((PROBE_SIDES[0], PROBE_SIDES[0]))[1]
    dims, form = LOGITS[task]
    if len(logits) != dims:
        raise UsageError(f"--model {args.model}: gives logits {list(logits)}; needed: {form}")
    return Setup(model, describe(model), device, jobs, unreadable, memory, logits)


def output_folder(out: Path, inputs) -> None:
    """--out, refused when it is an input photo or a file or lies under one."""
    resolved = out.resolve()
    if resolved in {Path(p).resolve() for p in inputs}:
        raise UsageError(f"--out {out}: is one of the input photos; give a folder")
    for folder in (resolved, *resolved.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == resolved else f"lies under the file {folder}"
                raise UsageError(f"--out {out}: {where}; give a folder")
            break


def make_writable(out: Path) -> None:
    """Creates --out and writes (and removes) a file in it: a folder that cannot be written is
    refused before the first attack, whatever permission bits claim."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write there ({error.strerror or error})") from None


def plan(args: argparse.Namespace, suffix: str) -> tuple[list[Job], list[str]]:
    """Every photo read once (then let go): its Job, or why it cannot be read (to report and
    skip). Raises a UsageError when a photo cannot be written in --format (alpha in a JPEG)."""
    jobs, unreadable = [], []
    taken = {path.resolve() for path in args.images}
    for path in args.images:
        try:
            photo = read_photo(path)
        except PhotoError as error:
            unreadable.append(str(error))
            continue
        out = free_path(args.out / f"{path.stem}_{suffix}.{args.format}", taken)
        taken.add(out.resolve())  # photos of one name in two folders get two outputs
        try:
            warning = output_warning(out, photo)
        except PhotoError as error:
            raise UsageError(f"--format {args.format}: {error}") from None
        work = working_size(photo.size, args.max_side)
        jobs.append(Job(path, out, photo.size, photo.channels, work, warning))
    return jobs, unreadable


def check_memory(jobs: list[Job], memory: AttackMemory, device) -> None:
    """Refuses, in one line naming the photo, an attack that will not fit in the memory there
    is (see fastadv.cli.memory), with the --max-side that would."""
    on_gpu = torch.device(device).type == "cuda"
    room_attack = available(device)
    room_host = available("cpu") if on_gpu else room_attack
    for job in jobs:
        write = write_bytes(job.channels, job.size)
        host_left = None if room_host is None else room_host - write
        if host_left is not None and host_left < 0:
            raise UsageError(
                f"{job.path}: writing it at {size_text(job.size)} needs about {gigabytes(write)} "
                f"of memory and {gigabytes(room_host)} is available"
            )
        room = room_attack if on_gpu else host_left
        if room is None or memory.attack_bytes(job.work) <= room:
            continue
        fits = _largest_side(job.size, memory, room, max(job.work))
        advice = f"give --max-side {fits} or less" if fits else "even a tiny copy does not fit"
        raise UsageError(
            f"{job.path}: the attack at {size_text(job.work)} needs about "
            f"{gigabytes(memory.attack_bytes(job.work))} of memory and {gigabytes(room)} is "
            f"available (after {gigabytes(write)} for writing); {advice}"
        )


def _largest_side(size, memory: AttackMemory, room: int, high: int) -> int | None:
    """The largest max_side below `high` whose attack fits in `room` bytes, or None."""
    low, best = 1, None
    while low < high:
        side = (low + high) // 2
        if memory.attack_bytes(working_size(size, side)) <= room:
            best, low = side, side + 1
        else:
            high = side
    return best


@dataclass
class Attacked:
    """A photo attacked and written: the model as run on it (photo_model), its working copy
    x [1, 3, h, w] on the device, the attack's result, and `held`, the written file's working
    copy on the device: what the verdict is taken on."""

    net: torch.nn.Module
    x: torch.Tensor
    result: object
    held: torch.Tensor | None


def attack_photo(
    job: Job,
    model: torch.nn.Module,
    device,
    max_side: int,
    attack: Callable,
    passes: int,
    keep: Callable = lambda result: True,
) -> Attacked:
    """attack(net, x) on the photo's working copy, with a progress bar of its `passes` model
    passes; when keep(result), the full-size photo is written to job.out and read back."""
    photo = read_photo(job.path)
    work = working_copy(photo, max_side)
    net = photo_model(model, photo)
    x = work.model_input().to(device)
    with progress(net, passes, job.path.name):
        result = attack(net, x)
    if not keep(result):
        return Attacked(net, x, result, None)
    written = write_photo(job.out, photo, work.full_size(result.adv[0]))
    del photo, work  # the full-size copies, before the file is read back
    held = working_copy(read_photo(written.path), max_side).model_input().to(device)
    return Attacked(net, x, result, held)


def each(found: Setup, work: Callable[[Job], object]) -> list:
    """work(job) for every photo; one that cannot be read or written now (a file made or
    removed meanwhile, a full disk) is reported, its result None, and the others go on."""
    results = []
    for job in found.jobs:
        try:
            results.append(work(job))
        except PhotoError as error:
            warn(f"{error}; going on with the others")
            results.append(None)
    return results


@contextlib.contextmanager
def progress(model: torch.nn.Module, passes: int, name: str):
    """A progress bar of the model's forward passes while an attack runs (the attack functions
    have no progress hook: a forward hook on the model counts them), shown once the attack has
    run PROGRESS_DELAY seconds. An attack that stops early leaves it short of `passes`."""
    bar = tqdm(
        total=passes, desc=name, unit="pass", leave=False, delay=PROGRESS_DELAY, file=sys.stderr
    )

    def count(*_) -> None:  # a hook that returned a value would replace the model's output
        bar.update()

    handle = model.register_forward_hook(count)
    try:
        yield bar
    finally:
        handle.remove()
        bar.close()


def prepare(args: argparse.Namespace, found: Setup) -> None:
    """The last checks before the first attack (the memory, --out written to), then the
    warnings: the photos skipped, what the output format loses."""
    check_memory(found.jobs, found.memory, found.device)
    make_writable(args.out)
    for reason in found.unreadable:
        warn(f"skipping {reason}")
    for job in found.jobs:
        if job.warning:
            warn(job.warning)


def warn(message: str) -> None:
    print(f"fastadv: {message}", file=sys.stderr)


def size_text(size: tuple[int, int]) -> str:
    """(height, width) as photo tools write it, width x height."""
    return f"{size[1]}x{size[0]}"
