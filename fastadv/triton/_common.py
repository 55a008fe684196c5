"""Helpers that several Triton kernels share."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@dataclass(frozen=True)
class Launch:
    """One kernel launch as a wrapper asked for it: what `compile_check` compiles."""

    kernel: triton.JITFunction
    args: tuple
    kwargs: dict


_recorded: list[Launch] | None = None


def launch(kernel: triton.JITFunction, grid: tuple, *args, **kwargs) -> None:
    """Runs `kernel` on `grid`, on the device of its tensors (Triton launches on the current CUDA
    device, not the tensors'; the C++ wrappers take a device guard for the same reason). Every
    Triton launch of fastadv goes through here, so that `fastadv.triton.compile_check` sees them
    all: inside `recording_launches()` the launch is recorded instead of run."""
    if _recorded is not None:
        _recorded.append(Launch(kernel, args, kwargs))
        return
    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[grid](*args, **kwargs)


@contextlib.contextmanager
def recording_launches() -> Iterator[list[Launch]]:
    """Within the block, launches are recorded in the list yielded rather than run (the wrappers
    then work on meta tensors: nothing is allocated or computed)."""
    global _recorded
    saved, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = saved


@triton.jit
def round_half_even(v):
    """rint(v), exactly: on |v|, |v| - floor(|v|) has no rounding error (Sterbenz)."""
    a = tl.abs(v)
    lower = tl.floor(a)
    frac = a - lower
    odd = (lower - 2.0 * tl.floor(lower * 0.5)) == 1.0
    up = (frac > 0.5) | ((frac == 0.5) & odd)
    r = tl.where(up, lower + 1.0, lower)
    return tl.where(v < 0, -r, r)


@triton.jit
def clamp(v, lo, hi):
    """min(max(v, lo), hi) as two selects, as kernels/common.h's clamp: NaN in v stays NaN (the
    min/max of compiled Triton would drop it, the interpreter's would keep it)."""
    above = tl.where(v < lo, lo, v)
    return tl.where(above > hi, hi, above)


@triton.jit
def strided_offset(k0, k1, k2, k3, s0, s1, s2, s3):
    """Offset of a broadcast operand at memory-order coordinates (k0 innermost)."""
    return k0 * s0 + k1 * s1 + k2 * s2 + k3 * s3
