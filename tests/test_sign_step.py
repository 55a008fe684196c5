"""fastadv.ops.sign_step_: every backend against the pure-torch reference."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import compiled_backends, gpu_backends, needs_gpu, needs_two_gpus
from fastadv.ops import BackendUnavailableError, SignStep, sign_step_

# One ulp-ish of each dtype: the backends compute in the same precision as the reference, so
# they agree to the last bit almost always; a rounding-boundary case may differ by one ulp.
ATOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-6, torch.float64: 1e-12}
DTYPES = list(ATOL)
SHAPES = [(1, 3, 5, 7), (3, 1, 17, 13), (2, 4, 1, 33)]


def make_inputs(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64)
    x = (x0 + 0.03 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    grad = torch.randn(shape, generator=g, dtype=torch.float64)
    grad.view(-1)[:: max(1, grad.numel() // 5)] = 0.0
    grad.view(-1)[1 :: max(1, grad.numel() // 4)] = math.nan
    return [t.to(device=device, dtype=dtype) for t in (x, x0, grad)]


def bound_forms(shape, seed=1):
    """Every form `step` and `eps` may take, as generator functions of (dtype, device)."""
    b, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(s, generator=g, dtype=torch.float64)  # noqa: E731
    return {
        "float": (0.02, 0.05),
        "per-sample-1d": (0.01 + 0.02 * rand(b), 0.01 + 0.05 * rand(b)),
        "per-sample-4d": (0.02 * rand(b, 1, 1, 1) - 0.01, 0.05 * rand(b, 1, 1, 1)),
        "per-pixel": (0.03 * rand(b, 1, h, w), 0.04 * rand(b, 1, h, w)),
        "per-element": (0.03 * rand(b, c, h, w) - 0.015, 0.04 * rand(b, c, h, w)),
        "negative-step": (-0.02, 0.05),
        "zero-step": (0.0, 0.01),
    }


def run(backend, x, x0, grad, step, eps, **kw):
    out = x.clone()
    sign_step_(out, x0, grad, step, eps, backend=backend, **kw)
    return out


def assert_matches_reference(backend, x, x0, grad, step, eps, **kw):
    got = run(backend, x, x0, grad, step, eps, **kw)
    want = run("torch", x.cpu(), x0.cpu(), grad.cpu(), _cpu(step), _cpu(eps), **_cpu_kw(kw))
    torch.testing.assert_close(got.cpu(), want, atol=ATOL[x.dtype], rtol=0)
    return got


def _cpu(v):
    return v.cpu() if isinstance(v, torch.Tensor) else v


def _cpu_kw(kw):
    return {k: _cpu(v) for k, v in kw.items()}


@pytest.mark.parametrize("backend,device", compiled_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bound_forms(backend, device, dtype, shape):
    x, x0, grad = make_inputs(shape, dtype, device)
    for name, (step, eps) in bound_forms(shape).items():
        step, eps = (v.to(device) if isinstance(v, torch.Tensor) else v for v in (step, eps))
        got = assert_matches_reference(backend, x, x0, grad, step, eps)
        assert (got - x0).abs().max() <= (
            eps.max() if isinstance(eps, torch.Tensor) else eps
        ) + ATOL[dtype], name


@pytest.mark.parametrize("backend,device", compiled_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mask_active_quantum(backend, device, dtype):
    shape = (3, 3, 9, 11)
    x, x0, grad = make_inputs(shape, dtype, device, seed=2)
    g = torch.Generator().manual_seed(3)
    bool_mask = (torch.rand(3, 9, 11, generator=g) > 0.4).to(device)
    float_mask = torch.rand(3, 1, 9, 11, generator=g).to(device)
    active = torch.tensor([True, False, True], device=device)
    eps = (0.05 * torch.rand(3, 1, 9, 11, generator=g)).to(device)
    for kw in (
        {"mask": bool_mask},
        {"mask": float_mask},
        {"active": active},
        {"quantum": 1 / 255},
        {"mask": bool_mask, "active": active, "quantum": 1 / 255, "lo": 0.1, "hi": 0.8},
    ):
        got = assert_matches_reference(backend, x, x0, grad, 0.02, eps, **kw)
        if "active" in kw:
            torch.testing.assert_close(got[1], x[1], atol=0, rtol=0)


@pytest.mark.parametrize("backend,device", compiled_backends())
def test_quantum_lands_on_grid(backend, device):
    x0 = (torch.randint(0, 256, (2, 3, 8, 8)) / 255).to(device)
    x, grad = x0.clone(), torch.randn(2, 3, 8, 8, device=device)
    for _ in range(3):
        sign_step_(x, x0, grad, 0.7 / 255, 4 / 255, quantum=1 / 255, backend=backend)
    steps = (x - x0) * 255
    torch.testing.assert_close(steps, steps.round(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend,device", compiled_backends())
def test_nan_gradient_does_not_move(backend, device):
    x0 = torch.full((1, 3, 4, 4), 0.5, device=device)
    x = x0.clone()
    sign_step_(x, x0, torch.full_like(x, math.nan), 0.1, 0.2, backend=backend)
    assert torch.equal(x, x0)


@pytest.mark.parametrize("backend,device", compiled_backends())
@pytest.mark.parametrize("layout", ["channels_last", "strided-view", "mixed"])
def test_layouts(backend, device, layout):
    x, x0, grad = make_inputs((2, 3, 7, 9), torch.float32, device, seed=4)
    eps = 0.05 * torch.rand(2, 1, 7, 9, device=device)
    want = run("torch", x, x0, grad, 0.02, eps)
    if layout == "channels_last":
        x, x0, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, x0, grad))
    elif layout == "mixed":
        grad = grad.contiguous(memory_format=torch.channels_last)
    else:
        big = torch.zeros(2, 3, 7, 20, device=device)
        big[..., ::2][..., :9] = x
        x = big[..., ::2][..., :9]
    assert not (layout == "strided-view" and x.is_contiguous())
    sign_step_(x, x0, grad, 0.02, eps, backend=backend)
    torch.testing.assert_close(x, want, atol=1e-6, rtol=0)
    if layout == "strided-view":  # the parent outside the view is untouched
        assert big[..., 1::2].abs().sum() == 0


@pytest.mark.parametrize("backend,device", compiled_backends())
def test_empty_batch(backend, device):
    x = torch.empty(0, 3, 4, 4, device=device)
    sign_step_(x, x.clone(), x.clone(), 0.1, 0.1, backend=backend)


@pytest.mark.parametrize("backend,device", compiled_backends())
@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    step=st.floats(-0.1, 0.1),
    eps=st.floats(0, 0.2),
    seed=st.integers(0, 2**16),
)
def test_random_shapes(backend, device, b, c, h, w, step, eps, seed):
    x, x0, grad = make_inputs((b, c, h, w), torch.float32, device, seed=seed)
    assert_matches_reference(backend, x, x0, grad, step, eps)


@pytest.mark.parametrize("quantum", [None, 1 / 255])
def test_cpu_bfloat16_rounds_like_torch(quantum):
    """The CPU loop converts bfloat16 with its own integer code (vectorised, AVX-512 where the
    CPU has it): bit for bit what torch's conversions give, over enough elements to run the
    vector loop and its tail, NaN gradients included."""
    x, x0, grad = make_inputs((2, 3, 41, 53), torch.bfloat16, "cpu", seed=7)
    got = run("cpu", x, x0, grad, 0.013, 0.05, quantum=quantum)
    want = run("torch", x, x0, grad, 0.013, 0.05, quantum=quantum)
    assert torch.equal(got, want)


@needs_gpu(free_gb=20)
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_64bit_indexing(backend):
    """More than 2^31 elements: spot-check the last ones (a 32-bit index would wrap)."""
    n = 2**31 + 4096
    x0 = torch.full((1, 1, 1, n), 0.5, dtype=torch.float16, device="cuda")
    x = x0.clone()
    grad = torch.ones_like(x0)
    grad[..., -3:] = -1
    sign_step_(x, x0, grad, 0.125, 0.25, backend=backend)
    assert x[0, 0, 0, :3].tolist() == [0.625] * 3
    assert x[0, 0, 0, -3:].tolist() == [0.375] * 3
    assert x[0, 0, 0, -4].item() == 0.625


def test_opcheck_compiled_op():
    x, x0, grad = make_inputs((2, 3, 5, 6), torch.float32, "cpu")
    eps = torch.full((2, 1, 5, 6), 0.05)
    active = torch.tensor([True, False]).view(2, 1, 1, 1)
    for args in (
        (x, x0, grad, 0.02, None, 0.05, None, 0.0, 1.0, None, None, None),
        (x, x0, grad, 0.02, None, 0.0, eps, 0.0, 1.0, None, active, 1 / 255),
    ):
        torch.library.opcheck(torch.ops.fastadv.sign_step_.default, args)


def test_opcheck_triton_op():
    from fastadv.triton.sign_step import sign_step_triton_

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, x0, grad = make_inputs((2, 3, 4, 5), torch.float32, device)
    torch.library.opcheck(
        sign_step_triton_, (x, x0, grad, 0.02, None, 0.05, None, 0.0, 1.0, None, None, None)
    )


def test_inside_torch_compile():
    x, x0, grad = make_inputs((2, 3, 8, 8), torch.float32, "cpu", seed=5)
    want = run("torch", x, x0, grad, 0.02, 0.05)

    @torch.compile(fullgraph=True)
    def pgd_update(x, x0, grad):
        torch.ops.fastadv.sign_step_(
            x, x0, grad, 0.02, None, 0.05, None, 0.0, 1.0, None, None, None
        )
        return x * 1.0

    got = pgd_update(x.clone(), x0, grad)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"x0": torch.rand(2, 3, 4, 5)}, ValueError, "x0 has shape"),
        ({"grad": torch.ones(2, 3, 4, 4, dtype=torch.int64)}, TypeError, "grad must be a float"),
        ({"x0": torch.rand(2, 3, 4, 4, dtype=torch.float64)}, TypeError, "x0 has dtype"),
        ({"x_adv": torch.randint(0, 255, (2, 3, 4, 4))}, TypeError, "x_adv must be float"),
        ({"x_adv": torch.rand(3, 4, 4)}, ValueError, "x_adv must be 4-d"),
        ({"eps": -0.1}, ValueError, "eps must be >= 0"),
        ({"eps": torch.full((2,), -0.1)}, ValueError, "eps must be >= 0"),
        ({"eps": torch.rand(3, 1, 1, 1)}, ValueError, "eps of shape"),
        ({"step": math.nan}, ValueError, "step is NaN"),
        ({"lo": 1.0, "hi": 0.0}, ValueError, r"lo \(1.0\) must not exceed hi"),
        ({"mask": torch.ones(2, 5, 5)}, ValueError, "mask of shape"),
        ({"active": torch.ones(3, dtype=torch.bool)}, ValueError, "active must be a bool"),
        ({"quantum": 0.0}, ValueError, "quantum must be > 0"),
        ({"backend": "cuda"}, BackendUnavailableError, "cuda"),
        ({"backend": "nope"}, ValueError, "backend must be"),
    ],
)
def test_bad_input(change, error, match):
    args = {
        "x_adv": torch.rand(2, 3, 4, 4),
        "x0": torch.rand(2, 3, 4, 4),
        "grad": torch.randn(2, 3, 4, 4),
        "step": 0.1,
        "eps": 0.1,
    }
    args.update(change)
    with pytest.raises(error, match=match):
        sign_step_(**args)


def test_compiled_op_checks_its_operands():
    """The raw op checks what memory safety needs, for callers that skip the Python layer (the
    values, such as eps >= 0, are checked once, by the Python API)."""
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="does not broadcast"):
        eps = torch.rand(3, 1, 1, 1)
        torch.ops.fastadv.sign_step_(x, x, x, 0.1, None, 0.0, eps, 0.0, 1.0, None, None, None)
    with pytest.raises(RuntimeError, match="grad has strides"):
        g = x.contiguous(memory_format=torch.channels_last)
        torch.ops.fastadv.sign_step_(x, x, g, 0.1, None, 1.0, None, 0.0, 1.0, None, None, None)


def test_auto_picks_compiled_backend_on_cpu():
    from fastadv.ops._backend import resolve

    assert resolve("auto", torch.device("cpu")) == "cpu"


ALL_BACKENDS = [pytest.param("torch", torch.device("cpu"), id="torch"), *compiled_backends()]


@pytest.mark.parametrize("backend,device", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_images_give_nan(backend, device, dtype):
    """NaN in x_adv or x0 gives NaN (as documented), the same on every backend; a sample that
    is not active keeps its values, NaN or not; a NaN gradient is no direction."""
    x, x0, grad = make_inputs((2, 3, 4, 5), dtype, device, seed=9)
    x[0, 0, 1, 1] = math.nan
    x0[0, 1, 2, 2] = math.nan
    x[1, 2, 3, 4] = math.nan
    for quantum in (None, 1 / 255):
        got = run(backend, x, x0, grad, 0.02, 0.05, quantum=quantum)
        want_nan = torch.isnan(x) | torch.isnan(x0)
        assert torch.equal(torch.isnan(got), want_nan)
        active = torch.tensor([True, False], device=device)
        got = run(backend, x, x0, grad, 0.02, 0.05, quantum=quantum, active=active)
        assert torch.equal(torch.isnan(got[1]), torch.isnan(x[1]))


@pytest.mark.parametrize("backend,device", ALL_BACKENDS)
@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(*[st.integers(0, 3)] * 4), per_pixel=st.booleans(), seed=st.integers(0, 99))
def test_degenerate_shapes(backend, device, shape, per_pixel, seed):
    """Empty and 1-wide batches, channels, rows and columns, with scalar and per-pixel eps."""
    x, x0, grad = make_inputs(shape, torch.float32, device, seed=seed)
    b, _, h, w = shape
    eps = torch.full((b, 1, h, w), 0.05, device=device) if per_pixel else 0.05
    assert_matches_reference(backend, x, x0, grad, 0.02, eps)


# ---- GPU only: index width, alignment, devices, streams, graphs, compile


@needs_gpu(free_gb=16)
def test_32bit_indexing_boundary():
    """Just under 2^31 elements, unaligned (one element a thread): the grid-stride and tail
    indices pass INT_MAX, so the launch must take 64-bit indexing; with 32-bit ones it wrote out
    of bounds. A guard region after the view must stay untouched."""
    n = 2**31 - 2**27  # in (2^31 - 2^28, 2^31): the range of the old bug
    guard = 4096
    buffer = torch.full((n + 1 + guard,), 0.5, dtype=torch.float16, device="cuda")
    x = buffer[1 : n + 1].view(1, 1, 1, n)  # 2 bytes off: not 16-byte aligned
    x0 = torch.full_like(x, 0.5)
    grad = torch.ones_like(x)
    sign_step_(x, x0, grad, 0.125, 0.25, backend="cuda")
    assert x[0, 0, 0, -3:].tolist() == [0.625] * 3 and x[0, 0, 0, :3].tolist() == [0.625] * 3
    assert buffer[0].item() == 0.5
    assert bool((buffer[n + 1 :] == 0.5).all())


@needs_gpu()
@pytest.mark.parametrize("backend", gpu_backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_misaligned_pointers(backend, dtype):
    """Views that start one element into their storage: the element-at-a-time path."""
    shape = (2, 3, 33, 65)
    x, x0, grad = make_inputs(shape, dtype, "cuda", seed=11)
    numel = x.numel()

    def shifted(t):
        store = torch.empty(numel + 1, dtype=dtype, device="cuda")
        store[1:] = t.reshape(-1)
        return store[1:].view(shape)

    eps = 0.05 * torch.rand(2, 1, 33, 65, device="cuda", dtype=torch.float64)
    want = run("torch", x.cpu(), x0.cpu(), grad.cpu(), 0.02, eps.cpu(), quantum=1 / 255)
    got = shifted(x)
    assert got.data_ptr() % 16 != 0
    sign_step_(got, shifted(x0), shifted(grad), 0.02, eps, quantum=1 / 255, backend=backend)
    torch.testing.assert_close(got.cpu(), want, atol=ATOL[dtype], rtol=0)


@needs_two_gpus
@pytest.mark.parametrize("backend", gpu_backends())
def test_second_gpu(backend):
    """Tensors on cuda:1 while cuda:0 is current: the kernel runs on the tensors' device."""
    x, x0, grad = make_inputs((2, 3, 16, 16), torch.float32, "cuda:1", seed=12)
    want = run("torch", x.cpu(), x0.cpu(), grad.cpu(), 0.02, 0.05)
    with torch.cuda.device(0):
        got = run(backend, x, x0, grad, 0.02, 0.05)
    torch.testing.assert_close(got.cpu(), want, atol=1e-6, rtol=0)


@needs_gpu()
@pytest.mark.parametrize("backend", gpu_backends())
def test_non_default_stream(backend):
    """The update runs on the current stream, ordered after the work that made its inputs."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x0 = torch.rand(4, 3, 256, 256, device="cuda")
        grad = torch.randn_like(x0)
        x = x0.clone()
        sign_step_(x, x0, grad, 0.02, 0.05, backend=backend)
        got = x.clone()
    stream.synchronize()
    want = run("torch", x0.cpu(), x0.cpu(), grad.cpu(), 0.02, 0.05)
    torch.testing.assert_close(got.cpu(), want, atol=1e-6, rtol=0)


@needs_gpu()
@pytest.mark.parametrize("backend", gpu_backends())
def test_cuda_graph_capture(backend):
    """An attack iteration's update (SignStep, prepared once) captured in a CUDA graph and
    replayed on new data equals the eager update."""
    x, x0, grad = make_inputs((4, 3, 32, 32), torch.float32, "cuda", seed=13)
    eps = 0.05 * torch.rand(4, device="cuda")
    update = SignStep.prepare(x, 0.01, eps, quantum=1 / 255, backend=backend)
    static_x, static_x0, static_grad = x.clone(), x0.clone(), grad.clone()
    update(static_x.clone(), static_x0, static_grad)  # warm up (compiles Triton) outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        update(static_x, static_x0, static_grad)
    for seed in (14, 15):
        new_x, new_x0, new_grad = make_inputs((4, 3, 32, 32), torch.float32, "cuda", seed=seed)
        static_x.copy_(new_x), static_x0.copy_(new_x0), static_grad.copy_(new_grad)
        graph.replay()
        want = update(new_x.clone(), new_x0, new_grad)
        assert torch.equal(static_x, want)


@needs_gpu()
def test_torch_compile_on_cuda():
    x, x0, grad = make_inputs((2, 3, 8, 8), torch.float32, "cuda", seed=5)
    want = run("torch", x.cpu(), x0.cpu(), grad.cpu(), 0.02, 0.05)

    @torch.compile(fullgraph=True)
    def update(x, x0, grad):
        torch.ops.fastadv.sign_step_(
            x, x0, grad, 0.02, None, 0.05, None, 0.0, 1.0, None, None, None
        )
        return x * 1.0

    torch.testing.assert_close(update(x.clone(), x0, grad).cpu(), want, atol=1e-6, rtol=0)


@needs_gpu()
def test_opcheck_on_cuda():
    from fastadv.triton.sign_step import sign_step_triton_

    x, x0, grad = make_inputs((2, 3, 5, 6), torch.float32, "cuda")
    eps = torch.full((2, 1, 5, 6), 0.05, device="cuda")
    active = torch.tensor([True, False], device="cuda").view(2, 1, 1, 1)
    for op in (torch.ops.fastadv.sign_step_.default, sign_step_triton_):
        for args in (
            (x, x0, grad, 0.02, None, 0.05, None, 0.0, 1.0, None, None, None),
            (x, x0, grad, 0.02, None, 0.0, eps, 0.0, 1.0, None, active, 1 / 255),
        ):
            torch.library.opcheck(op, args)
