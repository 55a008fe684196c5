"""SynthCity: shapes, determinism, splits, label sanity and speed."""

import time

import numpy as np
import pytest
import torch
from scipy import ndimage

from fastadv.data import IGNORE_INDEX, SYNTHCITY_CLASSES, SynthCity, render_scene
from fastadv.data.synthcity import PERSON


def test_item_shapes_dtypes_and_range():
    image, label = SynthCity("val", 2, size=(64, 128))[1]
    assert image.shape == (3, 64, 128) and image.dtype == torch.float32
    assert label.shape == (64, 128) and label.dtype == torch.int64
    assert 0 <= image.min() and image.max() <= 1


@pytest.mark.parametrize("size", [(16, 16), (37, 53), (256, 512), (300, 200)])
def test_any_resolution(size):
    image, label = render_scene(3, *size)
    assert image.shape == (*size, 3) and label.shape == size


def test_deterministic_by_seed():
    a, b = render_scene(11, 64, 128), render_scene(11, 64, 128)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], render_scene(12, 64, 128)[0])
    x1, y1 = SynthCity("val", 5, size=(64, 128))[4]
    x2, y2 = SynthCity("val", 50, size=(64, 128))[4]  # an item does not depend on the length
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_splits_differ():
    train = SynthCity("train", 3, size=(64, 128))
    val = SynthCity("val", 3, size=(64, 128))
    for i in range(3):
        assert not torch.equal(train[i][0], val[i][0])


def test_tensors_stack_quantised_items():
    data = SynthCity("val", 3, size=(32, 64))
    images, labels = data.tensors(1, 3)
    assert images.shape == (2, 3, 32, 64) and images.dtype == torch.uint8
    image, label = data[2]
    assert torch.equal(images[1], (image * 255).round().to(torch.uint8))
    assert torch.equal(labels[1].long(), label)


def test_labels_are_valid_and_all_classes_occur():
    labels = np.stack([render_scene(np.random.SeedSequence([0, 1, i]))[1] for i in range(24)])
    assert set(np.unique(labels)) <= {*SYNTHCITY_CLASSES, IGNORE_INDEX}  # every pixel labelled
    for c in SYNTHCITY_CLASSES:
        assert (labels == c).any(), f"class {c} never drawn"
    assert (labels == IGNORE_INDEX).mean() < 0.05


def test_persons_vary_in_number_and_size():
    counts, heights = [], []
    for i in range(24):
        label = render_scene(np.random.SeedSequence([0, 1, i]))[1]
        blobs, n = ndimage.label(label == PERSON)
        counts.append(n)
        heights += [s[0].stop - s[0].start for s in ndimage.find_objects(blobs)]
    assert min(counts) == 0 and max(counts) >= 3  # some scenes without persons, some with several
    assert min(heights) < 20 and max(heights) > 80  # far and near persons at 256x512


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        SynthCity("training")
    with pytest.raises(ValueError, match="16x16"):
        render_scene(0, 8, 8)
    with pytest.raises(IndexError):
        SynthCity("val", 2)[2]


def test_speed_report():
    n = 8
    start = time.perf_counter()
    for i in range(n):
        render_scene(i)
    rate = n / (time.perf_counter() - start)
    print(f"SynthCity 256x512: {rate:.1f} images/s")
    assert rate > 1
