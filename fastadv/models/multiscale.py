"""Multiscale inference: run a model on rescaled copies of the input and fuse the logits.

As in DeepLab and Arnab et al. (2018), who find it a natural defence: for each scale s the image is
resized (bilinear) to ``round(s·H) × round(s·W)``, the model's logits are resized back to H × W,
and the per-scale logits ``z_s`` are fused per pixel and class,

    mean:  z = (1/S) Σ_s z_s          max:  z = max_s z_s

Everything is differentiable, so attacks take gradients through all scales at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastadv._outputs import logits_of
from fastadv.models.common import check_images

FUSIONS = ("mean", "max")


class MultiScale(nn.Module):
    """Wraps ``model`` (images → logits or ``{"out": logits}``) to return fused logits."""

    def __init__(self, model: nn.Module, scales=(0.5, 0.75, 1.0), fusion: str = "mean"):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive and non-empty, got {scales!r}")
        self.model, self.scales, self.fusion = model, tuple(float(s) for s in scales), fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, x.shape[1] if x.dim() == 4 else 3)
        size = x.shape[-2:]
        logits = [self._at_scale(x, s, size) for s in self.scales]
        stacked = torch.stack(logits)
        return stacked.mean(0) if self.fusion == "mean" else stacked.amax(0)

    def _at_scale(self, x: torch.Tensor, scale: float, size) -> torch.Tensor:
        if scale != 1.0:
            scaled = [max(1, round(scale * n)) for n in size]
            x = F.interpolate(x, size=scaled, mode="bilinear", align_corners=False)
        z = logits_of(self.model(x))
        if z.shape[-2:] != size:
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        return z
