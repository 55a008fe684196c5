"""Nearest-non-class neighbour fill: the adversarial target of Fischer et al. (2017).

Every hidden pixel takes the label of its nearest non-hidden pixel, by exact Euclidean distance
on the pixel grid; the other pixels keep theirs. The distance is that of
``scipy.ndimage.distance_transform_edt(hidden)``: the float32 of the root of the integer squared
distance, 0 at non-hidden pixels.

Tie rule, identical on every backend: among equidistant non-hidden pixels the one that comes
first in row-major order (the smallest row, then the smallest column).

An image whose pixels are all hidden has no label to give: an error names it, or with
``on_empty="keep"`` it is returned unchanged (distance +inf) and flagged in ``empty``.

The compiled backends make two separable passes (Meijster et al. 2000) in O(pixels) per image,
for whole batches at once; the "torch" reference compares every hidden pixel with every
non-hidden one, O(pixels^2), for checking small maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from fastadv import _ext
from fastadv._tensors import check_dtype
from fastadv.ops import _backend
from fastadv.reference import nearest_fill as reference
from fastadv.reference.nearest_fill import LABEL_DTYPES, MAX_SIDE

ON_EMPTY = ("error", "keep")
_IMPLEMENTATIONS = _backend.Implementations(
    reference=reference.nearest_fill,
    compiled="nearest_fill",
    triton=("nearest_fill", "nearest_fill_triton"),
)

Hide = int | Sequence[int] | torch.Tensor


class NearestFill(NamedTuple):
    """What nearest_fill returns.

    labels: the filled labels, of the input's dtype and shape.
    distance: float32, of the input's shape, when return_distance was asked for, else None.
    empty: bool [B] (a 0-d tensor for an [H, W] input): the images whose pixels are all hidden,
        returned unchanged. All False unless on_empty="keep".
    """

    labels: torch.Tensor
    distance: torch.Tensor | None
    empty: torch.Tensor


def nearest_fill(
    labels: torch.Tensor,
    hide: Hide,
    *,
    return_distance: bool = False,
    on_empty: str = "error",
    backend: str = "auto",
) -> NearestFill:
    """Gives every hidden pixel the label of its nearest non-hidden pixel (see the module doc).

    Args:
        labels: uint8, int32 or int64 label maps [B, H, W] or one map [H, W], at most
            16384 x 16384.
        hide: the pixels to relabel: a class id, a sequence of class ids, or a bool mask of
            labels' shape.
        return_distance: also return each pixel's distance to its source pixel.
        on_empty: what to do with an image whose pixels are all hidden: "error" raises a
            ValueError naming it (on CUDA this waits for the kernel); "keep" returns it
            unchanged and flags it in the result's `empty`.
        backend: "auto", "cuda", "triton", "cpu" or "torch".
    """
    single = _check_labels(labels)
    if on_empty not in ON_EMPTY:
        raise ValueError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
    hidden = hide_mask(labels, hide)
    if single:
        labels, hidden = labels.unsqueeze(0), hidden.unsqueeze(0)
    impl = _IMPLEMENTATIONS.pick(_backend.resolve(backend, labels.device))
    out, distance, empty = impl(labels.contiguous(), hidden.contiguous(), return_distance)
    if on_empty == "error":
        _raise_if_empty(empty)
    if single:
        out, distance, empty = out[0], distance[0] if return_distance else distance, empty[0]
    return NearestFill(out, distance if return_distance else None, empty)


def _check_labels(labels) -> bool:
    """Checks labels; True for a single [H, W] map."""
    check_dtype(labels, "labels", LABEL_DTYPES)
    if labels.dim() not in (2, 3):
        raise ValueError(f"labels must be [B, H, W] or [H, W], got shape {tuple(labels.shape)}")
    height, width = labels.shape[-2:]
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ValueError(
            f"labels must be at most {MAX_SIDE} x {MAX_SIDE} pixels, got {height} x {width}"
        )
    return labels.dim() == 2


def hide_mask(labels: torch.Tensor, hide: Hide) -> torch.Tensor:
    """The bool mask of the pixels to relabel, from a class id, a sequence of ids or a mask."""
    if isinstance(hide, torch.Tensor) and hide.dtype == torch.bool:
        if hide.shape != labels.shape:
            raise ValueError(
                f"hide mask has shape {tuple(hide.shape)} but labels has {tuple(labels.shape)}"
            )
        return hide.to(labels.device)
    ids = _class_ids(hide)
    largest = torch.iinfo(labels.dtype).max
    for i in ids:
        if not 0 <= i <= largest:  # no pixel could hold it: a mistake, not a no-op
            raise ValueError(
                f"hide: class id {i} is outside [0, {largest}], the class ids {labels.dtype} "
                "labels can hold"
            )
    if not ids:
        return torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    if len(ids) <= 4:  # a few comparisons beat isin's general path
        mask = labels == ids[0]
        for i in ids[1:]:
            mask |= labels == i
        return mask
    return torch.isin(labels, torch.tensor(ids, dtype=labels.dtype, device=labels.device))


def _class_ids(hide) -> list[int]:
    bad = TypeError(
        "hide must be a class id, a sequence of class ids or a bool mask, "
        f"got {type(hide).__name__}"
    )
    if isinstance(hide, torch.Tensor):
        if hide.dtype.is_floating_point or hide.dtype.is_complex or hide.dim() > 1:
            raise TypeError(
                f"hide must be a bool mask or integer class ids, got {hide.dtype} "
                f"of shape {tuple(hide.shape)}"
            )
        return [int(i) for i in hide.reshape(-1).tolist()]
    if isinstance(hide, bool):
        raise bad
    if isinstance(hide, int):
        return [hide]
    if isinstance(hide, Sequence) and not isinstance(hide, str):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in hide):
            raise TypeError(f"hide's class ids must be ints, got {list(hide)!r}")
        return list(hide)
    raise bad


def _raise_if_empty(empty: torch.Tensor) -> None:
    if bool(empty.any()):
        images = torch.nonzero(empty).flatten().tolist()
        raise ValueError(
            f"nearest_fill: every pixel of image(s) {images} is hidden, so they have no label to "
            "take; pass on_empty='keep' to return such images unchanged"
        )


if _ext.has_extension():
    torch.library.register_fake("fastadv::nearest_fill")(reference.nearest_fill_fake)
