"""What every attack returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AttackResult:
    """adv: the adversarial images; success: bool [B], the goal reached on `adv` (None when the
    attack ran with evaluate=False); iterations: int64 [B], gradient steps taken; linf, l2:
    per-sample norms of adv - x."""

    adv: torch.Tensor
    success: torch.Tensor | None
    iterations: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor

    @classmethod
    def measured(cls, adv, x, success, iterations, **fields):
        """The result with the norms of adv - x (and the fields of a subclass)."""
        linf, l2 = distances(adv, x)
        return cls(adv, success, iterations, linf, l2, **fields)

    @property
    def success_rate(self) -> float:
        if self.success is None:
            raise ValueError("no success flags: the attack ran with evaluate=False")
        return self.success.float().mean().item() if self.success.numel() else float("nan")


def distances(adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: the L-inf and L2 norms of adv - x, computed in float32."""
    delta = (adv - x).flatten(1).float()
    return delta.abs().amax(1), delta.norm(dim=1)
