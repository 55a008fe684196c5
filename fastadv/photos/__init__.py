"""Photos in and out of the attacks, as a photo tool reads and writes them.

    photo = read_photo("IMG_0042.jpg")          # upright, real bit depth, alpha, ICC, EXIF
    work = working_copy(photo, max_side=1024)     # the size the attack runs at
    result = attack(photo_model(model, photo), work.model_input(), ...)
    pixels = work.full_size(result.adv[0])        # the photo's channels, at its full size
    written = write_photo("IMG_0042_protected.png", photo, pixels)

- Depth: 8- and 16-bit samples are read as they are (16-bit colour PNGs and TIFFs through
  OpenCV, as Pillow cuts them to 8 bits) and a PNG is written at the photo's depth.
- Orientation: EXIF orientation is applied on reading and removed from the EXIF written.
- Metadata: the ICC profile and the EXIF are written back (less what described the source
  file's pixel data and its thumbnail, see _read._exif_out).
- Alpha: passed through untouched; the model sees the colour channels only.
- Greyscale: the attack gets three equal channels and the model (photo_model) their mean, the
  same mean the written grey photo holds (GreyscaleModel says why the L-inf budget holds).
- Size: the attack runs on a copy at most max_side pixels long; its perturbation is upsampled
  and added to the full-resolution photo, so that the photo keeps its size.
- Formats: PNG by default; JPEG and WebP are written but flagged (output_warning).
"""

from fastadv.photos._photo import Photo, PhotoError
from fastadv.photos._read import read_photo
from fastadv.photos._working import (
    DEFAULT_MAX_SIDE,
    GreyscaleModel,
    Working,
    photo_model,
    working_copy,
    working_size,
)
from fastadv.photos._write import FORMATS, Written, free_path, output_warning, write_photo

__all__ = [
    "DEFAULT_MAX_SIDE",
    "FORMATS",
    "GreyscaleModel",
    "Photo",
    "PhotoError",
    "Working",
    "Written",
    "free_path",
    "output_warning",
    "photo_model",
    "read_photo",
    "working_copy",
    "working_size",
    "write_photo",
]
