"""Writing a perturbed photo: lossless PNG by default, at the photo's bit depth, with its alpha,
ICC profile and EXIF; never over an existing file or the input."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastadv.photos._photo import Photo, PhotoError
from fastadv.photos._png16 import encode_png16

# Suffix -> format. PNG holds everything; WebP is written lossless, at 8 bits, in colour.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
SAVE_OPTIONS = {
    "PNG": {},
    "JPEG": {"quality": 95, "subsampling": 0},  # 4:4:4: no chroma averaged away
    "WEBP": {"lossless": True},
}
JPEG_NOTE = (
    "JPEG is lossy and undoes part of the perturbation: re-encoding undid Sweere et al.'s "
    "protection of 8 % of images at quality 95 (the quality written) and 29 % at 75 "
    "(docs/protect.md); write .png to keep it exactly"
)


@dataclass(frozen=True)
class Written:
    """A photo file written: where, its (height, width), bits a sample and format."""

    path: Path
    size: tuple[int, int]
    bit_depth: int
    format: str


def output_warning(path, photo: Photo) -> str | None:
    """What writing `photo` to `path` would lose, as one line to print before the work
    starts, or None when nothing is lost. Raises PhotoError when it cannot be written there at
    all (an unsupported suffix; alpha in a JPEG)."""
    kind = _format(Path(path), photo)
    notes = [JPEG_NOTE] if kind == "JPEG" else []
    if kind != "PNG" and photo.bit_depth > 8:
        notes.append(f"it is written with 8 bits a sample, not the photo's {photo.bit_depth}")
    if kind == "WEBP" and photo.grey:
        notes.append("WebP has no greyscale: it is written in RGB")
    return f"{path}: {'; '.join(notes)}" if notes else None


def write_photo(path, photo: Photo, pixels: torch.Tensor) -> Written:
    """Writes pixels [C, H, W] in [0, 1] (the photo's channels and size, as
    Working.full_size gives them) to a new file `path` as the photo's format would hold them:
    PNG at the photo's bit depth, or JPEG / WebP (see output_warning) at 8; with the photo's
    alpha as it was read, its ICC profile and its EXIF. Raises PhotoError when `path` exists
    or is the input."""
    path = Path(path)
    kind = _format(path, photo)
    if tuple(pixels.shape) != (photo.channels, *photo.size):
        raise ValueError(
            f"pixels must be the photo's [{photo.channels}, {photo.size[0]}, {photo.size[1]}], "
            f"got {tuple(pixels.shape)}"
        )
    if path.resolve() == photo.path.resolve():
        raise PhotoError(f"{path}: is the input photo; fastadv never writes over an input")
    bit_depth = photo.bit_depth if kind == "PNG" else 8
    samples = _samples(photo, pixels, bit_depth)
    if bit_depth == 16:
        data = encode_png16(samples, photo.icc_profile, photo.exif)
    else:
        data = _pillow_encode(samples, kind, photo)
    _write_new(path, data)
    return Written(path, photo.size, bit_depth, kind)


def free_path(path, protected=frozenset()) -> Path:
    """`path`, or `path` with -1, -2, ... before the suffix: neither an existing file nor one
    of `protected` (resolved paths)."""
    path = Path(path)
    candidate, n = path, 0
    while candidate.exists() or candidate.resolve() in protected:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _format(path: Path, photo: Photo) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise PhotoError(
            f"{path}: cannot write {path.suffix or 'a file without a suffix'}; "
            f"use one of {', '.join(FORMATS)}"
        )
    if kind == "JPEG" and photo.alpha is not None:
        raise PhotoError(f"{path}: JPEG has no alpha channel to keep the photo's; use .png")
    return kind


def _samples(photo: Photo, pixels: torch.Tensor, bit_depth: int) -> np.ndarray:
    """[H, W, K] of uint8 or uint16: the pixels rounded to the grid, the alpha appended (as it
    was read when the depth is the photo's, else rounded to the new one)."""
    levels, dtype = (65535, np.uint16) if bit_depth == 16 else (255, np.uint8)
    colour = pixels.detach().cpu().float().clamp(0, 1).mul_(levels).round_().numpy()
    samples = colour.astype(dtype).transpose(1, 2, 0)
    if photo.alpha is None:
        return samples
    alpha = photo.alpha.numpy()
    if bit_depth != photo.bit_depth:
        alpha = np.rint(alpha.astype(np.float32) * (levels / photo.levels))
    return np.concatenate([samples, alpha.astype(dtype)[..., None]], axis=2)


def _pillow_encode(samples: np.ndarray, kind: str, photo: Photo) -> bytes:
    image = Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    metadata = {"icc_profile": photo.icc_profile, "exif": photo.exif}
    buffer = io.BytesIO()
    image.save(
        buffer, format=kind, **SAVE_OPTIONS[kind], **{k: v for k, v in metadata.items() if v}
    )
    return buffer.getvalue()


def _write_new(path: Path, data: bytes) -> None:
    """Writes data to path, which must not exist (checked by the system as the file is made,
    so no file that appears meanwhile is overwritten either); no partial file is left."""
    try:
        with open(path, "xb") as file:
            try:
                file.write(data)
            except BaseException:
                path.unlink()
                raise
    except FileExistsError:
        raise PhotoError(f"{path}: exists; fastadv never writes over a file") from None
    except OSError as error:
        raise PhotoError(f"{path}: cannot write it ({error.strerror or error})") from None
