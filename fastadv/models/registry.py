"""One way to load a model: `load(name)` for the shipped networks, weight files, torchvision's
pretrained networks and a user's own factory, each with its `ModelInfo` (`describe(model)`).

The forms of `name`, tried in this order:

- a shipped name (`SHIPPED`, `COMPOSED`): "fcn8s-synthcity", "deeplab-synthcity", "scene-cnn",
  "mindseye-direct", "mindseye-direct-params", "mindseye-estimator", "mindseye-projector",
  "mindseye-comparator" and "mindseye-triple" (the triple-staged network of the three stages);
- "torchvision:NAME[.WEIGHTS]", e.g. "torchvision:deeplabv3_resnet50" (see `zoo`);
- a .safetensors file written by `save_weights` (or `places365.convert`);
- "package.module:callable", a factory called without arguments that returns the nn.Module
  (images [B, 3, H, W] in [0, 1] -> logits); it may attach a ModelInfo with
  `fastadv.models.info.attach` to name its task and classes.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from fastadv.data.cityscapes import CLASS_NAMES as CITYSCAPES
from fastadv.data.rendered import CLASSES as RENDERED
from fastadv.models import mindseye, zoo
from fastadv.models.info import ATTRIBUTE, ModelError, ModelInfo, attach
from fastadv.models.weights import (
    ARCHITECTURES,
    WEIGHTS_DIR,
    build_from_file,
    one_line,
    recorded_value,
)


@dataclass(frozen=True)
class Shipped:
    """A shipped weight file in fastadv/weights (docs/weights.md says how each was made); all
    were trained on fastadv's synthetic scenes."""

    file: str
    arch: str
    classes: tuple[str, ...] | None = None  # when the file's metadata has none


def _mindseye(stage: str) -> Shipped:
    classes = RENDERED if "direct" in stage else None
    return Shipped(mindseye.weights_path(stage, WEIGHTS_DIR).name, f"mindseye-{stage}", classes)


SHIPPED = {
    "fcn8s-synthcity": Shipped("fcn8s_synthcity.safetensors", "fcn8s-compact", CITYSCAPES),
    "deeplab-synthcity": Shipped("deeplab_synthcity.safetensors", "deeplab-lite", CITYSCAPES),
    "scene-cnn": Shipped("scene-cnn.safetensors", "scenenet"),
    **{f"mindseye-{stage}": _mindseye(stage) for stage in mindseye.NETWORKS},
}


@dataclass(frozen=True)
class Composed:
    """A shipped network assembled from shipped parts: `arch`'s constructor takes them."""

    arch: str
    parts: tuple[str, ...]
    classes: tuple[str, ...] | None


COMPOSED = {
    "mindseye-triple": Composed(  # scores the three object classes
        "mindseye-triple",
        ("mindseye-estimator", "mindseye-projector", "mindseye-comparator"),
        RENDERED[: mindseye.NUM_OBJECTS],
    ),
}

_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def shipped_names() -> list[str]:
    """Every shipped name."""
    return [*SHIPPED, *COMPOSED]


def load(
    name,
    device="cpu",
    *,
    task: str | None = None,
    weights_dir=None,
    download: bool = True,
) -> nn.Module:
    """The model `name` (see the module's docstring for the forms), in eval mode on `device`,
    its ModelInfo attached (`describe(model)`).

    Args:
        task: the task the caller needs (SEGMENTATION, CLASSIFICATION, ...); a model of
            another task is refused with a ModelError.
        weights_dir: where shipped names find their files (default fastadv/weights), e.g. a
            folder of retrained weights.
        download: whether a torchvision model may download weights missing from the cache.

    Raises:
        ModelError: a one-line message naming `name`, for unknown names, missing or unreadable
            files, weights that do not fit, and models of another task.

    >>> model = load("fcn8s-synthcity")  # compact FCN-8s trained on SynthCity
    >>> describe(model).classes[11]
    'person'
    """
    name = str(name)
    model, info = _resolve(name, Path(weights_dir) if weights_dir else WEIGHTS_DIR, download)
    if task is not None and info.task not in (task, None):
        raise ModelError(f"{name!r} is a {info.task} model; a {task} model is needed here")
    return attach(model.to(device).eval(), info)


def _resolve(name: str, folder: Path, download: bool) -> tuple[nn.Module, ModelInfo]:
    if name in SHIPPED:
        return _shipped(name, folder)
    if name in COMPOSED:
        return _composed(name, folder)
    if name.startswith(zoo.PREFIX):
        return zoo.load(name, download)
    path = Path(name)
    if path.exists() or path.suffix == ".safetensors":
        return _file(name, path)
    if _FACTORY.fullmatch(name):
        return _factory(name)
    if path.suffix or len(path.parts) > 1:
        raise ModelError(f"model file {name!r} does not exist")
    shipped = ", ".join(shipped_names())
    raise ModelError(
        f"unknown model {name!r}: give a shipped name ({shipped}), a .safetensors file, "
        "torchvision:NAME (e.g. torchvision:deeplabv3_resnet50, torchvision:resnet50) or "
        "package.module:callable"
    )


def _shipped(name: str, folder: Path) -> tuple[nn.Module, ModelInfo]:
    entry = SHIPPED[name]
    path = folder / entry.file
    try:
        model, arch, metadata = build_from_file(path, entry.arch)
    except ModelError as error:
        raise ModelError(f"shipped model {name!r}: {error}") from error
    return model, _file_info(name, path, arch, metadata, entry.classes, synthetic=True)


def _composed(name: str, folder: Path) -> tuple[nn.Module, ModelInfo]:
    entry = COMPOSED[name]
    architecture = ARCHITECTURES[entry.arch]
    model = architecture.build(*(_shipped(part, folder)[0] for part in entry.parts))
    sources = ", ".join(str(folder / SHIPPED[part].file) for part in entry.parts)
    return model, ModelInfo(name, architecture.task, entry.classes, True, sources)


def _file(name: str, path: Path) -> tuple[nn.Module, ModelInfo]:
    if not path.is_file():
        raise ModelError(f"model file {name!r} does not exist")
    if path.suffix != ".safetensors":
        raise ModelError(
            f"model file {name!r} is not a .safetensors file; pickled checkpoints are never "
            "loaded (convert the Places365 ResNet-50 with fastadv.models.places365)"
        )
    model, arch, metadata = build_from_file(path)
    return model, _file_info(path.name, path, arch, metadata, None, synthetic=False)


def _file_info(name, path, arch, metadata, classes, synthetic) -> ModelInfo:
    classes = recorded_value(metadata, "classes", path) or classes
    return ModelInfo(
        name,
        ARCHITECTURES[arch].task,
        tuple(classes) if classes is not None else None,
        synthetic=synthetic,
        source=str(path),
        metadata=metadata,
    )


def _factory(spec: str) -> tuple[nn.Module, ModelInfo]:
    """The module returned by the callable `spec` = "package.module:callable"; exceptions
    raised inside the user's factory propagate with their traceback."""
    module_name, attribute = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ModelError(
            f"{spec!r}: cannot import {module_name} ({one_line(error)}); install it or put "
            "its folder on PYTHONPATH"
        ) from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ModelError(f"{spec!r}: {module_name} has no callable {attribute!r}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    info = getattr(model, ATTRIBUTE, None)
    return model, info if isinstance(info, ModelInfo) else ModelInfo(spec, None, source=spec)
