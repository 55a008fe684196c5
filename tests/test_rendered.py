"""RenderedObjects: determinism, silhouettes per class, the 8-bit grid, bad inputs."""

import pytest
import torch

from fastadv.data import RenderedObjects
from fastadv.data.rendered import CLASSES, NONE, PHOTOS, render


def test_same_seed_same_images_and_prefixes_agree():
    a = RenderedObjects("test", 8, seed=3).render(range(8))
    b = RenderedObjects("test", 16, seed=3).render(range(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = RenderedObjects("test", 8, seed=4).render(range(8))
    assert not torch.equal(a, other)


def test_splits_draw_backgrounds_from_disjoint_photographs():
    assert not set(PHOTOS["train"]) & set(PHOTOS["test"])


def test_images_on_the_8bit_grid_and_labels_cycle():
    ds = RenderedObjects("test", 12)
    x = ds.images()
    assert x.shape == (12, 1, 64, 64) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x * 255, (x * 255).round(), rtol=0, atol=1e-4)
    assert ds.labels.tolist() == [0, 1, 2, 3] * 3
    assert (ds.angles.abs() <= 0.5).all() and (ds.angles[ds.labels == NONE] == 0).all()
    img, label, angles = ds[5]
    torch.testing.assert_close(img, x[5])
    assert label == 1 and angles.shape == (3,)


def test_none_images_are_the_background_alone():
    ds = RenderedObjects("test", 8)
    none = (ds.labels == NONE).nonzero().squeeze(1)
    bg = ds.background(none.tolist())
    torch.testing.assert_close(ds.render(none), (bg * 255).round() / 255, rtol=0, atol=0)
    assert not torch.equal(ds.render([0]), (ds.background([0]) * 255).round() / 255)


def _silhouettes(angles=(0.0, 0.0, 0.0)):
    grey, alpha = render(torch.arange(3), torch.tensor([angles] * 3))
    return grey, alpha[:, 0] > 0.5


def test_silhouettes_per_class():
    grey, mask = _silhouettes()
    assert ((grey >= 0) & (grey <= 1)).all()
    area = mask.float().mean((1, 2))
    assert ((area > 0.08) & (area < 0.5)).all(), area
    rows, cols = mask.any(2).sum(1), mask.any(1).sum(1)  # height, width of the bounding box
    monkey, penguin, plane = range(3)
    assert cols[monkey] > rows[monkey]  # ears stick out sideways
    assert rows[penguin] > cols[penguin]  # upright
    assert cols[plane] > 60 * 0.6 and rows[plane] > 60 * 0.6 and area[plane] < area[monkey]
    for i in range(3):
        for j in range(i):
            iou = (mask[i] & mask[j]).sum() / (mask[i] | mask[j]).sum()
            assert iou < 0.6, (CLASSES[i], CLASSES[j], iou)
    # at zero rotation every model is left-right symmetric
    torch.testing.assert_close(mask.float(), mask.flip(2).float())


def test_rotation_moves_the_silhouette_and_alpha_is_fractional_at_edges():
    _, straight = _silhouettes()
    _, turned = _silhouettes((0.5, -0.5, 0.5))
    assert ((straight ^ turned).float().mean((1, 2)) > 0.02).all()
    _, alpha = render(torch.tensor([0]), torch.zeros(1, 3))
    assert ((alpha > 0) & (alpha < 1)).any()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RenderedObjects("val", 4), "split"),
        (lambda: RenderedObjects("train", 0), "size"),
        (lambda: render(torch.tensor([3]), torch.zeros(1, 3)), "classes"),
        (lambda: render(torch.tensor([0, 1]), torch.zeros(1, 3)), "angles"),
        (lambda: RenderedObjects("test", 4)[4], "out of range"),
    ],
)
def test_bad_inputs(make, match):
    with pytest.raises((ValueError, IndexError), match=match):
        make()
