"""A 16-bit PNG encoder, with the photo's ICC profile and EXIF: Pillow holds 16-bit samples for
greyscale alone, and OpenCV writes no metadata. The PNG format: ISO/IEC 15948 (PNG 3rd ed.)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples a pixel -> PNG colour type: greyscale, greyscale + alpha, RGB, RGBA.
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
SUB = 1  # the filter type: each byte less the byte of the pixel before it


def encode_png16(samples: np.ndarray, icc_profile: bytes | None, exif: bytes | None) -> bytes:
    """The PNG file of samples [H, W, K] (uint16, K = 1 to 4 as in COLOUR_TYPE). exif is the
    block Pillow gives ("Exif\\0\\0" + TIFF data); the eXIf chunk holds the TIFF data."""
    height, width, count = samples.shape
    raw = samples.astype(">u2").reshape(height, -1).view(np.uint8)
    bpp = 2 * count  # bytes a pixel
    rows = np.empty((height, 1 + raw.shape[1]), np.uint8)
    rows[:, 0] = SUB
    rows[:, 1 : 1 + bpp] = raw[:, :bpp]
    np.subtract(raw[:, bpp:], raw[:, :-bpp], out=rows[:, 1 + bpp :])  # modulo 256
    header = struct.pack(">IIBBBBB", width, height, 16, COLOUR_TYPE[count], 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if icc_profile:
        chunks.append(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))
    if exif:
        chunks.append(_chunk(b"eXIf", exif.removeprefix(b"Exif\0\0")))
    chunks += [_chunk(b"IDAT", zlib.compress(rows)), _chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
