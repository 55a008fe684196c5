"""nearest_fill on every backend: distances against scipy's exact transform, sources and the
tie rule against brute force, all backends identical."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastadv.ops import NearestFill, _backend, nearest_fill
from fastadv.reference.nearest_fill import nearest_fill as nearest_fill_reference
from tests._backends import compiled_backends, gpu_backends, needs_gpu, needs_two_gpus

ALL_BACKENDS = [pytest.param("torch", torch.device("cpu"), id="torch"), *compiled_backends()]
INTERPRETED_MAX_PIXELS = 32 * 32  # Triton runs interpreted without a GPU: small maps only


def skip_if_slow(backend, device, pixels):
    if backend == "triton" and device.type == "cpu" and pixels > INTERPRETED_MAX_PIXELS:
        pytest.skip("interpreted Triton: map too large")
    if backend == "torch" and pixels > 40000:
        pytest.skip("brute-force reference: map too large")


# ---- maps ----------------------------------------------------------------------------------


def blobs(h, w, seed, count=3):
    """Elliptic blobs of class 1 (some touching the border) on a background of classes 0, 2, 3."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, 3, size=(1 + h // 8, 1 + w // 8)).repeat(8, 0).repeat(8, 1)[:h, :w]
    labels = np.where(labels == 1, 3, labels)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(count):
        cy, cx = g.uniform(0, h), g.uniform(0, w)
        ry, rx = g.uniform(1, min(h / 2, 40) + 1), g.uniform(1, min(w / 2, 40) + 1)
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = 1
    return labels


def symmetric(n):
    """A hidden diamond centred in a square: most hidden pixels are equidistant from several."""
    yy, xx = np.mgrid[:n, :n]
    labels = (yy * n + xx) % 5 + 2
    labels[np.abs(yy - n // 2) + np.abs(xx - n // 2) < n // 2] = 1
    return labels


def lines(h, w):
    """One-pixel lines of class 1: a row, a column and a diagonal."""
    labels = (np.arange(h * w).reshape(h, w) % 3 + 2).astype(np.int64)
    labels[h // 2, :] = 1
    labels[:, w // 3] = 1
    for i in range(min(h, w)):
        labels[i, i] = 1
    return labels


def single(h, w):
    labels = np.zeros((h, w), dtype=np.int64) + 2
    labels[h // 3, w // 2] = 1
    return labels


MAPS = {
    "blobs": lambda: blobs(23, 31, 0),
    "symmetric": lambda: symmetric(17),
    "lines": lambda: lines(19, 25),
    "single": lambda: single(13, 29),
    "nothing_hidden": lambda: np.full((9, 11), 2),
    "row_1xN": lambda: np.where(np.arange(31) % 7 < 5, 1, np.arange(31) % 4 + 2)[None],
    "column_Nx1": lambda: np.array([[1], [1], [2], [1], [1], [1], [3], [1]]),
    "one_pixel_visible": lambda: np.where(np.arange(30).reshape(5, 6) == 17, 4, 1),
    "tall_4000x3": lambda: blobs(4000, 3, 1, count=40),
    "wide_3x4000": lambda: blobs(3, 4000, 2, count=40),
}


def sources(labels: np.ndarray, hidden: np.ndarray):
    """Brute force, per image: the row-major index of each pixel's source pixel (the first in
    row-major order at the least squared distance) and that squared distance."""
    h, w = hidden.shape
    yy, xx = np.divmod(np.arange(h * w), w)
    free = np.flatnonzero(~hidden.ravel())
    src = np.arange(h * w)
    d2 = np.zeros(h * w, dtype=np.int64)
    for chunk in np.array_split(np.flatnonzero(hidden.ravel()), max(1, hidden.sum() // 256)):
        if chunk.size == 0:
            continue
        cand = (yy[chunk, None] - yy[free]) ** 2 + (xx[chunk, None] - xx[free]) ** 2
        best = np.argmin(cand, axis=1)  # argmin returns the first minimum: row-major order
        src[chunk] = free[best]
        d2[chunk] = cand[np.arange(chunk.size), best]
    return src.reshape(h, w), d2.reshape(h, w)


def check(result: NearestFill, labels: torch.Tensor, hidden: torch.Tensor):
    """Every property the spec gives, image by image, against scipy and brute force."""
    lab, hid = labels.cpu().numpy(), hidden.cpu().numpy()
    out, dist, empty = (t.cpu().numpy() for t in result)
    for b in range(lab.shape[0]):
        if hid[b].size and hid[b].all():  # an image of no pixels is not one with none visible
            assert empty[b]
            np.testing.assert_array_equal(out[b], lab[b])
            assert np.isinf(dist[b]).all()
            continue
        assert not empty[b]
        edt = ndi.distance_transform_edt(hid[b]).astype(np.float32)
        np.testing.assert_array_equal(dist[b], edt)
        src, d2 = sources(lab[b], hid[b])
        np.testing.assert_array_equal(out[b], lab[b].ravel()[src])
        np.testing.assert_array_equal(np.round(edt.astype(np.float64) ** 2), d2)


def unique_labels(hidden: torch.Tensor) -> torch.Tensor:
    """Labels that name their own pixel, so the filled labels are the chosen sources."""
    b, h, w = hidden.shape
    return torch.arange(b * h * w, dtype=torch.int64).view(b, h, w) % (h * w)


# ---- every backend against the spec --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MAPS))
@pytest.mark.parametrize("backend, device", ALL_BACKENDS)
def test_maps(backend, device, name):
    labels = torch.as_tensor(MAPS[name]()).to(torch.int64)[None]
    skip_if_slow(backend, device, labels.numel())
    hidden = labels == 1
    result = nearest_fill(
        labels.to(device), 1, return_distance=True, on_empty="keep", backend=backend
    )
    check(result, labels, hidden)
    exact = nearest_fill(
        unique_labels(hidden).to(device), hidden.to(device), return_distance=True, backend=backend
    )
    check(exact, unique_labels(hidden), hidden)  # the sources themselves: the tie rule


@pytest.mark.parametrize("backend, device", ALL_BACKENDS)
def test_mixed_batch(backend, device):
    """Blobs, lines, symmetric ties, nothing and everything hidden, in one batch."""
    maps = [blobs(16, 16, 3), lines(16, 16), symmetric(16), np.full((16, 16), 2), np.ones((16, 16))]
    labels = torch.as_tensor(np.stack(maps)).to(torch.int64)
    hidden = labels == 1
    result = nearest_fill(
        labels.to(device), hidden.to(device), return_distance=True, on_empty="keep", backend=backend
    )
    check(result, labels, hidden)
    assert result.empty.tolist() == [False, False, False, False, True]
    exact = nearest_fill(unique_labels(hidden).to(device), hidden.to(device), on_empty="keep",
                         return_distance=True, backend=backend)  # fmt: skip
    check(exact, unique_labels(hidden), hidden)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
@pytest.mark.parametrize("backend, device", compiled_backends())
def test_backends_identical(backend, device, dtype):
    """Several hidden classes; each label dtype; the same tensors as the reference."""
    labels = torch.as_tensor(blobs(24, 20, 5, count=4) + 5 * (symmetric(24)[:, :20] == 1))
    labels = torch.stack([labels, labels.flip(0), labels.flip(1)]).to(dtype)
    want = nearest_fill(labels, [1, 6, 3], return_distance=True, backend="torch")
    got = nearest_fill(labels.to(device), [1, 6, 3], return_distance=True, backend=backend)
    assert got.labels.dtype == dtype
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g.cpu(), w)


@pytest.mark.parametrize("backend, device", compiled_backends())
def test_large_map_vs_scipy(backend, device):
    """At scale: every source is a non-hidden pixel at exactly scipy's distance."""
    hidden = torch.as_tensor(blobs(300, 400, 9, count=12) == 1)[None]
    skip_if_slow(backend, device, hidden.numel())
    got = nearest_fill(unique_labels(hidden).to(device), hidden.to(device), return_distance=True,
                       backend=backend)  # fmt: skip
    edt = ndi.distance_transform_edt(hidden[0].numpy())
    np.testing.assert_array_equal(got.distance[0].cpu().numpy(), edt.astype(np.float32))
    src = got.labels[0].cpu().numpy()
    assert not hidden[0].numpy().ravel()[src].any()
    yy, xx = np.mgrid[:300, :400]
    d2 = (yy - src // 400) ** 2 + (xx - src % 400) ** 2
    np.testing.assert_array_equal(d2, np.round(edt**2))


@pytest.mark.parametrize("shape", [(16384, 2), (2, 16384)])
@pytest.mark.parametrize("backend, device", ALL_BACKENDS)
def test_largest_side(backend, device, shape):
    """One visible pixel in a corner: squared distances past 2^24, where float32 is inexact."""
    skip_if_slow(backend, device, shape[0] * shape[1])
    labels = torch.ones(shape, dtype=torch.int64)
    labels[0, 0] = 5
    got = nearest_fill(labels.to(device), 1, return_distance=True, backend=backend)
    assert (got.labels == 5).all()
    edt = ndi.distance_transform_edt(labels.numpy() == 1).astype(np.float32)
    np.testing.assert_array_equal(got.distance.cpu().numpy(), edt)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 3), st.integers(0, 12), st.integers(0, 12)),
    p=st.sampled_from([0.0, 0.2, 0.5, 0.8, 0.95, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_maps_hypothesis(shape, p, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.rand(shape, generator=g) < p
    labels = unique_labels(hidden)
    for backend in _backend.available(torch.device("cpu")):
        if backend == "triton" and labels.numel() > 64:
            continue  # interpreted: a few small maps are enough
        result = nearest_fill(
            labels, hidden, return_distance=True, on_empty="keep", backend=backend
        )
        check(result, labels, hidden)


# ---- API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend, device", ALL_BACKENDS)
def test_single_map_and_hide_forms(backend, device):
    labels = torch.as_tensor(blobs(12, 10, 4)).to(torch.int32).to(device)
    want = nearest_fill(labels[None], labels[None] == 1, backend=backend)
    for hide in (1, [1], (1, 200), torch.tensor([1]), torch.tensor(1), labels == 1):
        got = nearest_fill(labels, hide, return_distance=True, backend=backend)
        assert torch.equal(got.labels, want.labels[0])
        assert got.distance.shape == labels.shape and got.empty.shape == ()
    assert nearest_fill(labels, 1, backend=backend).distance is None


@pytest.mark.parametrize("backend, device", ALL_BACKENDS)
def test_empty_images(backend, device):
    labels = torch.tensor([[[1, 2], [2, 2]], [[1, 1], [1, 1]], [[3, 1], [1, 1]]]).to(device)
    with pytest.raises(ValueError, match=r"image\(s\) \[1\]"):
        nearest_fill(labels, 1, backend=backend)
    kept = nearest_fill(labels, 1, on_empty="keep", return_distance=True, backend=backend)
    assert kept.empty.tolist() == [False, True, False]
    assert torch.equal(kept.labels[1], labels[1])
    assert kept.labels[0].tolist() == [[2, 2], [2, 2]]
    assert kept.labels[2].tolist() == [[3, 3], [3, 3]]
    nothing = nearest_fill(labels, 7, return_distance=True, backend=backend)
    assert torch.equal(nothing.labels, labels) and not nothing.distance.any()


@pytest.mark.parametrize("backend, device", ALL_BACKENDS)
def test_zero_size_and_noncontiguous(backend, device):
    for shape in [(0, 4, 4), (2, 0, 3), (2, 3, 0)]:
        labels = torch.zeros(shape, dtype=torch.uint8, device=device)
        out = nearest_fill(labels, 0, return_distance=True, backend=backend)
        assert out.labels.shape == shape and not out.empty.any()
    labels = torch.as_tensor(blobs(9, 14, 6)).to(device)
    want = nearest_fill(labels.T.contiguous(), 1, backend=backend).labels
    assert torch.equal(nearest_fill(labels.T, 1, backend=backend).labels, want)


def test_bad_inputs():
    labels = torch.zeros(2, 4, 4, dtype=torch.int64)
    with pytest.raises(TypeError, match="labels must have dtype uint8, int32, int64"):
        nearest_fill(labels.float(), 1)
    with pytest.raises(ValueError, match=r"labels must be \[B, H, W\] or \[H, W\]"):
        nearest_fill(labels[0, 0], 1)
    with pytest.raises(ValueError, match="hide mask has shape"):
        nearest_fill(labels, labels[0] == 0)
    with pytest.raises(TypeError, match="hide must be"):
        nearest_fill(labels, 1.5)
    with pytest.raises(TypeError, match="hide must be"):
        nearest_fill(labels, True)
    with pytest.raises(TypeError, match="hide must be a bool mask or integer class ids"):
        nearest_fill(labels, torch.ones(2, 4, 4))
    with pytest.raises(TypeError, match="class ids must be ints"):
        nearest_fill(labels, [1, "a"])
    with pytest.raises(ValueError, match="on_empty must be"):
        nearest_fill(labels, 1, on_empty="skip")
    with pytest.raises(ValueError, match="backend must be"):
        nearest_fill(labels, 1, backend="numpy")
    for bad, dtype in ((-1, torch.int64), (1000, torch.uint8), (256, torch.uint8)):
        with pytest.raises(ValueError, match=f"class id {bad} is outside"):
            nearest_fill(labels.to(dtype), [2, bad])
    with pytest.raises(ValueError, match="at most 16384"):
        nearest_fill(torch.zeros(1, 16385, dtype=torch.uint8).expand(16385, 16385)[None], 1)


def test_auto_never_picks_the_reference():
    if _backend.available(torch.device("cpu")) != ["torch"]:
        assert _backend.resolve("auto", torch.device("cpu")) != "torch"


def test_reference_is_the_definition():
    """The reference against the independent brute force of this file."""
    hidden = torch.rand(2, 9, 13, generator=torch.Generator().manual_seed(3)) < 0.6
    labels = unique_labels(hidden)
    check(NearestFill(*nearest_fill_reference(labels, hidden, True)), labels, hidden)


# ---- registration --------------------------------------------------------------------------


@pytest.mark.parametrize("backend, device", compiled_backends())
def test_opcheck(backend, device):
    labels = torch.as_tensor(blobs(6, 7, 2)).to(torch.int32).to(device)[None]
    hide = labels == 1
    if backend == "triton":
        from fastadv.triton.nearest_fill import nearest_fill_triton as op
    else:
        op = torch.ops.fastadv.nearest_fill.default
    for with_distance in (True, False):
        torch.library.opcheck(op, (labels, hide, with_distance))


# ---- GPU only ------------------------------------------------------------------------------


@needs_gpu()
@pytest.mark.parametrize("backend", gpu_backends())
def test_batch_beyond_grid_limit(backend):
    """More images than a grid's y or z axis holds (65535)."""
    hidden = torch.rand(65537, 3, 5, generator=torch.Generator().manual_seed(5)) < 0.5
    labels = unique_labels(hidden)
    want = nearest_fill(labels, hidden, return_distance=True, on_empty="keep", backend="cpu")
    got = nearest_fill(
        labels.cuda(), hidden.cuda(), return_distance=True, on_empty="keep", backend=backend
    )
    assert torch.equal(got.labels.cpu(), want.labels)
    assert torch.equal(got.distance.cpu(), want.distance)
    assert torch.equal(got.empty.cpu(), want.empty)


@needs_two_gpus
@pytest.mark.parametrize("backend", gpu_backends())
def test_second_gpu(backend):
    labels = torch.as_tensor(blobs(40, 50, 8))[None]
    want = nearest_fill(labels, 1, return_distance=True, backend="cpu")
    with torch.cuda.device(0):
        got = nearest_fill(labels.to("cuda:1"), 1, return_distance=True, backend=backend)
    assert got.labels.device == torch.device("cuda:1")
    assert torch.equal(got.labels.cpu(), want.labels)
    assert torch.equal(got.distance.cpu(), want.distance)


@needs_gpu()
@pytest.mark.parametrize("backend", gpu_backends())
def test_non_default_stream(backend):
    stream = torch.cuda.Stream()
    labels = torch.as_tensor(blobs(200, 300, 9))[None]
    want = nearest_fill(labels, 1, return_distance=True, backend="cpu")
    with torch.cuda.stream(stream):
        on_gpu = labels.cuda()
        got = nearest_fill(on_gpu, 1, return_distance=True, on_empty="keep", backend=backend)
        labels_out, distance = got.labels.clone(), got.distance.clone()
    stream.synchronize()
    assert torch.equal(labels_out.cpu(), want.labels)
    assert torch.equal(distance.cpu(), want.distance)


@needs_gpu()
def test_torch_compile_on_cuda():
    labels = torch.as_tensor(blobs(30, 40, 10)).to(torch.int32)[None].cuda()
    want = nearest_fill(labels, 1, return_distance=True, backend="cuda")

    @torch.compile(fullgraph=True)
    def fill(labels):
        filled, distance, _ = torch.ops.fastadv.nearest_fill(labels, labels == 1, True)
        return filled + 0, distance * 1.0

    filled, distance = fill(labels)
    assert torch.equal(filled, want.labels) and torch.equal(distance, want.distance)
