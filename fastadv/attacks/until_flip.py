"""Berntsen et al.'s attack: signed steps of one grey level towards a target until the network's
decision flips to it.

    x_{t+1} = clip(x_t - step * sign(grad_x J(f(x_t), target)), 0, 1),  until decision = target

No eps budget: the attack measures how many iterations and how much distortion a flip costs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fastadv.attacks import goals
from fastadv.attacks._engine import Schedule, run
from fastadv.attacks._inputs import check_count, check_step_size, check_unit_images, class_ids
from fastadv.attacks._model import as_attacked, logits_of
from fastadv.attacks._result import AttackResult
from fastadv.ops import SignStep


def attack_until_flip(
    model,
    x: torch.Tensor,
    target,
    *,
    step: float = 1 / 255,
    max_iters: int = 1000,
    decision: Callable | None = None,
    loss_fn: Callable | None = None,
    check_every: int = 1,
    quantum: float | None = 1 / 255,
    backend: str = "auto",
) -> AttackResult:
    """Steps towards `target` (int or int64 [B]) until `decision(model(x))` equals it.

    decision: model output -> int64 [B]; default the argmax of the logits. Pass one for
        networks that decide by thresholds over several scores (the triple-staged network).
    loss_fn: (model output, target [B]) -> scalar to descend; default summed cross-entropy.
    quantum: keeps 8-bit images on their grid (None for none).
    Samples that have not flipped after max_iters are reported as failures; `iterations` counts
    the steps taken (0 for samples the model already assigns to the target).
    """
    check_unit_images(x)
    step = check_step_size(step, "step", positive=True)
    schedule = Schedule(
        check_count(max_iters, "max_iters"), step, early_stop=True,
        check_every=check_count(check_every, "check_every"),
    )  # fmt: skip
    update = SignStep.prepare(x, step, 1.0, quantum=quantum, backend=backend)
    target = _per_sample(class_ids(target, "target"), x)
    decide = decision or (lambda out: logits_of(out).argmax(1))
    loss = loss_fn or (lambda out, t: goals.cross_entropy_sum(logits_of(out), t, -100))
    goal = goals.Decision(target, decide, loss)
    return run(as_attacked(model, x), x, goal, schedule, update)


def _per_sample(ids: list[int], x: torch.Tensor) -> torch.Tensor:
    """int64 [B]: one id for every sample, or one a sample."""
    if len(ids) not in (1, x.shape[0]):
        raise ValueError(f"target must hold one id or one a sample ({x.shape[0]}), got {len(ids)}")
    return torch.tensor(ids, device=x.device).expand(x.shape[0]).clone()
