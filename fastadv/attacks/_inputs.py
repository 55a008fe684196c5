"""Checks shared by the attacks: every bad input is refused in one line that names the
argument, before any work. The values of eps are checked by `fastadv.ops.SignStep.prepare`;
what is checked here are the attacks' own rules (pixel units, counts, labels, classes)."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

import torch

from fastadv._tensors import check_images
from fastadv.attacks._model import attack_mode, check_logits, logits_of


def check_unit_images(x, name: str = "x") -> torch.Tensor:
    check_images(x, name)
    if x.is_meta:
        raise ValueError(f"{name} is on the meta device: an attack needs its values")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    lo, hi = (v.item() for v in torch.aminmax(x))
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return x


def check_within_unit(value: float, name: str) -> None:
    """Budgets and steps are fractions of the image range [0, 1]: a value above 1 is almost
    surely given in grey levels (0-255), which the message says how to convert."""
    if not value <= 1:  # also inf
        hint = f"; in grey levels pass {name}={value:g}/255" if math.isfinite(value) else ""
        raise ValueError(f"{name} must lie in [0, 1] like the images, got {value:g}{hint}")


def check_step_size(value, name: str, *, positive: bool = False) -> float:
    """A float in [0, 1] ((0, 1] with `positive`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")
    check_within_unit(value, name)
    return value


def check_count(value, name: str) -> int:
    """An integer >= 1."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def class_ids(classes, name: str = "classes") -> list[int]:
    """An id or a collection of ids (ints, an integer tensor), as a list of ints."""
    if torch.is_tensor(classes):
        items = classes.flatten().tolist()  # float and bool tensors give what is refused below
    elif isinstance(classes, str) or not isinstance(classes, Iterable):
        items = [classes]
    else:
        items = list(classes)
    if not items:
        raise ValueError(f"{name} is empty")
    for c in items:
        if isinstance(c, str):
            raise TypeError(
                f"{name} must be class ids, got the name {c!r}: look its id up in the "
                "model's label set"
            )
        if isinstance(c, bool) or not hasattr(type(c), "__index__"):
            raise TypeError(f"{name} must be an int or a collection of ints, got {classes!r}")
    return [operator.index(c) for c in items]


def check_class_range(ids: list[int], num_classes: int, name: str = "classes") -> None:
    if min(ids) < 0 or max(ids) >= num_classes:
        raise ValueError(f"{name} {ids} must lie in [0, {num_classes})")


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
