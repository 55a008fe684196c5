"""fastadv.ops.sign_step_: every backend against the pure-torch reference."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import compiled_backends
from fastadv.ops import BackendUnavailableError, sign_step_

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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU with >= 20 GB free")
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
