"""The fused sign-step-clip update, the inner step of FGSM / I-FGSM / PGD.

For every sample b with active[b] (all when active is None), elementwise::

    delta = x_adv + step * sign(grad) * m - x0      sign(0) = sign(NaN) = 0, m = mask (1 if None)
    delta = clamp(delta, -eps, eps)
    delta = clamp(round(delta / quantum) * quantum, -eps, eps)     only when quantum is given
    x_adv = clamp(x0 + delta, lo, hi)

NaN in x_adv or x0 gives NaN in x_adv on every backend (a NaN gradient does not: it is no
direction). Half types compute in float32. The compiled backends read each input once and write
x_adv once.

`sign_step_` checks its arguments on every call. An attack, which runs the update once an
iteration, prepares it once instead (`SignStep.prepare`) and then calls it with no checks and no
host synchronisation (capturable in a CUDA graph).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from fastadv import _ext
from fastadv._tensors import (
    check_float,
    check_images,
    check_like,
    check_tensor,
    compute_dtype,
    is_dense,
    with_layout_of,
)
from fastadv.ops import _backend
from fastadv.reference import sign_step as reference
from fastadv.reference.sign_step import SignStepOperands

Bound = float | torch.Tensor

_IMPLEMENTATIONS = _backend.Implementations(
    reference=reference.sign_step_, compiled="sign_step_", triton=("sign_step", "sign_step_triton_")
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
    validate: bool = True,
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
        validate: check the values of tensor `step` and `eps` (NaN, eps < 0): one host
            synchronisation. False skips it (in a CUDA graph, or where they were checked before).
        backend: "auto", "cuda", "triton", "cpu" or "torch".
    """
    check_images(x_adv, "x_adv")
    check_float(x0, "x0")
    check_like(x0, x_adv, "x0", "x_adv")
    check_tensor(grad, "grad")
    if not grad.dtype.is_floating_point:
        raise TypeError(f"grad must be a float tensor, got {grad.dtype}")
    check_like(grad, x_adv, "grad", "x_adv")
    update = SignStep.prepare(
        x_adv, step, eps, lo=lo, hi=hi, mask=mask, active=active, quantum=quantum,
        validate=validate, backend=backend,
    )  # fmt: skip
    return update(x_adv, x0, grad)


@dataclass(frozen=True)
class SignStep:
    """The update with its operands checked and brought to the kernels' form once, and its
    backend chosen once; calling it runs one update with no checks and no host synchronisation.

    >>> update = SignStep.prepare(x, alpha, eps, quantum=1 / 255)
    >>> for _ in range(steps):
    ...     update(x_adv, x, grad_of(x_adv))
    """

    operands: SignStepOperands
    backend: str

    @classmethod
    def prepare(
        cls,
        x_adv: torch.Tensor,
        step: Bound,
        eps: Bound,
        *,
        lo: float = 0.0,
        hi: float = 1.0,
        mask: torch.Tensor | None = None,
        active: torch.Tensor | None = None,
        quantum: float | None = None,
        validate: bool = True,
        backend: str = "auto",
    ) -> SignStep:
        """Checks the arguments besides the three images (errors name them; see `sign_step_`)
        for updates of images like `x_adv`."""
        check_images(x_adv, "x_adv")
        lo, hi = float(lo), float(hi)
        if not lo <= hi:
            raise ValueError(f"lo ({lo}) must not exceed hi ({hi})")
        if quantum is not None and not float(quantum) > 0:
            raise ValueError(f"quantum must be > 0, got {quantum}")
        step, step_map = _bound(step, x_adv, "step", nonnegative=False, validate=validate)
        eps, eps_map = _bound(eps, x_adv, "eps", nonnegative=True, validate=validate)
        operands = SignStepOperands(
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
        return cls(operands, _backend.resolve(backend, x_adv.device))

    def __call__(self, x_adv: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """x_adv updated in place; x0 and grad as in `sign_step_`, unchecked."""
        work = x_adv if is_dense(x_adv) else x_adv.contiguous()
        kernel = _IMPLEMENTATIONS.pick(self.backend)
        kernel(work, with_layout_of(x0, work), with_layout_of(grad, work), *self.operands.as_args())
        if work is not x_adv:
            x_adv.copy_(work)
        return x_adv

    def subset(self, keep: torch.Tensor) -> SignStep:
        """The update of the samples `keep` (bool [B]) selects, for a batch that shrinks."""
        return replace(self, operands=self.operands.subset(keep))

    def with_step(self, step: float) -> SignStep:
        """The same update with another scalar step (e.g. signed by the attack's direction)."""
        return replace(self, operands=replace(self.operands, step=float(step), step_map=None))


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


def _bound(value: Bound, x: torch.Tensor, name: str, *, nonnegative: bool, validate: bool):
    """A float stays a float (no map); a tensor becomes a broadcast map in the compute dtype."""
    if isinstance(value, torch.Tensor):
        if not (value.dtype.is_floating_point or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a float or a float tensor, got {value.dtype}")
        value = _per_sample_view(value, x, name).to(compute_dtype(x.dtype))
        if validate:
            _check_values(value, name, nonnegative)
        return 0.0, value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} is NaN")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value, None


def _check_values(value: torch.Tensor, name: str, nonnegative: bool) -> None:
    """One pass and one host synchronisation in the common case: NaN fails `>= 0` as a
    negative value does."""
    if nonnegative and not bool((value >= 0).all()):
        nan = bool(torch.isnan(value).any())
        raise ValueError(f"{name} contains NaN" if nan else f"{name} must be >= 0 everywhere")
    if not nonnegative and bool(torch.isnan(value).any()):
        raise ValueError(f"{name} contains NaN")


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


if _ext.has_extension():

    @torch.library.register_fake("fastadv::sign_step_")
    def _(x, x0, grad, step, step_map, eps, eps_map, lo, hi, mask, active, quantum) -> None:
        return None
