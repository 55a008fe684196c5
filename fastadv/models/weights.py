"""Architectures by name, and weights in safetensors files (never unpickled).

A weight file holds a model's ``state_dict`` and, in its metadata, the architecture's name
(``"arch"``), the constructor settings that its tensors' shapes do not tell (e.g. SceneNet's
``input_size``), the class names (``"classes"``, JSON) and free-form records (the training
command, validation scores). ``build_from_file`` rebuilds the model from that alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from fastadv.models import mindseye
from fastadv.models.deeplab import DeepLabLite
from fastadv.models.fcn import compact_fcn8s, fcn8s_vgg16
from fastadv.models.info import CLASSIFICATION, SCORES, SEGMENTATION, STAGE, ModelError
from fastadv.models.resnet import resnet50
from fastadv.models.scene import SceneNet

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def _rows(*keys: str) -> Callable[[dict], dict]:
    """Sizes from the first of `keys` present: its leading dimension is the number of classes."""

    def sizes(state: dict) -> dict:
        for key in keys:
            if key in state:
                return {"num_classes": int(state[key].shape[0])}
        raise ModelError(f"holds none of the tensors {', '.join(keys)}")

    return sizes


def _scenenet_sizes(state: dict) -> dict:
    return {**_rows("fc.weight")(state), "width": int(state["features.0.weight"].shape[0])}


@dataclass(frozen=True)
class Architecture:
    """How to rebuild a model of one architecture from a weight file.

    Attributes:
        build: the constructor.
        task: what the model computes (SEGMENTATION, CLASSIFICATION, SCORES or STAGE).
        sizes: constructor arguments read off the state_dict's shapes (e.g. num_classes).
        settings: constructor arguments kept in the file's metadata, saved from the model's
            attributes of the same names.
    """

    build: Callable[..., nn.Module]
    task: str
    sizes: Callable[[dict], dict] = lambda state: {}
    settings: tuple[str, ...] = ()


_SEGMENTATION_SIZES = _rows("score_fr.bias", "classifier.bias")  # FCN-8s, DeepLab

#: Every architecture a weight file may name in its "arch" metadata.
ARCHITECTURES = {
    "fcn8s-compact": Architecture(compact_fcn8s, SEGMENTATION, _SEGMENTATION_SIZES),
    "fcn8s-vgg16": Architecture(fcn8s_vgg16, SEGMENTATION, _SEGMENTATION_SIZES),
    "deeplab-lite": Architecture(DeepLabLite, SEGMENTATION, _SEGMENTATION_SIZES),
    "scenenet": Architecture(SceneNet, CLASSIFICATION, _scenenet_sizes, ("input_size",)),
    "resnet50": Architecture(
        resnet50, CLASSIFICATION, _rows("fc.weight"), ("resize_size", "crop_size")
    ),
    **{
        f"mindseye-{name}": Architecture(build, CLASSIFICATION if "direct" in name else STAGE)
        for name, build in mindseye.NETWORKS.items()
    },
    "mindseye-triple": Architecture(mindseye.TripleStaged, SCORES),
}


def architectures(task: str) -> list[str]:
    """The names of the architectures for `task`, sorted."""
    return sorted(name for name, arch in ARCHITECTURES.items() if arch.task == task)


def _architecture(arch: str) -> Architecture:
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def create(arch: str, **config) -> nn.Module:
    """A randomly initialised model of architecture `arch` (see ARCHITECTURES), built with
    `config`, e.g. create("fcn8s-compact") (19 classes) or create("scenenet", num_classes=12)."""
    return _architecture(arch).build(**config)


def save_weights(model: nn.Module, path, arch: str, classes=None, **metadata) -> None:
    """Write `model`'s state_dict to the safetensors file `path` (atomically: a reader never
    sees half a file), with `arch`, its settings, `classes` and `metadata` (strings as they
    are, anything else as JSON)."""
    from safetensors.torch import save_file

    architecture = _architecture(arch)
    info = {"arch": arch}
    for name in architecture.settings:
        info[name] = json.dumps(getattr(model, name))
    if classes is not None:
        info["classes"] = json.dumps(list(classes))
    info.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(state, str(partial), metadata=info)
    os.replace(partial, path)


def read_weights(path) -> tuple[dict, dict]:
    """(state_dict, metadata) of a safetensors file, with one-line errors for missing or bad
    files."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weight file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # safetensors raises several types for truncated/garbled files
        raise ModelError(
            f"{path} is not a readable safetensors file ({one_line(error)})"
        ) from error
    return state, metadata


def build_from_file(path, arch: str | None = None) -> tuple[nn.Module, str, dict]:
    """(model in eval mode, its architecture, the file's metadata) from the weight file `path`;
    `arch` names the architecture of a file that does not record one (the shipped mind's-eye
    weights)."""
    state, metadata = read_weights(path)
    recorded = metadata.get("arch")
    if recorded is not None and arch is not None and recorded != arch:
        raise ModelError(f"{path} holds a {recorded} model, not the expected {arch}")
    arch = recorded or arch
    if arch is None:
        raise ModelError(
            f"{path} has no 'arch' metadata, so its model is unknown "
            "(write weight files with fastadv.models.save_weights)"
        )
    architecture = _architecture(arch)
    try:
        config = architecture.sizes(state)
    except (KeyError, ModelError) as error:
        raise ModelError(f"{path} is not a {arch} state_dict: {one_line(error)}") from error
    config.update({k: recorded_value(metadata, k, path) for k in architecture.settings})
    model = architecture.build(**config)
    mismatch = state_mismatch(model, state)
    if mismatch:
        raise ModelError(f"{path} does not fit {arch}: {mismatch}")
    model.load_state_dict(state)
    return model.eval(), arch, metadata


def recorded_value(metadata: dict, key: str, path):
    """The JSON value of `key` in a weight file's metadata; None when absent."""
    if key not in metadata:
        return None
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}: metadata {key!r} is not JSON ({one_line(error)})") from error


def state_mismatch(model: nn.Module, state: dict) -> str:
    """'' when `state` loads into `model` with strict=True; else what differs, on one line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} is {list(state[k].shape)}, not {list(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    parts = [
        f"{what} {_few(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape:", shapes))
        if keys
    ]
    return "; ".join(parts)


def _few(items: list[str], shown: int = 3) -> str:
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def one_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most `limit` characters), or its type."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
