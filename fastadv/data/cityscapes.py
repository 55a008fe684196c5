"""Cityscapes (Cordts et al. 2016) from its official directory layout, labels as trainIds.

    root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Nothing is downloaded: point ``root`` at an unpacked ``leftImg8bit_trainvaltest.zip`` and
``gtFine_trainvaltest.zip``. Label ids map to the 19 evaluation trainIds of cityscapesScripts;
every other id (void, ego vehicle, parking, …) maps to ``IGNORE_INDEX`` = 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastadv.data.synthcity import IGNORE_INDEX

CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

#: labelId → trainId, from cityscapesScripts' labels.py (ids 0…33; -1, the licence plate, is void).
_TRAIN_ID_OF = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
LABEL_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, np.uint8)
LABEL_TO_TRAIN_ID[list(_TRAIN_ID_OF)] = list(_TRAIN_ID_OF.values())

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
PAPER_SIZE = (512, 1024)  # Fischer et al. evaluate at 1024×512


def to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map an array of Cityscapes labelIds (0…255) to trainIds (0…18, 255 = ignore)."""
    return LABEL_TO_TRAIN_ID[np.asarray(label_ids, dtype=np.uint8)]


class Cityscapes(torch.utils.data.Dataset):
    """Image and fine labels of one split, sorted by file name.

    Items are ``(image [3, H, W] float32 in [0, 1], labels [H, W] int64 trainIds)``. With ``size``
    = (H, W) (e.g. ``PAPER_SIZE``) images are resized bilinearly (antialiased) and labels by
    nearest neighbour; without it they keep Cityscapes' 1024×2048.
    """

    num_classes = 19
    ignore_index = IGNORE_INDEX
    class_names = CLASS_NAMES

    def __init__(self, root, split: str = "val", size=None, cities=None):
        self.root, self.split = Path(root), split
        self.size = None if size is None else (int(size[0]), int(size[1]))
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"no Cityscapes images at {image_dir}; expected root/leftImg8bit/<split>/<city>/"
            )
        images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if cities is not None:
            images = [p for p in images if p.parent.name in set(cities)]
        if not images:
            raise FileNotFoundError(f"no *{IMAGE_SUFFIX} files under {image_dir}")
        self.images = images
        self.labels = [self._label_path(p) for p in images]

    def _label_path(self, image: Path) -> Path:
        stem = image.name[: -len(IMAGE_SUFFIX)]
        path = self.root / "gtFine" / self.split / image.parent.name / f"{stem}{LABEL_SUFFIX}"
        if not path.is_file():
            raise FileNotFoundError(f"label file {path} for {image} is missing")
        return path

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = Image.open(self.images[index]).convert("RGB")
        label = Image.open(self.labels[index])
        if self.size is not None:
            h, w = self.size
            image = image.resize((w, h), Image.BILINEAR)
            label = label.resize((w, h), Image.NEAREST)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        train_ids = torch.from_numpy(to_train_ids(np.asarray(label)).astype(np.int64))
        return pixels.contiguous(), train_ids
