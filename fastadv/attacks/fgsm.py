"""FGSM, I-FGSM (BIM) and PGD: untargeted, targeted or least-likely; classifiers and dense
(per-pixel) models.

    x_{t+1} = clip_{x, eps}( x_t + d * alpha * sign(grad_x L(f(x_t), y)) )

with d = +1 away from the labels (untargeted) and d = -1 towards a target or, recomputed every
iteration, the least likely class (per sample or per pixel).

`evaluate=False` skips the forward pass on the final images that sets `result.success` (left
None), for loops that only need the images, such as adversarial training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastadv.attacks import goals
from fastadv.attacks._engine import SignOptions, first_pass, run
from fastadv.attacks._inputs import check_labels, check_unit_images, checked_logits
from fastadv.attacks._model import as_attacked
from fastadv.attacks._result import AttackResult


def fgsm(
    model,
    x,
    labels=None,
    *,
    eps,
    target=None,
    least_likely=False,
    ignore_index=255,
    evaluate=True,
    backend="auto",
) -> AttackResult:
    """Fast gradient sign method: one step of size eps."""
    aim = Aim(target, least_likely, ignore_index)
    options = SignOptions(eps, steps=1, evaluate=evaluate, backend=backend)
    return _sign_attack(model, x, labels, aim, options)


def ifgsm(
    model,
    x,
    labels=None,
    *,
    eps,
    alpha=1 / 255,
    steps=None,
    target=None,
    least_likely=False,
    early_stop=False,
    check_every=1,
    success_fraction=0.99,
    ignore_index=255,
    quantum=None,
    evaluate=True,
    backend="auto",
) -> AttackResult:
    """Iterative FGSM (BIM), Kurakin et al.; `steps` defaults to their schedule."""
    aim = Aim(target, least_likely, ignore_index, success_fraction)
    options = SignOptions(
        eps, alpha, steps, early_stop, check_every, quantum, evaluate=evaluate, backend=backend
    )
    return _sign_attack(model, x, labels, aim, options)


def pgd(
    model,
    x,
    labels=None,
    *,
    eps=8 / 255,
    alpha=2 / 255,
    steps=10,
    target=None,
    least_likely=False,
    early_stop=False,
    check_every=1,
    success_fraction=0.99,
    ignore_index=255,
    quantum=None,
    evaluate=True,
    backend="auto",
) -> AttackResult:
    """Projected gradient descent (Madry et al.): I-FGSM from a uniform random start in the
    eps ball (drawn with torch's global RNG, like torchattacks)."""
    aim = Aim(target, least_likely, ignore_index, success_fraction)
    options = SignOptions(
        eps, alpha, steps, early_stop, check_every, quantum, random_start=True,
        evaluate=evaluate, backend=backend,
    )  # fmt: skip
    return _sign_attack(model, x, labels, aim, options)


@dataclass(frozen=True)
class Aim:
    """Where an attack of this family goes: away from the labels (the clean prediction when
    none are given), towards `target`, or towards the least likely class; done once
    `success_fraction` of a sample's (counted) pixels say so."""

    target: torch.Tensor | None = None
    least_likely: bool = False
    ignore_index: int = 255
    success_fraction: float = 0.99

    def check(self) -> None:
        if self.target is not None and self.least_likely:
            raise ValueError("give a target or least_likely=True, not both")

    def goal(self, logits: torch.Tensor, labels) -> goals.Goal:
        """The goal from the clean logits."""
        kw = {"ignore_index": self.ignore_index, "fraction": self.success_fraction}
        if self.target is not None:
            target = check_labels(self.target, logits, "target", self.ignore_index)
            return goals.Targeted(target, **kw)
        if labels is None:
            labels = logits.argmax(1)
        else:
            labels = check_labels(labels, logits, "labels", self.ignore_index)
        return (goals.LeastLikely if self.least_likely else goals.Untargeted)(labels, **kw)


def _sign_attack(model, x, labels, aim: Aim, options: SignOptions) -> AttackResult:
    check_unit_images(x)
    aim.check()
    schedule, update = options.plan(x)
    model = as_attacked(model, x)
    first = first_pass(model, x, graph=not schedule.random_start)
    goal = aim.goal(checked_logits(first.output, x), labels)
    return run(model, x, goal, schedule, update, first)
