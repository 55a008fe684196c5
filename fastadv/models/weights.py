"""Architectures by name, and weights in safetensors files (never unpickled).

A weight file holds the model's ``state_dict`` and, in its metadata, the architecture name
(``"arch"``) and number of classes, so ``load_weights(path)`` rebuilds the model on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from fastadv.models.deeplab import DeepLabLite
from fastadv.models.fcn import compact_fcn8s, fcn8s_vgg16

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

#: Architecture name → constructor taking ``num_classes``.
ARCHITECTURES = {
    "fcn8s-compact": compact_fcn8s,
    "fcn8s-vgg16": fcn8s_vgg16,
    "deeplab-lite": DeepLabLite,
}

#: Shipped weights: name → file in ``fastadv/weights`` (see docs/weights.md for how each was made).
PRETRAINED = {
    "fcn8s-synthcity": "fcn8s_synthcity.safetensors",
    "deeplab-synthcity": "deeplab_synthcity.safetensors",
}


class WeightsError(RuntimeError):
    """A weight file that cannot be read or does not fit its architecture."""


def create(arch: str, num_classes: int = 19) -> nn.Module:
    """A randomly initialised model of architecture ``arch`` (see ``ARCHITECTURES``)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](num_classes)


def save_weights(model: nn.Module, path, arch: str, **metadata) -> None:
    """Write ``model``'s state_dict to a safetensors file, with ``arch`` and ``metadata``."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    num_classes = _num_classes(state)
    info = {"arch": arch, "num_classes": str(num_classes)}
    info.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    save_file(state, str(path), metadata=info)


def _num_classes(state: dict) -> int:
    """K from the last layer's bias (FCN's ``score_fr``, DeepLab's ``classifier``)."""
    for key in ("score_fr.bias", "classifier.bias"):
        if key in state:
            return int(state[key].shape[0])
    raise WeightsError("cannot tell the number of classes from the state_dict")


def read_weights(path) -> tuple[dict, dict]:
    """(state_dict, metadata) of a safetensors file, with clear errors for missing or bad files."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # safetensors raises several types for truncated/garbled files
        raise WeightsError(f"{path} is not a readable safetensors file ({error})") from error
    return state, metadata


def load_weights(path, device="cpu") -> nn.Module:
    """The model stored in ``path``, in eval mode, on ``device``."""
    state, metadata = read_weights(path)
    if "arch" not in metadata:
        raise WeightsError(f"{path} has no 'arch' metadata; cannot tell which model it holds")
    model = create(metadata["arch"], int(metadata.get("num_classes", _num_classes(state))))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsError(f"{path} does not fit {metadata['arch']}: {error}") from error
    return model.to(device).eval()


def load(name: str, device="cpu") -> nn.Module:
    """A shipped model by name (``PRETRAINED``), or the model in a weight file at path ``name``.

    >>> model = load("fcn8s-synthcity")  # compact FCN-8s trained on SynthCity, eval mode
    """
    if name in PRETRAINED:
        return load_weights(WEIGHTS_DIR / PRETRAINED[name], device)
    if Path(name).suffix == ".safetensors":
        return load_weights(name, device)
    shipped = ", ".join(sorted(PRETRAINED))
    raise ValueError(f"unknown weights {name!r}: give one of {shipped} or a .safetensors path")


def metadata(name: str) -> dict:
    """The metadata of shipped weights (or of a weight file), e.g. the recorded val mIoU."""
    path = WEIGHTS_DIR / PRETRAINED[name] if name in PRETRAINED else Path(name)
    return read_weights(path)[1]
