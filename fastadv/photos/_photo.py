"""A photo as fastadv holds it between reading and writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


class PhotoError(ValueError):
    """A photo that cannot be read or written as asked; the message is one line naming the
    file, fit to print as it is."""


@dataclass
class Photo:
    """A photo in display orientation (EXIF orientation applied).

    pixels:      float32 [C, H, W] in [0, 1]; C = 1 for greyscale, 3 for colour.
    alpha:       the alpha channel [H, W] as the file's samples (uint8, or uint16 for 16 bits),
                 written back as it is; None without one.
    bit_depth:   8 or 16: the pixels lie on the grid k / (2**bit_depth - 1).
    mode:        the file's Pillow mode ("P", "I;16", "RGBA", ...), before any conversion;
                 16-bit grey + alpha, RGB and RGBA, which Pillow has no mode for, as
                 "LA;16", "RGB;16" and "RGBA;16".
    format:      the file's format as Pillow names it ("PNG", "JPEG", "TIFF", ...).
    icc_profile: the embedded ICC profile, or None.
    exif:        the EXIF block to write out ("Exif\\0\\0" + TIFF data), or None: the
                 orientation removed (it is applied to the pixels), and what described the
                 source file's own pixel data left out (see _read.SOURCE_TAGS).
    """

    path: Path
    pixels: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    mode: str
    format: str
    icc_profile: bytes | None
    exif: bytes | None

    @property
    def channels(self) -> int:
        return self.pixels.shape[0]

    @property
    def grey(self) -> bool:
        return self.channels == 1

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return tuple(self.pixels.shape[1:])

    @property
    def levels(self) -> int:
        """The largest sample value, 255 or 65535."""
        return 2**self.bit_depth - 1
