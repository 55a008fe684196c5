"""Nearest-non-class neighbour fill: its definition, the metadata of its outputs and the limits
every backend shares (meaning, distance and tie rule: fastadv.ops.nearest_fill)."""

from __future__ import annotations

import torch

LABEL_DTYPES = (torch.uint8, torch.int32, torch.int64)
MAX_SIDE = 16384  # kMaxSide in kernels/nearest_fill_math.h


def nearest_fill(labels: torch.Tensor, hidden: torch.Tensor, with_distance: bool):
    """The pure-PyTorch definition (the "torch" backend), by brute force: every hidden pixel
    against every non-hidden one of its image, the least (squared distance, row-major index)."""
    batch, height, width = labels.shape
    pixels = height * width
    index = torch.arange(pixels, device=labels.device)
    rows, cols = index // width, index % width
    out = labels.clone().view(batch, pixels)
    d2 = torch.zeros(batch, pixels, dtype=torch.int64, device=labels.device)
    empty = hidden.view(batch, pixels).all(1) & (pixels > 0)
    for b in range(batch):
        flat = hidden[b].view(-1)
        targets, sources = index[flat], index[~flat]
        if sources.numel() == 0:
            continue
        for chunk in targets.split(max(1, (1 << 22) // sources.numel())):
            dy = rows[chunk, None] - rows[None, sources]
            dx = cols[chunk, None] - cols[None, sources]
            best = ((dy * dy + dx * dx) * pixels + sources).min(1).values
            d2[b, chunk] = best // pixels
            out[b, chunk] = labels[b].view(-1)[best % pixels]
    out = out.view(batch, height, width)
    if not with_distance:
        return out, labels.new_empty(0, dtype=torch.float32), empty
    distance = d2.double().sqrt().float().view(batch, height, width)
    distance[empty] = float("inf")
    return out, distance, empty


def nearest_fill_fake(labels: torch.Tensor, hide: torch.Tensor, with_distance: bool):
    """Empty outputs of the op's shapes and dtypes: its fake (meta) implementation, and the
    outputs' allocation where a kernel fills them."""
    shape = labels.shape if with_distance else (0,)
    return (
        torch.empty_like(labels),
        labels.new_empty(shape, dtype=torch.float32),
        labels.new_empty(labels.shape[:1], dtype=torch.bool),
    )
