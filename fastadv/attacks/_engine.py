"""The iterative sign-gradient loop every attack runs, with per-sample early stopping.

Finished samples leave the batch: their images are written to the result and the forward and
backward passes go on with the others only. Whether samples are finished is checked every
`check_every` iterations; that check is the loop's only host synchronisation.

The model's pass on the clean images, which every attack needs first (the clean prediction, the
check of the output's shape), is recorded with its graph and is the loop's first iteration: an
attack costs `steps` forward and backward passes, plus one forward pass for the success flags of
the samples that ran all the steps (early-stopped ones were found done on the images returned;
`evaluate=False` skips it, as torchattacks does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastadv.attacks._model import attack_mode
from fastadv.attacks.goals import Goal
from fastadv.ops import SignStep


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

    @property
    def success_rate(self) -> float:
        if self.success is None:
            raise ValueError("no success flags: the attack ran with evaluate=False")
        return self.success.float().mean().item() if self.success.numel() else float("nan")


@dataclass
class Schedule:
    steps: int
    step: float  # signed per-iteration step is goal.direction * step
    early_stop: bool = False
    check_every: int = 1
    random_start: bool = False
    evaluate: bool = True  # the final forward pass for the success flags


@dataclass
class FirstPass:
    """The model run on x itself: `output` as the model returns it; `work`, a copy of x, is the
    input it was recorded on (requiring grad when the pass kept its graph)."""

    work: torch.Tensor
    output: object

    @property
    def has_graph(self) -> bool:
        return self.work.requires_grad


def first_pass(model, x: torch.Tensor, graph: bool = True) -> FirstPass:
    """The model on the clean images, in attack mode; with its graph when `graph`, for the
    attack's first iteration (attacks from a random start need none)."""
    with attack_mode(model), torch.set_grad_enabled(graph):
        work = x.clone().requires_grad_(graph)
        return FirstPass(work, model(work))


def run(
    model,
    x: torch.Tensor,
    goal: Goal,
    schedule: Schedule,
    update: SignStep,
    first: FirstPass | None = None,
) -> AttackResult:
    """Runs `schedule` from x; `update` carries eps, box, mask, quantum and the backend (its
    step is set here from the schedule and the goal's direction). `first`, the clean pass with
    its graph, is used as the first iteration when the schedule starts from x."""
    update = update.with_step(goal.direction * schedule.step)
    if schedule.random_start or (first is not None and not first.has_graph):
        first = None
    with attack_mode(model):
        adv = _start(x, update.operands, schedule.random_start)
        iterations = torch.full((x.shape[0],), schedule.steps, dtype=torch.long, device=x.device)
        running = _loop(model, x, adv, goal, schedule, update, iterations, first)
        success = None
        if schedule.evaluate:
            # early-stopped samples were found done on the very images returned
            success = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            if running.numel():
                with torch.no_grad():
                    success[running] = goal.done(goal.forward(model, adv[running]), running)
    delta = (adv - x).flatten(1).float()
    return AttackResult(adv, success, iterations, delta.abs().amax(1), delta.norm(dim=1))


def _start(x, operands, random_start: bool) -> torch.Tensor:
    """x, or x plus uniform noise in the eps ball (torchattacks' PGD start, same RNG calls)."""
    if not random_start:
        return x.clone()
    if operands.eps_map is None:
        noise = torch.empty_like(x).uniform_(-operands.eps, operands.eps)
    else:
        noise = (torch.empty_like(x).uniform_(-1, 1) * operands.eps_map).to(x.dtype)
    return torch.clamp(x + noise, operands.lo, operands.hi)


def _loop(model, x, adv, goal, schedule, update, iterations, first) -> torch.Tensor:
    """Updates adv in place; records the iteration at which early-stopped samples finished.
    Returns the indices of the samples that ran all the steps."""
    idx = torch.arange(x.shape[0], device=x.device)
    work, x0 = (first.work if first is not None else adv.clone()), x
    for t in range(schedule.steps):
        if t == 0 and first is not None:
            output = goal.view(first.output)
        else:
            work.requires_grad_(True)
            output = goal.forward(model, work)
        keep = None
        if schedule.early_stop and t % schedule.check_every == 0:
            finished = goal.done(output, idx)
            if finished.any():
                adv[idx[finished]] = work.detach()[finished]
                iterations[idx[finished]] = t
                keep = ~finished
                idx = idx[keep]
                if idx.numel() == 0:
                    return idx
                output = _select(output, keep)
        (grad,) = torch.autograd.grad(goal.loss(output, idx), work)
        work = work.detach()
        if keep is not None:
            work, x0, grad, update = work[keep], x0[keep], grad[keep], update.subset(keep)
        update(work, x0, grad)
    adv[idx] = work
    return idx


def _select(output, keep):
    """The rows of a model output (a tensor, mapping or tuple of tensors) that `keep` selects."""
    if torch.is_tensor(output):
        return output[keep]
    if isinstance(output, dict):
        return {k: _select(v, keep) for k, v in output.items()}
    if isinstance(output, tuple | list):
        return type(output)(_select(v, keep) for v in output)
    raise TypeError(f"cannot select samples of a model output of type {type(output).__name__}")
