"""FGSM, I-FGSM (BIM) and PGD: untargeted, targeted or least-likely; classifiers and dense
(per-pixel) models.

    x_{t+1} = clip_{x, eps}( x_t + d * alpha * sign(grad_x L(f(x_t), y)) )

with d = +1 away from the labels (untargeted) and d = -1 towards a target or, recomputed every
iteration, the least likely class (per sample or per pixel).

`evaluate=False` skips the forward pass on the final images that sets `result.success` (left
None), for loops that only need the images, such as adversarial training.
"""

from __future__ import annotations

import math

import torch

from fastadv.attacks import goals
from fastadv.attacks._engine import AttackResult, Schedule, first_pass, run
from fastadv.attacks._inputs import check_budget, check_labels, check_unit_images, checked_logits
from fastadv.ops import SignStep


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s iteration count n = ceil(min(eps_px + 4, 1.25 eps_px)), eps in [0, 1]."""
    eps_px = eps * 255
    return max(1, math.ceil(min(eps_px + 4, 1.25 * eps_px) - 1e-9))


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
    return _sign_attack(
        model,
        x,
        labels,
        eps=eps,
        alpha=eps,
        steps=1,
        target=target,
        least_likely=least_likely,
        ignore_index=ignore_index,
        evaluate=evaluate,
        backend=backend,
    )


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
    return _sign_attack(
        model,
        x,
        labels,
        eps=eps,
        alpha=alpha,
        steps=steps,
        target=target,
        least_likely=least_likely,
        early_stop=early_stop,
        check_every=check_every,
        success_fraction=success_fraction,
        ignore_index=ignore_index,
        quantum=quantum,
        evaluate=evaluate,
        backend=backend,
    )


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
    return _sign_attack(
        model,
        x,
        labels,
        eps=eps,
        alpha=alpha,
        steps=steps,
        target=target,
        least_likely=least_likely,
        early_stop=early_stop,
        check_every=check_every,
        success_fraction=success_fraction,
        ignore_index=ignore_index,
        quantum=quantum,
        random_start=True,
        evaluate=evaluate,
        backend=backend,
    )


def _sign_attack(
    model,
    x,
    labels,
    *,
    eps,
    alpha,
    steps,
    target,
    least_likely,
    ignore_index,
    backend,
    early_stop=False,
    check_every=1,
    success_fraction=0.99,
    quantum=None,
    random_start=False,
    evaluate=True,
) -> AttackResult:
    check_unit_images(x)
    eps = check_budget(eps, "eps", x)
    alpha = check_budget(alpha, "alpha", x)
    if torch.is_tensor(alpha):
        raise ValueError("alpha must be a float (eps may be per sample)")
    if steps is None:
        steps = kurakin_steps(float(eps.max()) if torch.is_tensor(eps) else eps)
    if steps < 1 or check_every < 1:
        raise ValueError(f"steps and check_every must be >= 1, got {steps} and {check_every}")
    if target is not None and least_likely:
        raise ValueError("give a target or least_likely=True, not both")
    first = first_pass(model, x, graph=not random_start)
    logits = checked_logits(first.output, x)
    goal = make_goal(logits, labels, target, least_likely, ignore_index, success_fraction)
    update = SignStep.prepare(x, alpha, eps, quantum=quantum, backend=backend)
    schedule = Schedule(steps, alpha, early_stop, check_every, random_start, evaluate)
    return run(model, x, goal, schedule, update, first)


def make_goal(logits, labels, target, least_likely, ignore_index, fraction) -> goals.Goal:
    """The goal of an attack, from the clean logits; labels default to the clean prediction."""
    kw = {"ignore_index": ignore_index, "fraction": fraction}
    if target is not None:
        return goals.Targeted(check_labels(target, logits, "target", ignore_index), **kw)
    labels = (
        logits.argmax(1) if labels is None else check_labels(labels, logits, "labels", ignore_index)
    )
    return (goals.LeastLikely if least_likely else goals.Untargeted)(labels, **kw)
