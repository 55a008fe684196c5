"""Cityscapes reader on a small tree in the official layout, written by the test."""

import numpy as np
import pytest
import torch
from PIL import Image

from fastadv.data import Cityscapes, to_train_ids

# (labelId, trainId) for every labelId, from cityscapesScripts/helpers/labels.py.
OFFICIAL = [
    (0, 255), (1, 255), (2, 255), (3, 255), (4, 255), (5, 255), (6, 255), (7, 0), (8, 1),
    (9, 255), (10, 255), (11, 2), (12, 3), (13, 4), (14, 255), (15, 255), (16, 255), (17, 5),
    (18, 255), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10), (24, 11), (25, 12), (26, 13),
    (27, 14), (28, 15), (29, 255), (30, 255), (31, 16), (32, 17), (33, 18),
]  # fmt: skip


def write_tree(root, split="val", cities=("bochum", "aachen"), per_city=2, size=(24, 40)):
    """A Cityscapes-like tree; returns {stem: (rgb uint8, labelIds uint8)}."""
    rng = np.random.default_rng(0)
    written = {}
    for city in cities:
        for frame in range(per_city):
            stem = f"{city}_000000_{frame:06d}"
            rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            ids = rng.choice([0, 1, 7, 8, 9, 11, 17, 21, 23, 24, 26, 33], size=size).astype(
                np.uint8
            )
            img_dir = root / "leftImg8bit" / split / city
            gt_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(img_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(ids).save(gt_dir / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(rgb).save(gt_dir / f"{stem}_gtFine_color.png")  # must be ignored
            written[stem] = (rgb, ids)
    return written


def test_official_label_mapping():
    ids = np.array([i for i, _ in OFFICIAL], np.uint8)
    assert to_train_ids(ids).tolist() == [t for _, t in OFFICIAL]


def test_reads_images_and_maps_labels(tmp_path):
    written = write_tree(tmp_path)
    data = Cityscapes(tmp_path, "val")
    assert len(data) == 4
    assert [p.parent.name for p in data.images] == ["aachen", "aachen", "bochum", "bochum"]
    for index, path in enumerate(data.images):
        rgb, ids = written[path.name[: -len("_leftImg8bit.png")]]
        image, label = data[index]
        assert image.shape == (3, 24, 40) and image.dtype == torch.float32
        torch.testing.assert_close(image, torch.from_numpy(rgb).permute(2, 0, 1) / 255.0)
        assert label.dtype == torch.int64
        expected = dict(OFFICIAL)
        assert label.tolist() == [[expected[v] for v in row] for row in ids.tolist()]


def test_downscale_and_city_filter(tmp_path):
    write_tree(tmp_path, size=(32, 64))
    data = Cityscapes(tmp_path, "val", size=(16, 32), cities=["bochum"])
    assert len(data) == 2
    image, label = data[0]
    assert image.shape == (3, 16, 32) and label.shape == (16, 32)
    assert set(label.unique().tolist()) <= {0, 1, 2, 5, 8, 10, 11, 13, 18, 255}


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="leftImg8bit"):
        Cityscapes(tmp_path, "val")
    write_tree(tmp_path, per_city=1)
    next((tmp_path / "gtFine" / "val" / "aachen").glob("*_labelIds.png")).unlink()
    with pytest.raises(FileNotFoundError, match="label file"):
        Cityscapes(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="no Cityscapes images"):
        Cityscapes(tmp_path, "train")
