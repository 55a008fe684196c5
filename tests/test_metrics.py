"""fastadv.metrics against hand-made cases and scikit-image."""

import pytest
import torch

from fastadv import metrics


def test_confusion_matrix_iou_and_accuracy():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = metrics.confusion_matrix(pred, target, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    assert metrics.pixel_accuracy(cm) == pytest.approx(5 / 7)
    iou = metrics.per_class_iou(cm)
    torch.testing.assert_close(iou, torch.tensor([1 / 3, 3 / 4, 1 / 2], dtype=torch.float64))
    assert metrics.mean_iou(cm) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert metrics.iou_ratio(0.3, 0.6) == pytest.approx(0.5)


def test_absent_class_is_left_out_of_the_mean():
    cm = metrics.confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2), 3)
    assert torch.isnan(metrics.per_class_iou(cm)[1:]).all()
    assert metrics.mean_iou(cm) == 1.0


def test_hidden_and_preserved_on_a_hand_made_case():
    person = 11
    clean = torch.tensor([[[person, person, 0, 0], [person, person, 1, 1]]])
    adv = torch.tensor([[[person, 0, 0, 2], [0, 0, 1, 1]]])
    assert metrics.hidden_fraction(clean, adv, [person]).tolist() == [0.75]
    assert metrics.preserved_fraction(clean, adv, [person]).tolist() == [0.75]
    nobody = torch.zeros(1, 2, 4, dtype=torch.long)
    assert torch.isnan(metrics.hidden_fraction(nobody, nobody, [person])).all()


def test_topk_accuracy():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    labels = torch.tensor([2, 0])
    assert metrics.topk_accuracy(logits, labels, 1) == 0.5
    assert metrics.topk_accuracy(logits, labels, 2) == 1.0
    with pytest.raises(ValueError, match="exceeds"):
        metrics.topk_accuracy(logits, labels, 4)


def test_ssim_matches_skimage():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 24, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = metrics.ssim(x, y)
    for i in range(2):
        want = structural_similarity(x[i].numpy(), y[i].numpy(), channel_axis=0, data_range=1.0)
        assert got[i].item() == pytest.approx(want, abs=1e-10)
    assert metrics.ssim(x, x).tolist() == pytest.approx([1.0, 1.0])


def test_distortion_in_pixel_units():
    x = torch.zeros(1, 1, 2, 2)
    adv = x + torch.tensor([3.0, 0, 0, 0]).view(1, 1, 2, 2) / 255
    # (1/255) sqrt(mean(d_px^2)) with d_px = (3, 0, 0, 0): (1/255) * 1.5
    assert metrics.distortion(adv, x).item() == pytest.approx(1.5 / 255)


def test_mean_delta_e2000_matches_colour_science():
    colour = pytest.importorskip("colour")
    skcolor = pytest.importorskip("skimage.color")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)
    y = (x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = metrics.mean_delta_e2000(x, y)
    for i in range(2):
        lab_x = skcolor.rgb2lab(x[i].permute(1, 2, 0).numpy())
        lab_y = skcolor.rgb2lab(y[i].permute(1, 2, 0).numpy())
        want = colour.difference.delta_E_CIE2000(lab_x, lab_y).mean()
        assert got[i].item() == pytest.approx(want, abs=1e-9)
