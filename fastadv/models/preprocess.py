"""A photo network's evaluation preprocessing as part of the model, differentiable.

Pretrained networks expect their authors' preprocessing: torchvision's classifiers resize the
shorter side to 256 (or 232, 384, ...), crop the centre 224 and normalise; its segmentation
networks resize the shorter side to 520 and normalise. Inside the model, that preprocessing lets
an attack work on the photo itself in [0, 1], so eps keeps its meaning in pixel space, and the
gradient reaches every pixel through the (linear) resize. Sizes follow torchvision's rules:
the longer side is truncated, int(size * long / short), and the crop offset rounded, so the
logits equal those of the network on torchvision's own transforms (tests/test_registry.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastadv._outputs import logits_of
from fastadv.models.common import IMAGENET_MEAN, IMAGENET_STD, Normalize


class Preprocess(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> the network's input: shorter side resized to
    `resize_size` (if given), centre `crop_size` square cut out (if given), normalised.

    Args:
        mean, std: per-channel normalisation.
        resize_size: the shorter side after resizing, or None to keep the size.
        crop_size: side of the centre square, at most resize_size; None for no crop.
        mode: interpolation of the resize ("bilinear", "bicubic", "nearest").
        antialias: antialiased shrinking (bilinear and bicubic only), as torchvision does.
    """

    def __init__(
        self,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize_size: int | None = None,
        crop_size: int | None = None,
        mode: str = "bilinear",
        antialias: bool = True,
    ):
        super().__init__()
        if crop_size is not None and (resize_size is None or crop_size > resize_size):
            raise ValueError(
                f"crop_size ({crop_size}) needs a resize_size at least as large, got {resize_size}"
            )
        self.resize_size, self.crop_size = resize_size, crop_size
        self.mode = mode
        self.antialias = antialias and mode in ("bilinear", "bicubic")
        self.normalize = Normalize(mean, std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self._crop(self._resize(x)))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize_size is None:
            return x
        size = resized_shape(x.shape[-2:], self.resize_size)
        if size == tuple(x.shape[-2:]):
            return x
        align = False if self.mode in ("bilinear", "bicubic") else None
        return F.interpolate(
            x, size=size, mode=self.mode, align_corners=align, antialias=self.antialias
        )

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop_size is None:
            return x
        top = round((x.shape[-2] - self.crop_size) / 2)
        left = round((x.shape[-1] - self.crop_size) / 2)
        return x[..., top : top + self.crop_size, left : left + self.crop_size]


def resized_shape(shape, shorter: int) -> tuple[int, int]:
    """(H, W) with min(H, W) = `shorter`, the longer side scaled and truncated (torchvision's
    rule for a single resize size)."""
    h, w = int(shape[0]), int(shape[1])
    if h <= w:
        return shorter, int(shorter * w / h)
    return int(shorter * h / w), shorter


class Preprocessed(nn.Module):
    """`net` behind its preprocessing: images [B, 3, H, W] in [0, 1] -> logits as a tensor.

    A mapping output (torchvision's {"out", "aux"}) is reduced to its "out". With `dense`, the
    logits are resized bilinearly to the input's H x W, so a segmentation model's prediction
    lines up with the photo whatever size the network worked at.
    """

    def __init__(self, net: nn.Module, preprocess: Preprocess, dense: bool):
        super().__init__()
        self.preprocess = preprocess
        self.net = net
        self.dense = dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = logits_of(self.net(self.preprocess(x)))
        if self.dense and logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits
