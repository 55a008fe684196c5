"""Checks shared by the attacks: every bad input is refused before any work."""

from __future__ import annotations

import math

import torch

from fastadv._tensors import check_images
from fastadv.attacks._model import attack_mode, check_logits, logits_of


def check_unit_images(x, name: str = "x") -> torch.Tensor:
    check_images(x, name)
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"{name} must lie in [0, 1], got [{x.min().item():.4g}, {x.max().item():.4g}]"
        )
    return x


def check_budget(value, name: str, x: torch.Tensor):
    """A float >= 0 or a per-sample tensor [B] of them."""
    if torch.is_tensor(value):
        if value.shape != (x.shape[0],):
            raise ValueError(
                f"{name} must be a float or a tensor [{x.shape[0]}], got {tuple(value.shape)}"
            )
        if torch.isnan(value).any() or (value < 0).any():
            raise ValueError(f"{name} must be >= 0 everywhere")
        return value.to(x.device)
    if not (isinstance(value, int | float) and value >= 0 and not math.isnan(value)):
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def clean_logits(model, x: torch.Tensor) -> torch.Tensor:
    """The model's logits on x (no gradient, in attack mode), checked for shape."""
    with attack_mode(model), torch.no_grad():
        return checked_logits(model(x), x)


def checked_logits(output, x: torch.Tensor) -> torch.Tensor:
    """The logits of a model output on x, detached, checked for shape."""
    logits = logits_of(output).detach()
    check_logits(logits, x)
    return logits


def check_labels(labels, logits: torch.Tensor, name: str, ignore_index: int) -> torch.Tensor:
    """int64 [B] for classifier logits, [B, H, W] for dense logits; ids in [0, K) or ignored."""
    want = (logits.shape[0],) if logits.dim() == 2 else (logits.shape[0], *logits.shape[2:])
    if not torch.is_tensor(labels) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of shape {list(want)}")
    if tuple(labels.shape) != want:
        raise ValueError(f"{name} must have shape {list(want)}, got {list(labels.shape)}")
    labels = labels.to(device=logits.device, dtype=torch.long)
    valid = labels[labels != ignore_index]
    if valid.numel() and (valid.min() < 0 or valid.max() >= logits.shape[1]):
        raise ValueError(
            f"{name} holds class ids outside [0, {logits.shape[1]}) (ignore_index={ignore_index})"
        )
    return labels
