"""The sign-gradient attacks' engine: their options, checked once, and the iterations

    x_{t+1} = clip_{x, eps}( x_t + d * alpha * sign(grad_x L(f(x_t))) )

run by the shrinking-batch loop with one prepared `fastadv.ops.SignStep` update a step.

The model's pass on the clean images, which every attack needs first (the clean prediction, the
check of the output's shape), is recorded with its graph and is the loop's first iteration: an
attack costs `steps` forward and backward passes, plus one forward pass for the success flags of
the samples that ran all the steps (early-stopped ones were found done on the images returned;
`evaluate=False` skips it, as torchattacks does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from fastadv.attacks._inputs import check_count, check_step_size, check_within_unit
from fastadv.attacks._loop import FirstPass, shrinking_loop
from fastadv.attacks._model import attack_mode
from fastadv.attacks._result import AttackResult
from fastadv.attacks.goals import Goal
from fastadv.ops import SignStep


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s iteration count n = ceil(min(eps_px + 4, 1.25 eps_px)), eps in [0, 1]."""
    eps_px = eps * 255
    return max(1, math.ceil(min(eps_px + 4, 1.25 * eps_px) - 1e-9))


@dataclass(frozen=True)
class Schedule:
    """The iterations of a checked attack; the signed step is goal.direction * step."""

    steps: int
    step: float
    early_stop: bool = False
    check_every: int = 1
    random_start: bool = False
    evaluate: bool = True  # the final forward pass for the success flags


@dataclass(frozen=True)
class SignOptions:
    """A sign-gradient attack's options as its caller gave them (the keywords of fgsm, ifgsm,
    pgd and hide_classes): eps, a float or a tensor the update takes (per sample [B], ...);
    alpha, the step, None for one step of the largest eps (FGSM); steps, None for Kurakin's
    schedule of the largest eps; quantum, the grid the perturbation keeps to (None for none)."""

    eps: float | torch.Tensor
    alpha: float | None = None
    steps: int | None = None
    early_stop: bool = False
    check_every: int = 1
    quantum: float | None = None
    random_start: bool = False
    evaluate: bool = True
    backend: str = "auto"

    def plan(self, x: torch.Tensor) -> tuple[Schedule, SignStep]:
        """(Schedule, SignStep) for images x, every option checked: the values of eps by
        SignStep.prepare, the attacks' own rules here (pixel units, counts)."""
        update = self.update(x)
        eps_map = update.operands.eps_map
        largest = update.operands.eps if eps_map is None else float(eps_map.max())
        check_within_unit(largest, "eps")
        alpha = largest if self.alpha is None else check_step_size(self.alpha, "alpha")
        steps = kurakin_steps(largest) if self.steps is None else check_count(self.steps, "steps")
        schedule = Schedule(
            steps,
            alpha,
            self.early_stop,
            check_count(self.check_every, "check_every"),
            self.random_start,
            self.evaluate,
        )
        return schedule, update

    def update(self, x: torch.Tensor, mask=None, *, validate: bool = True) -> SignStep:
        """The prepared update for images x (its step is set by `run`); with `mask`, it steps
        only where the mask is nonzero. validate=False: eps was checked before (by `plan`)."""
        return SignStep.prepare(
            x, 0.0, self.eps, mask=mask, quantum=self.quantum, validate=validate,
            backend=self.backend,
        )  # fmt: skip


def first_pass(model, x: torch.Tensor, graph: bool = True) -> FirstPass:
    """The model on the clean images, in attack mode, as it returns its output; with its graph
    when `graph`, for the attack's first iteration (attacks from a random start need none)."""
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
    if first is not None and not schedule.random_start:
        first = replace(first, output=goal.view(first.output))
    else:
        first = None
    with attack_mode(model):
        adv = _start(x, update.operands, schedule.random_start)
        iterations, success = shrinking_loop(
            _SignStepper(model, goal, x, update),
            adv,
            schedule.steps,
            check_every=schedule.check_every if schedule.early_stop else None,
            first=first,
            evaluate=schedule.evaluate,
        )
    return AttackResult.measured(adv, x, success, iterations)


@dataclass(frozen=True)
class _SignStepper:
    """The loop's iteration for a goal: x0, the clean images of the samples still running."""

    model: object
    goal: Goal
    x0: torch.Tensor
    update: SignStep

    def forward(self, work):
        return self.goal.forward(self.model, work)

    def done(self, output, idx):
        return self.goal.done(output, idx)

    def loss(self, output, idx):
        return self.goal.loss(output, idx)

    def step(self, work, grad):
        self.update(work, self.x0, grad)

    def subset(self, keep):
        return replace(self, x0=self.x0[keep], update=self.update.subset(keep))


def _start(x, operands, random_start: bool) -> torch.Tensor:
    """x, or x plus uniform noise in the eps ball (torchattacks' PGD start, same RNG calls)."""
    if not random_start:
        return x.clone()
    if operands.eps_map is None:
        noise = torch.empty_like(x).uniform_(-operands.eps, operands.eps)
    else:
        noise = (torch.empty_like(x).uniform_(-1, 1) * operands.eps_map).to(x.dtype)
    return torch.clamp(x + noise, operands.lo, operands.hi)
