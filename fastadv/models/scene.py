"""The compact default scene classifier and `load_classifier`, which reads safetensors only.

SceneNet is six 3x3 conv-BN-ReLU layers (three of stride 2), global average pooling and a
linear layer. Like a photo classifier's preprocessing (Places365 models see 224-pixel crops), it
first resizes its input so the shorter side is `input_size` pixels (bilinear, antialiased when
shrinking, differentiable), so it classifies a 256-pixel or a 1000-pixel photo at the resolution
it was trained at. Its input normalisation is part of the module, so it takes images in [0, 1].
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fastadv.models.resnet import resnet50

SCENE_MEAN = (0.5, 0.5, 0.5)
SCENE_STD = (0.25, 0.25, 0.25)
SHIPPED = {"scene-cnn": "scene-cnn.safetensors"}
DEFAULT = "scene-cnn"


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SceneNet(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> logits [B, num_classes]."""

    def __init__(self, num_classes: int = 12, width: int = 16, input_size: int | None = 128):
        super().__init__()
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(SCENE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(SCENE_STD).view(1, 3, 1, 1), persistent=False)
        w = (width, width, 2 * width, 2 * width, 4 * width, 4 * width)
        layers = _block(3, w[0], 2)
        for i in range(1, 6):
            layers += _block(w[i - 1], w[i], 2 if i in (2, 4) else 1)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(w[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features((self._resize(x) - self.mean) / self.std)
        return self.fc(x.mean(dim=(2, 3)))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_size is None else shorter_side_to(x, self.input_size)


def shorter_side_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images [B, C, H, W] resized so min(H, W) = size, aspect kept (bilinear, antialiased when
    shrinking; differentiable); x itself when it already has that size."""
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    scale = size / min(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=scale < 1)


_ARCHS = {"scenenet": SceneNet, "resnet50": resnet50}


def save_classifier(model: nn.Module, path, arch: str, classes=None) -> None:
    """Writes the state dict as safetensors with metadata {"arch", "num_classes", "classes"}."""
    if arch not in _ARCHS:
        raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"arch": arch, "num_classes": str(model.fc.out_features)}
    if getattr(model, "input_size", None) is not None:
        meta["input_size"] = str(model.input_size)
    if classes is not None:
        meta["classes"] = json.dumps(list(classes))
    save_file(state, str(path), metadata=meta)


def load_classifier(name_or_path: str = DEFAULT) -> tuple[nn.Module, list[str] | None]:
    """(model in eval mode, class names or None) from a shipped name ("scene-cnn") or a
    .safetensors file whose metadata names its "arch" ("scenenet" or "resnet50"; the number of
    classes and SceneNet's width come from the weights' shapes, its input_size from the metadata).
    Never unpickles anything."""
    path = _resolve(name_or_path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    arch = meta.get("arch")
    if arch not in _ARCHS:
        raise ValueError(
            f"{path}: metadata 'arch' must be one of {sorted(_ARCHS)}, got {arch!r} "
            "(write the file with fastadv.models.scene.save_classifier)"
        )
    if "fc.weight" not in state:
        raise ValueError(f"{path}: no 'fc.weight' tensor; not a {arch} state dict")
    kwargs = {"num_classes": state["fc.weight"].shape[0]}
    if arch == "scenenet":
        kwargs["width"] = state["features.0.weight"].shape[0]
        kwargs["input_size"] = int(meta["input_size"]) if "input_size" in meta else None
    model = _ARCHS[arch](**kwargs)
    model.load_state_dict(state, strict=True)
    classes = json.loads(meta["classes"]) if "classes" in meta else None
    return model.eval(), classes


def _resolve(name_or_path) -> Path:
    if str(name_or_path) in SHIPPED:
        return Path(str(resources.files("fastadv") / "weights" / SHIPPED[str(name_or_path)]))
    path = Path(name_or_path)
    if path.suffix != ".safetensors":
        raise ValueError(
            f"unknown classifier {str(name_or_path)!r}: give one of {sorted(SHIPPED)} or a "
            ".safetensors file (pickled checkpoints are never loaded)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found: {path}")
    return path
