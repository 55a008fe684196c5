"""Fischer et al.'s class hiding: make a segmentation network miss every pixel of some classes
while its prediction elsewhere stays as it was.

The target is the clean prediction with every pixel of the hidden classes relabelled to its
nearest pixel of another class (fastadv.ops.nearest_fill); I-FGSM descends towards it
(alpha = 1/255, Kurakin's schedule), with the noise on the full image, on the hidden pixels
only after the attack (their Fig. 1 c), or on them only during it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from fastadv.attacks import goals
from fastadv.attacks._engine import Schedule, SignOptions, first_pass, run
from fastadv.attacks._inputs import (
    check_class_range,
    check_unit_images,
    checked_logits,
    class_ids,
)
from fastadv.attacks._model import as_attacked, attack_mode
from fastadv.attacks._result import AttackResult
from fastadv.ops import SignStep, nearest_fill

RESTRICT = (None, "after", "during")


@dataclass
class HideResult(AttackResult):
    """AttackResult plus clean_pred (int64 [B, H, W]), target (the nearest-fill target) and
    hidden (bool [B, H, W], the pixels of the hidden classes in the clean prediction).
    Images with nothing to hide count as successes; images hidden entirely (no other class to
    take over) as failures; both are left unchanged."""

    clean_pred: torch.Tensor | None = None
    target: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


def hide_classes(
    model,
    x: torch.Tensor,
    classes,
    eps,
    *,
    alpha: float = 1 / 255,
    steps: int | None = None,
    restrict: str | None = None,
    early_stop: bool = True,
    check_every: int = 1,
    success_fraction: float = 0.99,
    evaluate: bool = True,
    backend: str = "auto",
) -> HideResult:
    """Hides `classes` (an id or a sequence of ids) from a dense model's prediction on x.

    A sample is done (early stopping, success) once `success_fraction` of its hidden pixels
    are predicted as some other class. `evaluate=False` skips the forward pass on the final
    images: `success` is then None.
    """
    check_unit_images(x)
    if restrict not in RESTRICT:
        raise ValueError(f"restrict must be one of {RESTRICT}, got {restrict!r}")
    ids = class_ids(classes)
    options = SignOptions(
        eps, alpha, steps, early_stop, check_every, evaluate=evaluate, backend=backend
    )
    schedule, update = options.plan(x)
    model = as_attacked(model, x)
    first = first_pass(model, x)
    logits = checked_logits(first.output, x)
    if logits.dim() != 4:
        raise ValueError("hide_classes needs a dense model (logits [B, K, H, W])")
    check_class_range(ids, logits.shape[1])
    clean_pred = logits.argmax(1)
    fill = nearest_fill(clean_pred, ids, on_empty="keep", backend=backend)
    classes_t = torch.tensor(ids, device=x.device)
    hidden = torch.isin(clean_pred, classes_t)
    shown = hidden.flatten(1).any(1)
    result = HideResult.measured(
        x.clone(), x, ~shown, torch.zeros_like(shown, dtype=torch.long),
        clean_pred=clean_pred, target=fill.labels, hidden=hidden,
    )  # fmt: skip
    todo = shown & ~fill.empty
    if todo.any():
        if restrict == "during":
            update = options.update(x, hidden, validate=False)
        goal = goals.HideClasses(
            fill.labels[todo], hidden[todo], classes_t, fraction=success_fraction
        )
        whole = bool(todo.all())  # the clean pass's graph is the whole batch's
        sub = _attack(
            model, x[todo], goal, schedule, update.subset(todo), restrict, first if whole else None
        )
        for field in ("adv", "iterations", "linf", "l2"):
            getattr(result, field)[todo] = getattr(sub, field)
        if evaluate:
            result.success[todo] = sub.success
    if not evaluate:
        result.success = None
    return result


def _attack(
    model, x, goal: goals.HideClasses, schedule: Schedule, update: SignStep, restrict, first
) -> AttackResult:
    if restrict != "after":
        return run(model, x, goal, schedule, update, first)
    # Noise restricted after the attack: success is judged on the masked images, not on these.
    result = run(model, x, goal, replace(schedule, evaluate=False), update, first)
    adv = x + (result.adv - x) * goal.hidden[:, None]
    success = None
    if schedule.evaluate:
        with attack_mode(model), torch.no_grad():
            everyone = torch.arange(x.shape[0], device=x.device)
            success = goal.done(goal.forward(model, adv), everyone)
    return AttackResult.measured(adv, x, success, result.iterations)
