"""Fischer et al.'s class hiding: make a segmentation network miss every pixel of some classes
while its prediction elsewhere stays as it was.

The target is the clean prediction with every pixel of the hidden classes relabelled to its
nearest pixel of another class (fastadv.ops.nearest_fill); I-FGSM descends towards it
(alpha = 1/255, Kurakin's schedule), with the noise on the full image, on the hidden pixels
only after the attack (their Fig. 1 c), or on them only during it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastadv.attacks import goals
from fastadv.attacks._engine import AttackResult, Schedule, first_pass, run
from fastadv.attacks._inputs import check_budget, check_unit_images, checked_logits
from fastadv.attacks._model import attack_mode
from fastadv.attacks.fgsm import kurakin_steps
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
    eps = check_budget(eps, "eps", x)
    first = first_pass(model, x)
    logits = checked_logits(first.output, x)
    if logits.dim() != 4:
        raise ValueError("hide_classes needs a dense model (logits [B, K, H, W])")
    classes_t = _check_classes(classes, logits.shape[1], x.device)
    clean_pred = logits.argmax(1)
    fill = nearest_fill(clean_pred, classes_t.tolist(), on_empty="keep", backend=backend)
    hidden = torch.isin(clean_pred, classes_t)
    if steps is None:
        steps = kurakin_steps(float(eps.max()) if torch.is_tensor(eps) else eps)

    result = _unchanged(x, clean_pred, fill.labels, hidden, success=~hidden.flatten(1).any(1))
    todo = torch.nonzero(hidden.flatten(1).any(1) & ~fill.empty).flatten()
    if todo.numel():
        sub = _attack(
            model,
            first if todo.numel() == x.shape[0] else None,  # its graph is the whole batch's
            x[todo],
            fill.labels[todo],
            hidden[todo],
            classes_t,
            eps[todo] if torch.is_tensor(eps) else eps,
            alpha,
            steps,
            restrict,
            early_stop,
            check_every,
            success_fraction,
            evaluate,
            backend,
        )
        for field in ("adv", "iterations", "linf", "l2"):
            getattr(result, field)[todo] = getattr(sub, field)
        if evaluate:
            result.success[todo] = sub.success
    if not evaluate:
        result.success = None
    return result


def _attack(
    model,
    first,
    x,
    target,
    hidden,
    classes,
    eps,
    alpha,
    steps,
    restrict,
    early_stop,
    check_every,
    fraction,
    evaluate,
    backend,
) -> AttackResult:
    goal = goals.HideClasses(target, hidden, classes, fraction=fraction)
    mask = hidden[:, None].to(x.dtype) if restrict == "during" else None
    update = SignStep.prepare(x, alpha, eps, mask=mask, backend=backend)
    # Noise restricted after the attack: success is judged on the masked images, not on these.
    schedule = Schedule(
        steps, alpha, early_stop, check_every, evaluate=evaluate and restrict != "after"
    )
    result = run(model, x, goal, schedule, update, first)
    if restrict == "after":
        result.adv = x + (result.adv - x) * hidden[:, None]
        if evaluate:
            with attack_mode(model), torch.no_grad():
                everyone = torch.arange(x.shape[0], device=x.device)
                result.success = goal.done(goal.forward(model, result.adv), everyone)
        delta = (result.adv - x).flatten(1).float()
        result.linf, result.l2 = delta.abs().amax(1), delta.norm(dim=1)
    return result


def _unchanged(x, clean_pred, target, hidden, success) -> HideResult:
    zeros = torch.zeros(x.shape[0], device=x.device)
    return HideResult(
        adv=x.clone(),
        success=success,
        iterations=torch.zeros(x.shape[0], dtype=torch.long, device=x.device),
        linf=zeros,
        l2=zeros.clone(),
        clean_pred=clean_pred,
        target=target,
        hidden=hidden,
    )


def _check_classes(classes, num_classes: int, device) -> torch.Tensor:
    ids = torch.as_tensor(
        [classes] if isinstance(classes, int) else list(classes), dtype=torch.long
    )
    if ids.numel() == 0:
        raise ValueError("classes is empty")
    if ids.min() < 0 or ids.max() >= num_classes:
        raise ValueError(f"classes {ids.tolist()} must lie in [0, {num_classes})")
    return ids.to(device)
