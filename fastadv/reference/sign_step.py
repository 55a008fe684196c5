"""The fused sign-step-clip update, the inner step of FGSM / I-FGSM / PGD: its definition.

For every sample b with active[b] (all when active is None), elementwise::

    delta = x_adv + step * sign(grad) * m - x0      sign(0) = sign(NaN) = 0, m = mask (1 if None)
    delta = clamp(delta, -eps, eps)
    delta = clamp(round(delta / quantum) * quantum, -eps, eps)     only when quantum is given
    x_adv = clamp(x0 + delta, lo, hi)

Half types compute in float32. `sign_step_` below is the "torch" backend; the compiled ones
(torch.ops.fastadv.sign_step_, fastadv.triton.sign_step) take the same operands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from fastadv._tensors import compute_dtype


@dataclass(frozen=True)
class SignStepOperands:
    """The operands besides x_adv, x0 and grad, in the form every backend takes: a scalar step
    and eps, or broadcast maps of them (4-d, on x_adv's device, in its compute dtype); the box;
    the mask (compute dtype), `active` (bool [B, 1, 1, 1]) and the quantum, or None."""

    step: float
    step_map: torch.Tensor | None
    eps: float
    eps_map: torch.Tensor | None
    lo: float
    hi: float
    mask: torch.Tensor | None
    active: torch.Tensor | None
    quantum: float | None

    def as_args(self) -> tuple:
        """The operands in the order of the op's schema, after x, x0 and grad."""
        return (
            self.step, self.step_map, self.eps, self.eps_map, self.lo, self.hi,
            self.mask, self.active, self.quantum,
        )  # fmt: skip

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


def sign_step_(x, x0, grad, step, step_map, eps, eps_map, lo, hi, mask, active, quantum) -> None:
    """The definition of the op (the "torch" backend), in place on `x`; arguments as in the
    op's schema (`SignStepOperands.as_args`)."""
    acc = compute_dtype(x.dtype)
    xa, x0a = x.to(acc), x0.to(acc)
    step = step if step_map is None else step_map
    eps = eps if eps_map is None else eps_map
    direction = torch.nan_to_num(torch.sign(grad.to(acc)), nan=0.0)
    if mask is not None:
        direction = direction * mask
    delta = xa + step * direction - x0a
    delta = torch.clamp(delta, -eps, eps)
    if quantum is not None:
        delta = torch.clamp(torch.round(delta / quantum) * quantum, -eps, eps)
    updated = torch.clamp(x0a + delta, lo, hi)
    if active is not None:
        updated = torch.where(active, updated, xa)
    x.copy_(updated)
