"""Reading a photo file like a photo tool: its real bit depth, its orientation, its alpha, its
colour profile and EXIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, UnidentifiedImageError

from fastadv.photos._photo import Photo, PhotoError

# What each Pillow mode is read as. The perturbation needs 8 bits a sample at least, so
# bilevel images are read as greyscale and palette images as RGB(A).
READ_AS = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "P": "RGB",
    "PA": "RGBA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "YCbCr": "RGB",
}
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
REFUSED = {
    "CMYK": "CMYK photos are not supported: convert it to RGB with a colour-managed tool first",
    "I": "32-bit integer images are not supported: save it with 8 or 16 bits a sample",
    "F": "32-bit float images are not supported: save it with 8 or 16 bits a sample",
    "LAB": "Lab images are not supported: convert it to RGB first",
    "HSV": "HSV images are not supported: convert it to RGB first",
}
# With a transparent colour (PNG's tRNS, GIF's transparent index), the mode read as instead.
WITH_ALPHA = {"L": "LA", "RGB": "RGBA"}
# 16-bit samples Pillow reads at 8 bits: those pixels come from OpenCV's decoder instead.
DEEP_COLOUR = ("LA", "RGB", "RGBA")

# Tags that described the source file's own pixel data (its layout, compression, thumbnail,
# and the XMP and Photoshop blocks, which may carry an orientation or a preview of the
# unperturbed photo) rather than the photo: none of them is true of the file written.
SOURCE_TAGS = frozenset(
    tag.value
    for tag in (
        ExifTags.Base.NewSubfileType, ExifTags.Base.SubfileType, ExifTags.Base.ImageWidth,
        ExifTags.Base.ImageLength, ExifTags.Base.BitsPerSample, ExifTags.Base.Compression,
        ExifTags.Base.PhotometricInterpretation, ExifTags.Base.StripOffsets,
        ExifTags.Base.SamplesPerPixel, ExifTags.Base.RowsPerStrip,
        ExifTags.Base.StripByteCounts, ExifTags.Base.PlanarConfiguration,
        ExifTags.Base.Predictor, ExifTags.Base.ColorMap, ExifTags.Base.TileWidth,
        ExifTags.Base.TileLength, ExifTags.Base.TileOffsets, ExifTags.Base.TileByteCounts,
        ExifTags.Base.ExtraSamples, ExifTags.Base.SampleFormat, ExifTags.Base.JpegIFOffset,
        ExifTags.Base.JpegIFByteCount, ExifTags.Base.XMLPacket, ExifTags.Base.ImageResources,
        ExifTags.Base.InterColorProfile, ExifTags.Base.Orientation,
    )
)  # fmt: skip

# EXIF orientation -> the transform of an [H, W, ...] array that displays it upright, as
# Pillow's ImageOps.exif_transpose does (2: mirrored, 3: upside down, 6: turned a quarter
# counter-clockwise, so it is turned clockwise back, ...).
ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def read_photo(path) -> Photo:
    """The photo in file `path` (see Photo). Raises PhotoError, one line naming the file, for
    a missing or unreadable file, an animation and the modes in REFUSED."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return _photo(path, image)
    except PhotoError:
        raise
    except FileNotFoundError:
        raise PhotoError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PhotoError(f"{path}: is a folder, not a photo") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{path}: not an image, or in a format Pillow cannot read") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        reason = " ".join(str(getattr(error, "strerror", None) or error).split())  # one line
        raise PhotoError(f"{path}: cannot read it ({reason})") from None


def _photo(path: Path, image: Image.Image) -> Photo:
    if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
        # MPO: a JPEG with extra pictures (previews, depth) after the photo, which comes first.
        raise PhotoError(
            f"{path}: has {image.n_frames} frames; animations and multi-page files "
            "are not supported"
        )
    if image.mode in REFUSED:
        raise PhotoError(f"{path}: {REFUSED[image.mode]}")
    if image.mode not in READ_AS and image.mode not in SIXTEEN_BIT_GREY:
        raise PhotoError(f"{path}: images of mode {image.mode} are not supported")
    samples, bit_depth, mode = _samples(path, image)  # first: it reads the tile's depth
    exif = image.getexif()
    orientation = exif.get(ExifTags.Base.Orientation, 1)
    samples = ORIENT.get(orientation, np.asarray)(samples)
    height, width, count = samples.shape
    channels = 1 if count <= 2 else 3
    pixels = torch.from_numpy(
        samples[..., :channels].transpose(2, 0, 1).astype(np.float32, order="C")
    )
    alpha = torch.from_numpy(samples[..., -1].copy()) if count in (2, 4) else None
    return Photo(
        path=path,
        pixels=pixels.div_(2**bit_depth - 1),
        alpha=alpha,
        bit_depth=bit_depth,
        mode=mode,
        format=image.format,
        icc_profile=image.info.get("icc_profile") or None,
        exif=_exif_out(exif, width, height),
    )


def _samples(path: Path, image: Image.Image) -> tuple[np.ndarray, int, str]:
    """The file's samples [H, W, K] (uint8 or uint16: grey, grey + alpha, RGB or RGBA) in the
    file's orientation, their bit depth, and the file's mode (Photo.mode)."""
    if image.mode in SIXTEEN_BIT_GREY:
        return np.asarray(image).astype(np.uint16)[..., None], 16, image.mode
    deep = _deep_colour_mode(image)
    if deep:
        return _deep_colour_samples(path, deep), 16, f"{deep};16"
    mode = READ_AS[image.mode]
    if "transparency" in image.info:
        mode = WITH_ALPHA.get(mode, mode)
    samples = np.asarray(image if image.mode == mode else image.convert(mode))
    return samples.reshape(*samples.shape[:2], -1), 8, image.mode


def _deep_colour_mode(image: Image.Image) -> str | None:
    """The mode of a PNG's or TIFF's 16-bit samples ("LA", "RGB" or "RGBA") when Pillow would
    cut them to 8 bits (it also reads 16-bit grey + alpha as RGBA), else None."""
    if image.format == "PNG" and image.tile:
        mode, _, bits = image.tile[0].args.partition(";")
        return mode if bits == "16B" and mode in DEEP_COLOUR else None
    if image.format == "TIFF" and image.mode in DEEP_COLOUR:
        bits = image.tag_v2.get(ExifTags.Base.BitsPerSample, 8)
        return image.mode if (max(bits) if isinstance(bits, tuple) else bits) > 8 else None
    return None


def _deep_colour_samples(path: Path, mode: str) -> np.ndarray:
    """16-bit samples of a colour or grey + alpha PNG or TIFF, which Pillow would cut to 8 bits,
    through OpenCV's decoder (imported here: only these files need it)."""
    import cv2

    # IMREAD_UNCHANGED keeps the depth and the alpha, and leaves the orientation to us.
    bgr = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.dtype != np.uint16:
        raise PhotoError(f"{path}: cannot decode its 16-bit samples")
    # OpenCV gives BGR or BGRA, grey + alpha too (with B = G = R).
    return bgr[..., [0, 3] if mode == "LA" else [2, 1, 0, 3][: len(mode)]]


def _exif_out(exif: Image.Exif, width: int, height: int) -> bytes | None:
    """The EXIF to write with the photo: without SOURCE_TAGS (the orientation among them, now
    applied), without the maker note (vendor data whose offsets break when moved, and which
    may hold a preview), with the pixel dimensions of the upright photo. Pillow writes IFD0
    with its Exif, GPS and Interop IFDs, never IFD1 and its thumbnail of the unperturbed
    photo."""
    for tag in SOURCE_TAGS & set(exif):
        del exif[tag]
    if ExifTags.IFD.Exif in exif:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        sub.pop(ExifTags.Base.MakerNote, None)
        if ExifTags.Base.ExifImageWidth in sub or ExifTags.Base.ExifImageHeight in sub:
            sub[ExifTags.Base.ExifImageWidth] = width
            sub[ExifTags.Base.ExifImageHeight] = height
    return exif.tobytes() if len(exif) else None
