"""DenseCRF: the windowed mode against the exact mean field, the fully connected mode against
pydensecrf2 (Krähenbühl's permutohedral code) and the exact mean field on photographs, gradients,
behaviour, errors."""

import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch
import torch.nn.functional as F

from fastadv.models import CRFModel, DenseCRF
from fastadv.ops import permutohedral_filter
from tests._backends import GPU


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
def test_whole_image_window_equals_exact(params):
    logits, images = inputs()
    window = 2 * max(logits.shape[-2:]) - 1  # every pixel sees every other
    crf = DenseCRF(window=window, **params)
    torch.testing.assert_close(crf(logits, images), crf.exact(logits, images))


def test_small_window_is_an_approximation():
    logits, images = inputs()
    params = {"bilateral_sxy": 3.0}
    crf = DenseCRF(window=3, **params)
    assert not torch.allclose(crf(logits, images), crf.exact(logits, images))


@pytest.mark.parametrize("window", [None, 5])
def test_zero_iterations_is_log_softmax(window):
    logits, images = inputs()
    crf = DenseCRF(iterations=0, window=window)
    torch.testing.assert_close(crf(logits, images), F.log_softmax(logits, 1))


def test_gradcheck_windowed_logits_and_image():
    logits, images = inputs(b=1, k=3, h=4, w=5)
    crf = DenseCRF(iterations=2, window=3, bilateral_srgb=60.0)
    assert torch.autograd.gradcheck(
        crf, (logits.requires_grad_(), images.requires_grad_()), eps=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("window", [None, 11])
def test_crf_cleans_label_noise_along_colour_edges(window):
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
    after = (DenseCRF(window=window)(logits, images).argmax(1) == truth).float().mean()
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
    with pytest.raises(ValueError, match="bilateral_srgb"):
        DenseCRF(bilateral_srgb=0)
    with pytest.raises(ValueError, match="gaussian_compat"):
        DenseCRF(gaussian_compat=-1)
    crf = DenseCRF()
    with pytest.raises(ValueError, match="logits"):
        crf(torch.rand(1, 4, 6, 6), torch.rand(1, 3, 6, 7))
    with pytest.raises(ValueError, match="images"):
        crf(torch.rand(1, 4, 6, 6), torch.rand(1, 1, 6, 6))
    with pytest.raises(TypeError, match="logits"):
        crf(torch.ones(1, 4, 6, 6, dtype=torch.long), torch.rand(1, 3, 6, 6))
    with pytest.raises(TypeError, match="images"):
        crf(torch.rand(1, 4, 6, 6), torch.ones(1, 3, 6, 6, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty"):
        crf(torch.rand(0, 4, 6, 6), torch.rand(0, 3, 6, 6))
    nan = torch.rand(1, 4, 6, 6)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="logits must be finite"):
        crf(nan, torch.rand(1, 3, 6, 6))
    with pytest.raises(ValueError, match="images must be finite"):
        crf(torch.rand(1, 4, 6, 6), nan[:, :3])


# ---- the fully connected mode --------------------------------------------------------------


def photo(name: str, h: int, w: int) -> np.ndarray:
    """A photograph that ships with scikit-image, resized: uint8 [h, w, 3]."""
    image = skimage.transform.resize(getattr(skimage.data, name)(), (h, w), anti_aliasing=True)
    return (image * 255).round().astype(np.uint8)


def smooth_logits(k, h, w, seed):
    """Random logits varying over some 16 pixels: regions with soft borders."""
    g = np.random.default_rng(seed)
    coarse = g.standard_normal((k, max(2, h // 16), max(2, w // 16)))
    return (skimage.transform.resize(coarse, (k, h, w), order=1) * 3).astype(np.float32)


def noisy_labels(k, h, w, seed):
    """A blocky label map with 30 % of its pixels relabelled at random, as logits 2·one-hot."""
    g = np.random.default_rng(seed)
    blocks = g.integers(0, k, (max(2, h // 32), max(2, w // 32)))
    labels = skimage.transform.resize(blocks, (h, w), order=0, preserve_range=True).astype(int)
    flip = g.random((h, w)) < 0.3
    labels[flip] = g.integers(0, k, flip.sum())
    return (2 * np.eye(k, dtype=np.float32)[labels]).transpose(2, 0, 1).copy()


UNARIES = {"smooth": smooth_logits, "noisy": noisy_labels}
PHOTOS = ("astronaut", "coffee", "chelsea")


def pydensecrf_labels(image: np.ndarray, logits: np.ndarray, iterations: int = 5) -> np.ndarray:
    """pydensecrf2 with the parameters DenseCRF defaults to (its documented example's)."""
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    k, h, w = logits.shape
    crf = dcrf.DenseCRF2D(w, h, k)
    log_p = logits - logits.max(0) - np.log(np.exp(logits - logits.max(0)).sum(0))
    crf.setUnaryEnergy(np.ascontiguousarray(-log_p.reshape(k, -1), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    return np.array(crf.inference(iterations)).reshape(k, h, w).argmax(0)


def as_tensors(image: np.ndarray, logits: np.ndarray):
    return torch.from_numpy(logits)[None], torch.from_numpy(image).permute(2, 0, 1)[None] / 255.0


@pytest.mark.parametrize("unary", UNARIES)
@pytest.mark.parametrize("name", PHOTOS)
def test_labels_agree_with_pydensecrf(name, unary):
    h, w, k = 96, 144, 6
    image, logits = photo(name, h, w), UNARIES[unary](k, h, w, seed=len(name))
    ours = DenseCRF()(*as_tensors(image, logits)).argmax(1)[0].numpy()
    theirs = pydensecrf_labels(image, logits)
    assert np.mean(ours == theirs) >= 0.99
    assert np.mean(ours == logits.argmax(0)) < 0.98  # the CRF did change labels


@pytest.mark.parametrize("unary", UNARIES)
@pytest.mark.parametrize("name", PHOTOS)
def test_as_close_to_the_exact_mean_field_as_pydensecrf(name, unary):
    """On images small enough for the exact O((HW)²) mean field: pydensecrf2 agrees with it on
    91-100 % of the labels (these cases), the fully connected DenseCRF on as many (the same)."""
    h, w, k = 40, 60, 5
    image, logits = photo(name, h, w), UNARIES[unary](k, h, w, seed=len(name) + 1)
    crf = DenseCRF()
    z, x = as_tensors(image, logits)
    exact = crf.exact(z.double(), x.double()).argmax(1)[0].numpy()
    ours = np.mean(crf(z, x).argmax(1)[0].numpy() == exact)
    theirs = np.mean(pydensecrf_labels(image, logits) == exact)
    assert ours >= theirs >= 0.9


def test_gradcheck_logits():
    logits, images = inputs(b=2, k=3, h=5, w=6)
    crf = DenseCRF(iterations=2, bilateral_sxy=4.0, bilateral_srgb=40.0)
    assert torch.autograd.gradcheck(lambda z: crf(z, images), (logits.requires_grad_(),))


def test_no_gradient_reaches_the_image():
    logits, images = inputs(b=1, k=3, h=5, w=6)
    images.requires_grad_()
    DenseCRF()(logits.requires_grad_(), images).sum().backward()
    assert images.grad is None and logits.grad is not None


def test_backward_is_the_transposed_dense_operator():
    """The mean field written with the messages' explicit [HW, HW] matrices (each kernel's
    lattice filter applied to the identity), differentiated by autograd through the matrices,
    has the gradient of DenseCRF's, whose backward filters through the lattices transposed."""
    logits, images = inputs(b=1, k=4, h=6, w=7)
    crf = DenseCRF(iterations=3, bilateral_sxy=5.0)
    n = 6 * 7
    eye = torch.eye(n, dtype=torch.float64)[:, None, :].expand(n, 1, n).reshape(n, n, 1)
    matrix = sum(
        torch.cat([permutohedral_filter(e[None].contiguous(), lat) for e in eye])[..., 0].T
        for lat in crf._lattices(images, torch.float64)
    )
    assert not torch.allclose(matrix, matrix.T)

    def explicit(z):
        flat = z.permute(0, 2, 3, 1).reshape(1, n, 4)
        unary = F.log_softmax(flat, 2)
        out = unary
        for _ in range(3):
            out = unary + matrix @ out.softmax(2)
        return out.reshape(1, 6, 7, 4).permute(0, 3, 1, 2)

    grad = torch.randn(logits.shape, dtype=torch.float64)
    ours = torch.autograd.grad(crf(logits.requires_grad_(), images), logits, grad)[0]
    want = torch.autograd.grad(explicit(logits), logits, grad)[0]
    torch.testing.assert_close(crf(logits, images), explicit(logits))
    torch.testing.assert_close(ours, want)


@pytest.mark.skipif(not GPU, reason="no GPU")
def test_cpu_and_cuda_agree():
    image = photo("coffee", 64, 96)
    z, x = as_tensors(image, smooth_logits(5, 64, 96, seed=0))
    crf = DenseCRF()
    torch.testing.assert_close(crf(z.cuda(), x.cuda()).cpu(), crf(z, x), rtol=1e-4, atol=1e-4)
    z.requires_grad_()
    (g_cpu,) = torch.autograd.grad(crf(z, x).square().sum(), z)
    zc = z.detach().cuda().requires_grad_()
    (g_cuda,) = torch.autograd.grad(crf(zc, x.cuda()).square().sum(), zc)
    torch.testing.assert_close(g_cuda.cpu(), g_cpu, rtol=1e-4, atol=1e-4)
