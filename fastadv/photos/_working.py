"""The attack's view of a photo: a working copy no larger than max_side, the three channels a
model takes, and the way back to a full-size photo of the photo's own channels.

The working copy's pixels are cells of whole photo pixels: row j of the photo falls in working
row j * h // H (columns alike), so a cell is floor(H / h) or ceil(H / h) rows high. Downscaling
averages each cell (a box filter); the perturbation goes back up by repeating each working
pixel over its cell. Downscaling the written photo then gives back the attacked working copy
(up to the file's rounding and the clamp to [0, 1]): what the attack did at the working size
is what the file holds. With bilinear resampling both ways instead, `hide_classes` (eps 10/255,
fcn8s-synthcity) on six scikit-image photos at max_side 256 lost 7 % to 50 % of its hidden
pixels on that trip; with the cells, 0 % to 2 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fastadv.photos._photo import Photo

# The longest side the attacks run at unless told otherwise. A 6000x4000 photo attacked at full
# size took 18.5 GB under `fastadv hide` before running out (issue 17). At 1024 (683x1024), on
# the CPU, hide_classes with fcn8s-synthcity added 0.7 GB to the 1.0 GB the process held with
# that photo read (1.7 GB at the peak); the colour-variance protection with scene-cnn, nothing.
DEFAULT_MAX_SIDE = 1024


class GreyscaleModel(nn.Module):
    """For a greyscale photo: `model` sees the mean of the three channels it is given, on all
    three. The attack may move the channels apart; the model, and the photo written
    (Working.full_size), both take the mean, so the model's verdict is on the very grey image
    written, and |mean δ| <= max |δ| keeps it within the attack's L-inf budget (attacks of sign
    steps from a grey start move the three channels alike: the grey δ is then the attack's)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model(x.mean(1, keepdim=True).expand_as(x))


def photo_model(model: nn.Module, photo: Photo) -> nn.Module:
    """The model to attack `photo` with: GreyscaleModel(model) for a greyscale photo."""
    return GreyscaleModel(model) if photo.grey else model


def working_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled so that the longer side is at most max_side (None: no limit)."""
    whole = isinstance(max_side, int) and not isinstance(max_side, bool)
    if max_side is not None and not (whole and max_side >= 1):
        raise ValueError(f"max_side must be a whole number of pixels >= 1, got {max_side!r}")
    height, width = size
    longest = max(height, width)
    if max_side is None or longest <= max_side:
        return size
    return max(1, round(height * max_side / longest)), max(1, round(width * max_side / longest))


@dataclass
class Working:
    """The photo at the size the attack runs at: pixels [C, h, w], the photo's own when it
    fits within max_side, else the means of its cells (module docstring)."""

    photo: Photo
    pixels: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the attack runs at."""
        return tuple(self.pixels.shape[1:])

    @property
    def scaled(self) -> bool:
        return self.size != self.photo.size

    def model_input(self) -> torch.Tensor:
        """The batch [1, 3, h, w] to attack: a greyscale photo on all three channels (attack
        it through photo_model's wrapper)."""
        return self.pixels.expand(3, -1, -1).contiguous()[None]

    def full_size(self, adv: torch.Tensor) -> torch.Tensor:
        """The photo's pixels [C, H, W] at full size from the attacked working copy adv
        ([3, h, w] as model_input's, or [C, h, w]): a greyscale photo takes the mean of the
        channels, as GreyscaleModel does; the perturbation adv - pixels, each value repeated
        over its cell (its L-inf unchanged), is added to the full-resolution photo and the sum
        clamped to [0, 1]."""
        adv = adv.detach().to(self.pixels.device, self.pixels.dtype)
        if self.photo.grey and adv.shape[0] == 3:
            adv = adv.mean(0, keepdim=True)
        if adv.shape != self.pixels.shape:
            raise ValueError(
                f"adv must be [3 or {self.photo.channels}, {self.size[0]}, {self.size[1]}], "
                f"got {tuple(adv.shape)}"
            )
        if not self.scaled:
            return adv.clamp(0, 1)
        rows, cols = (cells(n, m) for n, m in zip(self.photo.size, self.size, strict=True))
        delta = (adv - self.pixels)[:, rows][:, :, cols]  # indexing: 6x index_select's speed
        return delta.add_(self.photo.pixels).clamp_(0, 1)


def working_copy(photo: Photo, max_side: int | None = DEFAULT_MAX_SIDE) -> Working:
    """The photo at the size the attack runs at (see Working and working_size)."""
    size = working_size(photo.size, max_side)
    if size == photo.size:
        return Working(photo, photo.pixels)
    pixels = photo.pixels
    for dim, (n, m) in enumerate(zip(photo.size, size, strict=True), start=1):
        pixels = _cell_means(pixels, dim, cells(n, m), m)
    return Working(photo, pixels.clamp_(0, 1))  # the clamp only takes off rounding


def cells(full: int, working: int) -> torch.Tensor:
    """For each of `full` rows (or columns), the working row it falls in."""
    return torch.arange(full) * working // full


def _cell_means(x: torch.Tensor, dim: int, index: torch.Tensor, count: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[dim] = count
    sums = x.new_zeros(shape).index_add_(dim, index, x)
    sizes = torch.bincount(index, minlength=count).to(x.dtype)
    return sums.div_(sizes.view([-1 if d == dim else 1 for d in range(x.dim())]))
