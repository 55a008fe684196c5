"""rgb_to_lab, delta_e2000 and color_variance on every backend, against scikit-image,
colour-science, Sharma et al.'s published CIEDE2000 test data and a direct port of the
colour-variance definition."""

import functools
import math

import numpy as np
import pytest
import torch

import fastadv.ops as F
from _backends import DEVICE, compiled_backends
from fastadv.reference.color import normalize_by_max

colour = pytest.importorskip("colour")
skimage_color = pytest.importorskip("skimage.color")
skimage_data = pytest.importorskip("skimage.data")

ALL_BACKENDS = [pytest.param("torch", DEVICE, id="torch"), *compiled_backends()]
ATOL = {torch.float32: 1e-4, torch.float64: 1e-9}

# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Color Res. Appl. 30(1), Table 1: the
# 34 pairs and their published ΔE00 (the same data as colour-science's own test, which leaves
# out pair 14). Pair 14 is exactly on the 180° hue boundary; numpy's atan2 puts it a hair past
# 180° on Linux, where colour-science gives 4.7461, so it is checked against Sharma's value only.
SHARMA_LAB1 = [
    (50.0, 2.6772, -79.7751), (50.0, 3.1571, -77.2803), (50.0, 2.8361, -74.02),
    (50.0, -1.3802, -84.2814), (50.0, -1.1848, -84.8006), (50.0, -0.9009, -85.5211),
    (50.0, 0.0, 0.0), (50.0, -1.0, 2.0), (50.0, 2.49, -0.001), (50.0, 2.49, -0.001),
    (50.0, 2.49, -0.001), (50.0, 2.49, -0.001), (50.0, -0.001, 2.49), (50.0, -0.001, 2.49),
    (50.0, -0.001, 2.49), (50.0, 2.5, 0.0), (50.0, 2.5, 0.0), (50.0, 2.5, 0.0), (50.0, 2.5, 0.0),
    (50.0, 2.5, 0.0), (50.0, 2.5, 0.0), (50.0, 2.5, 0.0), (50.0, 2.5, 0.0), (50.0, 2.5, 0.0),
    (60.2574, -34.0099, 36.2677), (63.0109, -31.0961, -5.8663), (61.2901, 3.7196, -5.3901),
    (35.0831, -44.1164, 3.7933), (22.7233, 20.0904, -46.694), (36.4612, 47.858, 18.3852),
    (90.8027, -2.0831, 1.441), (90.9257, -0.5406, -0.9208), (6.7747, -0.2908, -2.4247),
    (2.0776, 0.0795, -1.135),
]  # fmt: skip
SHARMA_LAB2 = [
    (50.0, 0.0, -82.7485), (50.0, 0.0, -82.7485), (50.0, 0.0, -82.7485), (50.0, 0.0, -82.7485),
    (50.0, 0.0, -82.7485), (50.0, 0.0, -82.7485), (50.0, -1.0, 2.0), (50.0, 0.0, 0.0),
    (50.0, -2.49, 0.0009), (50.0, -2.49, 0.001), (50.0, -2.49, 0.0011), (50.0, -2.49, 0.0012),
    (50.0, 0.0009, -2.49), (50.0, 0.001, -2.49), (50.0, 0.0011, -2.49), (50.0, 0.0, -2.5),
    (73.0, 25.0, -18.0), (61.0, -5.0, 29.0), (56.0, -27.0, -3.0), (58.0, 24.0, 15.0),
    (50.0, 3.1736, 0.5854), (50.0, 3.2972, 0.0), (50.0, 1.8634, 0.5757), (50.0, 3.2592, 0.335),
    (60.4626, -34.1751, 39.4387), (62.8187, -29.7946, -4.0864), (61.4292, 2.248, -4.962),
    (35.0232, -40.0716, 1.5901), (23.0331, 14.973, -42.5619), (36.2715, 50.5065, 21.2231),
    (91.1528, -1.6435, 0.0447), (88.6381, -0.8985, -0.7239), (5.8714, -0.0985, -2.2286),
    (0.9033, -0.0636, -0.5514),
]  # fmt: skip
SHARMA_DE = [
    2.0425, 2.8615, 3.4412, 1.0, 1.0, 1.0, 2.3669, 2.3669, 7.1792, 7.1792, 7.2195, 7.2195,
    4.8045, 4.8045, 4.7461, 4.3065, 27.1492, 22.8977, 31.903, 19.4535, 1.0, 1.0, 1.0, 1.0,
    1.2644, 1.263, 1.8731, 1.8645, 2.0373, 1.4146, 1.4441, 1.5381, 0.6377, 0.9082,
]  # fmt: skip
SHARMA_BOUNDARY = 13  # pair 14, 0-based


def _on(device, *tensors):
    return [t.to(device) for t in tensors]


def random_lab_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform Lab pairs with greys (a = b = 0: C' = 0), one-grey pairs and pure-axis hues
    mixed in."""
    rng = np.random.default_rng(seed)

    def uniform():
        return np.stack(
            [rng.uniform(0, 100, n), rng.uniform(-128, 128, n), rng.uniform(-128, 128, n)], -1
        )

    lab1, lab2 = uniform(), uniform()
    k = n // 20
    lab1[:k, 1:] = 0  # grey against colour
    lab2[k // 2 : 2 * k, 1:] = 0  # grey against grey, and colour against grey
    lab1[2 * k : 3 * k, 1] = 0  # hues on the b axis
    lab2[3 * k : 4 * k, 2] = 0  # hues on the a axis
    return lab1, lab2


# ---- delta_e2000


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_delta_e2000_sharma_pairs(backend, device, dtype):
    lab1 = torch.tensor(SHARMA_LAB1, dtype=dtype, device=device)
    lab2 = torch.tensor(SHARMA_LAB2, dtype=dtype, device=device)
    de = F.delta_e2000(lab1, lab2, dim=-1, backend=backend).double().cpu()
    # Published to 4 decimals: within 5e-5 of them, whatever the precision.
    torch.testing.assert_close(de, torch.tensor(SHARMA_DE, dtype=torch.float64), rtol=0, atol=1e-4)
    swapped = F.delta_e2000(lab2, lab1, dim=-1, backend=backend).double().cpu()
    torch.testing.assert_close(swapped, de, rtol=0, atol=ATOL[dtype])
    expected = colour.difference.delta_E_CIE2000(
        lab1.double().cpu().numpy(), lab2.double().cpu().numpy()
    )
    keep = np.arange(len(SHARMA_DE)) != SHARMA_BOUNDARY
    np.testing.assert_allclose(de.numpy()[keep], expected[keep], rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_delta_e2000_random_pairs(backend, device, dtype):
    interpreted = backend == "triton" and device.type == "cpu"
    lab1, lab2 = random_lab_pairs(1000 if interpreted else 100_000)
    x = torch.from_numpy(lab1).to(dtype)
    y = torch.from_numpy(lab2).to(dtype)
    expected = colour.difference.delta_E_CIE2000(x.double().numpy(), y.double().numpy())
    x, y = _on(device, x, y)
    de = F.delta_e2000(x, y, dim=-1, backend=backend)
    assert de.dtype == dtype and de.shape == (len(lab1),)
    np.testing.assert_allclose(de.double().cpu().numpy(), expected, rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_delta_e2000_opposite_hues(backend, device):
    """Exactly opposite chroma vectors lie on the 180° boundary, where colour-science's result
    depends on atan2's last bit; here they follow Sharma's convention (no ±360° wrap) in every
    backend and both orders: the limit from the no-wrap side, and the torch reference exactly."""
    lab1, _ = random_lab_pairs(200, seed=5)
    lab2 = lab1.copy()
    lab2[:, 0] = lab1[::-1, 0]
    lab2[:, 1:] = -2 * lab1[:, 1:]  # times 2: exact, so the vectors are exactly opposite
    x, y = _on(device, torch.from_numpy(lab1), torch.from_numpy(lab2))
    de = F.delta_e2000(x, y, dim=-1, backend=backend).cpu()
    torch.testing.assert_close(F.delta_e2000(y, x, dim=-1, backend=backend).cpu(), de)
    reference = F.delta_e2000(x.cpu(), y.cpu(), dim=-1, backend="torch")
    torch.testing.assert_close(de, reference, rtol=0, atol=1e-9)
    turn = 1e-7  # radians, so that |h'2 - h'1| is just under 180°
    h1, h2 = (np.arctan2(lab[:, 2], lab[:, 1]) % (2 * np.pi) for lab in (lab1, lab2))
    side = np.where(h2 > h1, -turn, turn)
    a, b = lab2[:, 1], lab2[:, 2]
    nudged = lab2.copy()
    nudged[:, 1] = a * np.cos(side) - b * np.sin(side)
    nudged[:, 2] = a * np.sin(side) + b * np.cos(side)
    limit = colour.difference.delta_E_CIE2000(lab1, nudged)
    np.testing.assert_allclose(de.numpy(), limit, rtol=0, atol=1e-3)


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_delta_e2000_images_and_weights(backend, device):
    lab1, lab2 = random_lab_pairs(2 * 5 * 7, seed=1)
    x = torch.from_numpy(lab1).reshape(2, 5, 7, 3).permute(0, 3, 1, 2)  # [B, 3, H, W], strided
    y = torch.from_numpy(lab2).reshape(2, 5, 7, 3).permute(0, 3, 1, 2)
    expected = colour.difference.delta_E_CIE2000(lab1, lab2, textiles=True).reshape(2, 5, 7)
    x, y = _on(device, x, y)
    de = F.delta_e2000(x, y, kL=2.0, backend=backend)
    np.testing.assert_allclose(de.cpu().numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_delta_e2000_gradcheck(backend, device):
    # No greys: ΔE00 has a kink there, like |v| at 0.
    x = torch.rand(40, 3, dtype=torch.float64, device=device) * 100 - 50
    y = torch.rand(40, 3, dtype=torch.float64, device=device) * 100 - 50
    x[:, 0] += 50
    y[:, 0] += 50
    x.requires_grad_()
    y.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: F.delta_e2000(a, b, dim=-1, backend=backend), (x, y)
    )


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_delta_e2000_gradient_finite_at_greys(backend, device):
    grey = torch.tensor([[50.0, 0.0, 0.0], [20.0, 0.0, 0.0]], device=device, requires_grad=True)
    other = torch.tensor([[60.0, 0.0, 0.0], [30.0, 4.0, -3.0]], device=device, requires_grad=True)
    F.delta_e2000(grey, other, dim=-1, backend=backend).sum().backward()
    assert torch.isfinite(grey.grad).all() and torch.isfinite(other.grad).all()


def test_delta_e2000_bad_inputs():
    lab = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="lab1 must have 3 channels"):
        F.delta_e2000(torch.zeros(4, 2), torch.zeros(4, 2), dim=-1)
    with pytest.raises(ValueError, match="lab2 has shape"):
        F.delta_e2000(lab, torch.zeros(5, 3), dim=-1)
    with pytest.raises(TypeError, match="lab2 has dtype"):
        F.delta_e2000(lab, lab.double(), dim=-1)
    with pytest.raises(ValueError, match="kC must be > 0"):
        F.delta_e2000(lab, lab, kC=0.0, dim=-1)
    with pytest.raises(TypeError, match="lab1 must be float"):
        F.delta_e2000(lab.long(), lab, dim=-1)


# ---- rgb_to_lab


def _photo(name: str, size: int) -> np.ndarray:
    """A size x size float64 crop of one of scikit-image's photographs, [H, W, 3] in [0, 1]."""
    image = getattr(skimage_data, name)()
    h, w = image.shape[:2]
    return image[h // 3 : h // 3 + size, w // 3 : w // 3 + size].astype(np.float64) / 255.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_rgb_to_lab_matches_skimage(backend, device, dtype):
    rng = np.random.default_rng(3)
    pixels = np.concatenate([rng.uniform(0, 1, (500, 3)), _photo("coffee", 16).reshape(-1, 3)])
    pixels[:8] = [[0, 0, 0], [1, 1, 1], [0.04045, 0.5, 1], [0.5, 0.5, 0.5]] * 2  # greys, thresholds
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    expected = skimage_color.rgb2lab(pixels.astype(np_dtype)[None])[0]
    x = torch.from_numpy(pixels).to(dtype).to(device)
    lab = F.rgb_to_lab(x, dim=-1, backend=backend)
    assert lab.dtype == dtype and lab.shape == x.shape
    np.testing.assert_allclose(lab.double().cpu().numpy(), expected, rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_rgb_to_lab_image_layouts(backend, device):
    image = _photo("astronaut", 12)
    expected = torch.from_numpy(skimage_color.rgb2lab(image)).permute(2, 0, 1)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
    for layout in (x, x.contiguous(memory_format=torch.channels_last), x[0]):
        lab = F.rgb_to_lab(layout, backend=backend).cpu()
        torch.testing.assert_close(lab.reshape(expected.shape), expected, rtol=0, atol=1e-9)
    half = F.rgb_to_lab(x.half(), backend=backend)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half[0].cpu().double(), expected, rtol=2e-3, atol=0.1)


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_rgb_to_lab_gradcheck(backend, device):
    rng = np.random.default_rng(4)
    pixels = rng.uniform(0.01, 0.99, (30, 3))
    pixels[:4] = [[0.5, 0.5, 0.5], [0.02, 0.02, 0.02], [0.9, 0.9, 0.9], [0.2, 0.7, 0.03]]
    x = torch.from_numpy(pixels).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: F.rgb_to_lab(t, dim=-1, backend=backend), (x,))


def test_rgb_to_lab_bad_inputs():
    with pytest.raises(ValueError, match="rgb must have 3 channels"):
        F.rgb_to_lab(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="rgb contains NaN"):
        F.rgb_to_lab(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="outside"):
        F.rgb_to_lab(torch.full((3, 2, 2), 1.5))


# ---- color_variance


@functools.lru_cache
def color_variance_port(name: str, size: int, kernel_size: int, sigma: float) -> np.ndarray:
    """DESIGN.md's definition, pixel by pixel (float64): skimage's Lab, colour-science's ΔE00."""
    lab = skimage_color.rgb2lab(_photo(name, size))
    h, w, _ = lab.shape
    r = kernel_size // 2
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            neighbours, weights = [], []
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    inside = 0 <= y + dy < h and 0 <= x + dx < w
                    if (dy, dx) != (0, 0) and inside:
                        neighbours.append(lab[y + dy, x + dx])
                        g = math.exp(-(dy * dy + dx * dx) / (2 * sigma**2)) / (
                            2 * math.pi * sigma**2
                        )
                        weights.append(g)
            de = colour.difference.delta_E_CIE2000(lab[y, x], np.array(neighbours))
            out[y, x] = math.sqrt(np.sum((np.array(weights) * de) ** 2) / len(neighbours))
    return out


def _photo_batch(names, size, dtype, device):
    images = [torch.from_numpy(_photo(n, size)).permute(2, 0, 1) for n in names]
    return torch.stack(images).to(dtype=dtype, device=device)


PHOTOS = ("astronaut", "coffee", "chelsea")


@pytest.mark.parametrize("kernel_size", [3, 5, 7, 9])
@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_color_variance_matches_definition(backend, device, kernel_size):
    size, sigma = 11, 1.5
    raw = np.stack([color_variance_port(n, size, kernel_size, sigma) for n in PHOTOS])[:, None]
    peak = raw.max(axis=(1, 2, 3), keepdims=True)
    x = _photo_batch(PHOTOS, size, torch.float64, device)
    for normalize, expected in (("none", raw), ("max", raw / peak)):
        cv = F.color_variance(x, kernel_size, sigma, normalize, backend=backend)
        assert cv.shape == (3, 1, size, size) and cv.dtype == torch.float64
        np.testing.assert_allclose(cv.cpu().numpy(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [3, 7])
@pytest.mark.parametrize(("backend", "device"), compiled_backends())
def test_color_variance_backends_agree_in_float32(backend, device, kernel_size):
    x = _photo_batch(PHOTOS, 13, torch.float32, device)
    reference = F.color_variance(x.double(), kernel_size, 0.8, "none", backend="torch")
    for normalize in ("none", "max"):
        expected = reference if normalize == "none" else normalize_by_max(reference)
        cv = F.color_variance(x, kernel_size, 0.8, normalize, backend=backend)
        assert cv.dtype == torch.float32
        torch.testing.assert_close(cv.double(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("backend", "device"), ALL_BACKENDS)
def test_color_variance_edge_cases(backend, device):
    flat = torch.full((2, 3, 6, 5), 0.3, device=device)
    assert not F.color_variance(flat, backend=backend).any()  # all-flat: zeros, not NaN
    single = torch.rand(3, 1, 1, device=device)
    assert F.color_variance(single, backend=backend).shape == (1, 1, 1)
    assert not F.color_variance(single, backend=backend).any()  # no neighbours
    strip = torch.rand(1, 3, 1, 7, device=device)  # windows larger than the image
    expected = F.color_variance(strip.double(), 9, 2.0, "none", backend="torch")
    torch.testing.assert_close(
        F.color_variance(strip.double(), 9, 2.0, "none", backend=backend), expected
    )
    half = F.color_variance(torch.rand(1, 3, 5, 6, device=device).bfloat16(), backend=backend)
    assert half.dtype == torch.bfloat16 and half.amax() == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rgb": torch.rand(1, 4, 5, 5)}, ValueError, "rgb must be"),
        ({"rgb": torch.rand(5, 5)}, ValueError, "rgb must be"),
        ({"kernel_size": 4}, ValueError, "kernel_size must be odd and >= 3"),
        ({"kernel_size": 1}, ValueError, "kernel_size must be odd and >= 3"),
        ({"kernel_size": 3.0}, TypeError, "kernel_size must be an int"),
        ({"sigma": 0.0}, ValueError, "sigma must be"),
        ({"sigma": -1.0}, ValueError, "sigma must be"),
        ({"normalize": "sum"}, ValueError, "normalize must be one of"),
        ({"rgb": torch.full((1, 3, 4, 4), float("nan"))}, ValueError, "rgb contains NaN"),
        ({"rgb": torch.full((1, 3, 4, 4), -0.1)}, ValueError, "outside"),
        ({"rgb": torch.zeros(1, 3, 4, 4, dtype=torch.int64)}, TypeError, "rgb must be float"),
    ],
)
def test_color_variance_bad_inputs(kwargs, error, message):
    args = {"rgb": torch.rand(1, 3, 5, 5), **kwargs}
    with pytest.raises(error, match=message):
        F.color_variance(**args)


def test_compiled_ops_check_their_operands():
    with pytest.raises(RuntimeError, match="kernel_size must be odd"):
        torch.ops.fastadv.color_variance(torch.rand(1, 3, 4, 4), 2, 1.0, True)
    with pytest.raises(RuntimeError, match="sigma must be > 0"):
        torch.ops.fastadv.color_variance(torch.rand(1, 3, 4, 4), 3, 0.0, True)
    with pytest.raises(RuntimeError, match=r"rgb must be \[M, 3, P\]"):
        torch.ops.fastadv.rgb_to_lab(torch.rand(1, 2, 4))


# ---- registration


def _opcheck_cases(device):
    rgb = torch.rand(2, 3, 5, device=device, dtype=torch.float64)
    lab1 = F.rgb_to_lab(rgb, dim=1, backend="torch")
    lab2 = F.rgb_to_lab(rgb.flip(0), dim=1, backend="torch")
    return [
        ("rgb_to_lab", (rgb.requires_grad_(),)),
        ("delta_e2000", (lab1.requires_grad_(), lab2, 1.0, 1.0, 1.0)),
        ("color_variance", (torch.rand(2, 3, 4, 5, device=device), 3, 1.0, True)),
    ]


@pytest.mark.parametrize(("backend", "device"), compiled_backends())
def test_opcheck(backend, device):
    if backend == "triton":
        import fastadv.triton.color  # noqa: F401  (registers the fastadv::*_triton ops)
    for name, args in _opcheck_cases(device):
        op = getattr(torch.ops.fastadv, name if backend != "triton" else f"{name}_triton")
        torch.library.opcheck(op, args)
