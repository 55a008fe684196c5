"""DenseCRF: equality with the fully connected reference, gradients, behaviour, errors."""

import pytest
import torch
import torch.nn.functional as F

from fastadv.models import CRFModel, DenseCRF


def inputs(b=2, k=4, h=6, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, h, w, generator=g, dtype=torch.float64) * 2
    images = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    return logits, images


@pytest.mark.parametrize(
    "params",
    [
        {},  # pydensecrf's defaults
        {"bilateral_sxy": 2.0, "bilateral_srgb": 40.0, "gaussian_sxy": 1.0},
        {"iterations": 1, "gaussian_compat": 0.0},
    ],
)
def test_whole_image_window_equals_fully_connected(params):
    logits, images = inputs()
    window = 2 * max(logits.shape[-2:]) - 1  # every pixel sees every other
    crf = DenseCRF(window=window, **params)
    torch.testing.assert_close(crf(logits, images), crf.fully_connected(logits, images))


def test_small_window_is_an_approximation():
    logits, images = inputs()
    params = {"bilateral_sxy": 3.0}
    crf = DenseCRF(window=3, **params)
    assert not torch.allclose(crf(logits, images), crf.fully_connected(logits, images))


def test_zero_iterations_is_log_softmax():
    logits, images = inputs()
    torch.testing.assert_close(DenseCRF(iterations=0)(logits, images), F.log_softmax(logits, 1))


def test_gradcheck_logits_and_image():
    logits, images = inputs(b=1, k=3, h=4, w=5)
    crf = DenseCRF(iterations=2, window=3, bilateral_srgb=60.0)
    assert torch.autograd.gradcheck(
        crf, (logits.requires_grad_(), images.requires_grad_()), eps=1e-6, atol=1e-5
    )


def test_crf_cleans_label_noise_along_colour_edges():
    """Two flat colour halves, logits that favour the right class with noise: the CRF fixes more
    pixels than it breaks."""
    g = torch.Generator().manual_seed(1)
    images = torch.zeros(1, 3, 16, 16)
    images[..., 8:] = 1.0
    truth = (images[:, 0] > 0.5).long()
    logits = F.one_hot(truth, 2).permute(0, 3, 1, 2).float() + torch.randn(
        1, 2, 16, 16, generator=g
    )
    before = (logits.argmax(1) == truth).float().mean()
    after = (DenseCRF()(logits, images).argmax(1) == truth).float().mean()
    assert before < 0.9 and after > before + 0.05


def test_crf_model_wraps_a_network():
    net = torch.nn.Conv2d(3, 5, 3, padding=1)
    model = CRFModel(lambda x: {"out": net(x)}, DenseCRF(iterations=1, window=5))
    assert model(torch.rand(2, 3, 9, 11)).shape == (2, 5, 9, 11)


def test_bad_inputs():
    with pytest.raises(ValueError, match="odd"):
        DenseCRF(window=4)
    with pytest.raises(ValueError, match="iterations"):
        DenseCRF(iterations=-1)
    with pytest.raises(ValueError, match="logits"):
        DenseCRF()(torch.rand(1, 4, 6, 6), torch.rand(1, 3, 6, 7))
    with pytest.raises(ValueError, match="images"):
        DenseCRF()(torch.rand(1, 4, 6, 6), torch.rand(1, 1, 6, 6))
