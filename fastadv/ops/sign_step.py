"""The fused sign-step-clip update, the inner step of FGSM / I-FGSM / PGD.

For every sample b with active[b] (all when active is None), elementwise::

    delta = x_adv + step * sign(grad) * m - x0      sign(0) = sign(NaN) = 0, m = mask (1 if None)
    delta = clamp(delta, -eps, eps)
    delta = clamp(round(delta / quantum) * quantum, -eps, eps)     only when quantum is given
    x_adv = clamp(x0 + delta, lo, hi)

Half types compute in float32. The compiled backends read each input once and write x_adv once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from fastadv import _ext
from fastadv.ops import _backend
from fastadv.ops._tensors import (
    check_float,
    check_images,
    check_like,
    check_tensor,
    compute_dtype,
    is_dense,
    with_layout_of,
)

Bound = float | torch.Tensor


@dataclass
class SignStepOperands:
    """The operands besides x_adv, x0 and grad, in the form every backend takes (see `prepare`)."""

    step: float
    step_map: torch.Tensor | None
    eps: float
    eps_map: torch.Tensor | None
    lo: float
    hi: float
    mask: torch.Tensor | None
    active: torch.Tensor | None
    quantum: float | None

    def subset(self, keep: torch.Tensor) -> SignStepOperands:
        """The operands of the samples `keep` (bool [B]) selects, for a batch that shrinks."""

        def pick(t):
            return t if t is None or t.shape[0] == 1 else t[keep]

        return replace(
            self,
            step_map=pick(self.step_map),
            eps_map=pick(self.eps_map),
            mask=pick(self.mask),
            active=pick(self.active),
        )


def sign_step_(
    x_adv: torch.Tensor,
    x0: torch.Tensor,
    grad: torch.Tensor,
    step: Bound,
    eps: Bound,
    *,
    lo: float = 0.0,
    hi: float = 1.0,
    mask: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
    quantum: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Updates `x_adv` in place (see the module docstring) and returns it.

    Args:
        x_adv, x0, grad: float images [B, C, H, W] of one dtype, shape and device; any dense
            layout (contiguous, channels_last); other layouts are copied.
        step: signed step (negative descends, for targeted attacks; 0 only projects): a float,
            or a tensor broadcastable to x_adv: per sample [B] / [B, 1, 1, 1], per pixel
            [B, 1, H, W], or per element [B, C, H, W].
        eps: L-inf budget, >= 0, in the same forms as `step`.
        lo, hi: the box the result is clamped to.
        mask: where the step applies (bool or float), broadcast over channels ([B, H, W] or any
            shape broadcastable to x_adv).
        active: bool [B]; samples with False are left untouched.
        quantum: round delta to multiples of it (e.g. 1/255 for 8-bit images).
        backend: "auto", "cuda", "triton", "cpu" or "torch".
    """
    check_images(x_adv, "x_adv")
    check_float(x0, "x0")
    check_like(x0, x_adv, "x0", "x_adv")
    check_tensor(grad, "grad")
    if not grad.dtype.is_floating_point:
        raise TypeError(f"grad must be a float tensor, got {grad.dtype}")
    check_like(grad, x_adv, "grad", "x_adv")
    operands = prepare(x_adv, step, eps, lo, hi, mask, active, quantum)
    return apply_(x_adv, x0, grad, operands, _backend.resolve(backend, x_adv.device))


def apply_(x_adv, x0, grad, operands: SignStepOperands, backend: str) -> torch.Tensor:
    """The update with operands already checked by `prepare` and a resolved backend: no checks,
    no host synchronisation (the attacks call this once an iteration)."""
    work = x_adv if is_dense(x_adv) else x_adv.contiguous()
    _IMPLEMENTATIONS[backend](work, with_layout_of(x0, work), with_layout_of(grad, work), operands)
    if work is not x_adv:
        x_adv.copy_(work)
    return x_adv


def prepare(x_adv, step, eps, lo=0.0, hi=1.0, mask=None, active=None, quantum=None):
    """Checks the arguments besides the three images (errors name them) and brings the
    broadcast ones to the kernels' form: 4-d, on x_adv's device, in its compute dtype."""
    lo, hi = float(lo), float(hi)
    if not lo <= hi:
        raise ValueError(f"lo ({lo}) must not exceed hi ({hi})")
    if quantum is not None and not float(quantum) > 0:
        raise ValueError(f"quantum must be > 0, got {quantum}")
    step, step_map = _bound(step, x_adv, "step", nonnegative=False)
    eps, eps_map = _bound(eps, x_adv, "eps", nonnegative=True)
    return SignStepOperands(
        step=step,
        step_map=step_map,
        eps=eps,
        eps_map=eps_map,
        lo=lo,
        hi=hi,
        mask=_mask(mask, x_adv),
        active=_active(active, x_adv),
        quantum=None if quantum is None else float(quantum),
    )


def _per_sample_view(t: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """[B] becomes [B, 1, 1, 1]; [B, H, W] becomes [B, 1, H, W]; then it must broadcast to x."""
    if t.dim() == 1 and t.numel() == x.shape[0]:
        t = t.view(-1, 1, 1, 1)
    elif t.dim() == 3 and t.shape == (x.shape[0], *x.shape[2:]):
        t = t.unsqueeze(1)
    try:
        torch.broadcast_shapes(t.shape, x.shape)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {tuple(t.shape)} does not broadcast to x_adv {tuple(x.shape)}"
        ) from None
    if t.dim() > 4:
        raise ValueError(f"{name} must have at most 4 dims, got shape {tuple(t.shape)}")
    return t.to(device=x.device)


def _bound(value: Bound, x: torch.Tensor, name: str, *, nonnegative: bool):
    """A float stays a float (no map); a tensor becomes a broadcast map in the compute dtype."""
    if isinstance(value, torch.Tensor):
        if not (value.dtype.is_floating_point or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a float or a float tensor, got {value.dtype}")
        value = _per_sample_view(value, x, name).to(compute_dtype(x.dtype))
        # One pass in the common case: NaN fails `>= 0` as a negative value does.
        if nonnegative and not bool((value >= 0).all()):
            nan = bool(torch.isnan(value).any())
            raise ValueError(f"{name} contains NaN" if nan else f"{name} must be >= 0 everywhere")
        if not nonnegative and torch.isnan(value).any():
            raise ValueError(f"{name} contains NaN")
        return 0.0, value
    value = float(value)
    if value != value:
        raise ValueError(f"{name} is NaN")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value, None


def _mask(mask, x: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    check_tensor(mask, "mask")
    if not (mask.dtype == torch.bool or mask.dtype.is_floating_point):
        raise TypeError(f"mask must be bool or float, got {mask.dtype}")
    return _per_sample_view(mask, x, "mask").to(compute_dtype(x.dtype))


def _active(active, x: torch.Tensor) -> torch.Tensor | None:
    if active is None:
        return None
    check_tensor(active, "active")
    if active.dtype != torch.bool or active.shape != (x.shape[0],):
        raise ValueError(
            f"active must be a bool tensor of shape [{x.shape[0]}], "
            f"got {active.dtype} {tuple(active.shape)}"
        )
    return active.to(device=x.device).view(-1, 1, 1, 1)


def sign_step_reference(x: torch.Tensor, x0, grad, o: SignStepOperands) -> None:
    """The pure-PyTorch definition of the op (the "torch" backend), in place on `x`."""
    acc = compute_dtype(x.dtype)
    xa, x0a = x.to(acc), x0.to(acc)
    step = o.step if o.step_map is None else o.step_map
    eps = o.eps if o.eps_map is None else o.eps_map
    direction = torch.nan_to_num(torch.sign(grad.to(acc)), nan=0.0)
    if o.mask is not None:
        direction = direction * o.mask
    delta = xa + step * direction - x0a
    delta = torch.clamp(delta, -eps, eps)
    if o.quantum is not None:
        delta = torch.clamp(torch.round(delta / o.quantum) * o.quantum, -eps, eps)
    updated = torch.clamp(x0a + delta, o.lo, o.hi)
    if o.active is not None:
        updated = torch.where(o.active, updated, xa)
    x.copy_(updated)


def _compiled(x: torch.Tensor, x0, grad, o: SignStepOperands) -> None:
    torch.ops.fastadv.sign_step_(
        x, x0, grad, o.step, o.step_map, o.eps, o.eps_map, o.lo, o.hi, o.mask, o.active, o.quantum
    )


def _triton(x: torch.Tensor, x0, grad, o: SignStepOperands) -> None:
    from fastadv.triton.sign_step import sign_step_triton_

    sign_step_triton_(
        x, x0, grad, o.step, o.step_map, o.eps, o.eps_map, o.lo, o.hi, o.mask, o.active, o.quantum
    )


_IMPLEMENTATIONS = {
    "torch": sign_step_reference,
    "cpu": _compiled,
    "cuda": _compiled,
    "triton": _triton,
}

if _ext.has_extension():

    @torch.library.register_fake("fastadv::sign_step_")
    def _(x, x0, grad, step, step_map, eps, eps_map, lo, hi, mask, active, quantum) -> None:
        return None
