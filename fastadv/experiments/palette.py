"""Colours for label maps.

A model with the Cityscapes trainIds gets the Cityscapes palette (from the Cityscapes scripts'
label definitions); any other label set gets the PASCAL VOC colour map, whose colours are the
VOC dataset's own for its 21 classes and stay distinct up to 256 ids. Ids past the label set
(e.g. ignore, 255) are black.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastadv.data.cityscapes import CLASS_NAMES as CITYSCAPES_NAMES

CITYSCAPES = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip


def voc_colors(count: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map's first `count` colours: bit 3j + c of the id is bit 7 - j of
    channel c (red, green, blue), so that neighbouring ids differ in their brightest bits."""
    colors = []
    for index in range(count):
        rgb, bits = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        colors.append(tuple(rgb))
    return colors


def palette(classes: Sequence[str] | None = None) -> torch.Tensor:
    """[256, 3] colours in [0, 1] for the label set `classes` (None: unknown names, 256 ids);
    black past its end."""
    if classes is not None and tuple(classes) == CITYSCAPES_NAMES:
        colors = CITYSCAPES
    else:
        colors = voc_colors(256 if classes is None else min(len(classes), 256))
    table = torch.zeros(256, 3)
    table[: len(colors)] = torch.tensor(colors, dtype=torch.float32) / 255
    return table


def palette_ids(labels: torch.Tensor) -> torch.Tensor:
    """A label map's ids as rows of a palette: on the CPU, out-of-range ids on its ends."""
    return labels.long().clamp(0, 255).cpu()


def colorize(labels: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """Label map [H, W] -> RGB image [3, H, W] in [0, 1], in `colors` (a `palette`)."""
    return colors[palette_ids(labels)].permute(2, 0, 1)
