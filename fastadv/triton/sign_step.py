"""Triton kernel of the fused sign-step-clip update (formula: fastadv.reference.sign_step).

One program updates BLOCK consecutive elements (in memory order) of x, reading x, x0 and grad
once and writing x once. Broadcast operands (step/eps maps, mask, active) are gathered at
coordinates computed from the element index only when one is present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastadv._tensors import memory_order
from fastadv.triton._common import clamp, launch, round_half_even, strided_offset

BLOCK = 1024


@triton.jit
def _sign_step_kernel(
    x_ptr, x0_ptr, grad_ptr, numel,
    step: tl.float64, eps: tl.float64, lo: tl.float64, hi: tl.float64, quantum: tl.float64,
    step_ptr, eps_ptr, mask_ptr, active_ptr,
    n0, n1, n2,
    ss0, ss1, ss2, ss3, es0, es1, es2, es3, ms0, ms1, ms2, ms3, as0, as1, as2, as3,
    HAS_STEP: tl.constexpr, HAS_EPS: tl.constexpr, HAS_MASK: tl.constexpr,
    HAS_ACTIVE: tl.constexpr, HAS_QUANTUM: tl.constexpr, IS_F64: tl.constexpr,
    INDEX_64: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    # The scalars arrive as float64 (annotated: unannotated Python floats would be float32) and
    # round to the compute type here (tl.full), as the C++ kernels' static_cast does.
    pid = tl.program_id(0)
    if INDEX_64:
        pid = pid.to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inside = offs < numel
    acc = tl.float64 if IS_F64 else tl.float32
    x = tl.load(x_ptr + offs, mask=inside).to(acc)
    x0 = tl.load(x0_ptr + offs, mask=inside).to(acc)
    g = tl.load(grad_ptr + offs, mask=inside).to(acc)

    k0 = offs % n0
    rest = offs // n0
    k1 = rest % n1
    rest = rest // n1
    k2 = rest % n2
    k3 = rest // n2
    if HAS_STEP:
        step_v = tl.load(step_ptr + strided_offset(k0, k1, k2, k3, ss0, ss1, ss2, ss3), mask=inside)
    else:
        step_v = tl.full([], step, acc)
    if HAS_EPS:
        eps_v = tl.load(eps_ptr + strided_offset(k0, k1, k2, k3, es0, es1, es2, es3), mask=inside)
    else:
        eps_v = tl.full([], eps, acc)

    sign = tl.where(g > 0, 1.0, tl.where(g < 0, -1.0, 0.0)).to(acc)
    move = step_v * sign
    if HAS_MASK:
        move = move * tl.load(
            mask_ptr + strided_offset(k0, k1, k2, k3, ms0, ms1, ms2, ms3), mask=inside
        )
    delta = clamp(x + move - x0, -eps_v, eps_v)
    if HAS_QUANTUM:
        q = tl.full([], quantum, acc)
        # round to nearest, as CUDA's `/` and the CPU's: compiled float32 `/` is approximate
        ratio = delta / q if IS_F64 else tl.div_rn(delta, q)
        delta = clamp(round_half_even(ratio) * q, -eps_v, eps_v)
    out = clamp(x0 + delta, tl.full([], lo, acc), tl.full([], hi, acc))
    if HAS_ACTIVE:
        on = tl.load(active_ptr + strided_offset(k0, k1, k2, k3, as0, as1, as2, as3), mask=inside)
        out = tl.where(on != 0, out, x)
    tl.store(x_ptr + offs, out.to(x_ptr.dtype.element_ty), mask=inside)


def _broadcast_strides(t: torch.Tensor | None, x: torch.Tensor, order: list[int]) -> list[int]:
    if t is None:
        return [0, 0, 0, 0]
    e = t.expand(x.shape)
    return [0 if x.shape[d] == 1 else e.stride(d) for d in order]


@torch.library.custom_op("fastadv::sign_step_triton_", mutates_args=("x",))
def sign_step_triton_(
    x: torch.Tensor,
    x0: torch.Tensor,
    grad: torch.Tensor,
    step: float,
    step_map: torch.Tensor | None,
    eps: float,
    eps_map: torch.Tensor | None,
    lo: float,
    hi: float,
    mask: torch.Tensor | None,
    active: torch.Tensor | None,
    quantum: float | None,
) -> None:
    """Triton version of torch.ops.fastadv.sign_step_ (same operands, same checks upstream)."""
    numel = x.numel()
    if numel == 0:
        return
    scalars = [float(step), float(eps), float(lo), float(hi), float(quantum or 0.0)]
    order = memory_order(x)
    sizes = [x.shape[d] for d in order]
    strides = [_broadcast_strides(t, x, order) for t in (step_map, eps_map, mask, active)]
    reach = [sum((n - 1) * s for n, s in zip(sizes, st, strict=True)) for st in strides]
    largest = max(numel, *reach)
    dummy = x  # any pointer, never read when its HAS_* flag is off
    launch(
        _sign_step_kernel, (triton.cdiv(numel, BLOCK),), x, x0, grad, numel,
        *scalars,
        dummy if step_map is None else step_map,
        dummy if eps_map is None else eps_map,
        dummy if mask is None else mask,
        dummy if active is None else active,
        sizes[0], sizes[1], sizes[2],
        *strides[0], *strides[1], *strides[2], *strides[3],
        HAS_STEP=step_map is not None, HAS_EPS=eps_map is not None, HAS_MASK=mask is not None,
        HAS_ACTIVE=active is not None, HAS_QUANTUM=quantum is not None,
        IS_F64=x.dtype == torch.float64, INDEX_64=largest >= 2**31 - BLOCK, BLOCK=BLOCK,
    )  # fmt: skip


@sign_step_triton_.register_fake
def _(x, x0, grad, step, step_map, eps, eps_map, lo, hi, mask, active, quantum) -> None:
    return None
