"""The compact default scene classifier, SceneNet (shipped as "scene-cnn").

SceneNet is six 3x3 conv-BN-ReLU layers (three of stride 2), global average pooling and a
linear layer. Like a photo classifier's preprocessing (Places365 models see 224-pixel crops), it
first resizes its input so the shorter side is `input_size` pixels (bilinear, antialiased when
shrinking, differentiable), so it classifies a 256-pixel or a 1000-pixel photo at the resolution
it was trained at. Its input normalisation is part of the module, so it takes images in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCENE_MEAN = (0.5, 0.5, 0.5)
SCENE_STD = (0.25, 0.25, 0.25)


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
