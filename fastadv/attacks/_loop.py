"""The shrinking-batch loop every iterative attack runs.

Each iteration runs the model on the samples still in the batch, checks (on the iterations the
attack asks for) which of them are done, writes those out with the iteration they finished at,
and steps the others along the gradient of their loss. The loss is a sum of per-sample losses
and the model runs in eval mode, so each sample's gradient is its own: finished samples leave
the batch without changing anyone else's path, and the forward and backward passes go on with
the others only. The check is the loop's only host synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


class Stepper(Protocol):
    """An attack's iteration on the samples still in the batch. `idx` holds their ids in the
    whole batch, for per-sample tensors the attack keeps whole (a goal's labels); the state
    that changes as the attack goes (optimiser moments, prepared operands) follows `subset`."""

    def forward(self, work: torch.Tensor):
        """The model's output on the samples' current variable, as `done` and `loss` read it
        (with its graph when work requires grad)."""

    def done(self, output, idx: torch.Tensor) -> torch.Tensor:
        """bool [n]: the samples that are done."""

    def loss(self, output, idx: torch.Tensor) -> torch.Tensor:
        """The scalar to differentiate: a sum of per-sample terms."""

    def step(self, work: torch.Tensor, grad: torch.Tensor) -> None:
        """Updates work in place from its gradient."""

    def subset(self, keep: torch.Tensor) -> Stepper:
        """The stepper of the samples `keep` (bool [n]) selects."""


@dataclass
class FirstPass:
    """A pass the attack ran before the loop (to check the model's output and set its goal),
    reused as the loop's first iteration: `work`, the variable it ran on (requiring grad when
    the pass kept its graph), and `output` as the stepper's `forward` gives it."""

    work: torch.Tensor
    output: object

    @property
    def has_graph(self) -> bool:
        return self.work.requires_grad


def shrinking_loop(
    stepper: Stepper,
    out: torch.Tensor,
    steps: int,
    *,
    check_every: int | None = None,
    first: FirstPass | None = None,
    evaluate: bool = True,
    refresh_below: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Runs `steps` iterations from `out`, the variable of every sample [B, ...], which ends
    holding each sample's variable where it stopped. Returns (iterations, success):

    iterations: int64 [B], the steps each sample took (those found done at iteration t took t).
    success: bool [B], None without `evaluate`. Samples that stopped early are done; for those
        that ran all the steps, `done` is asked once more on their final variable (one forward
        pass without graph).

    check_every: done is checked at the iterations t with t % check_every == 0; None: never
        (no early stopping).
    first: iteration 0's pass, when the attack has it with its graph (its work holds out's
        values).
    refresh_below: when samples leave and fewer than this share of the batch goes on, the model
        runs again on them alone instead of the backward pass of the whole batch (a backward
        pass costs about two forward passes); 0 never does.
    """
    idx = torch.arange(out.shape[0], device=out.device)
    iterations = torch.full_like(idx, steps)
    work = first.work if first is not None and first.has_graph else out.clone()
    for t in range(steps):
        if t == 0 and first is not None and first.has_graph:
            output = first.output
        else:
            output = stepper.forward(work.requires_grad_(True))
        keep = None
        if check_every is not None and t % check_every == 0:
            finished = stepper.done(output, idx)
            if finished.any():
                out[idx[finished]] = work.detach()[finished]
                iterations[idx[finished]] = t
                keep = ~finished
                running = idx[keep]
                if running.numel() == 0:
                    return iterations, _all_done(iterations, evaluate)
                if running.numel() < refresh_below * idx.numel():
                    work = work.detach()[keep].requires_grad_(True)
                    idx, stepper, keep = running, stepper.subset(keep), None
                    output = stepper.forward(work)
        # The loss over every sample of `output`, those leaving too: their terms add nothing to
        # the gradient of the others' rows, and selecting the output's rows (a tensor, a
        # mapping, an object with logits) would need to know its form.
        (grad,) = torch.autograd.grad(stepper.loss(output, idx), work)
        work = work.detach()
        if keep is not None:
            idx, stepper, work, grad = running, stepper.subset(keep), work[keep], grad[keep]
        stepper.step(work, grad)
    out[idx] = work
    success = _all_done(iterations, evaluate)
    if success is not None and idx.numel():
        with torch.no_grad():
            success[idx] = stepper.done(stepper.forward(work), idx)
    return iterations, success


def _all_done(like: torch.Tensor, evaluate: bool) -> torch.Tensor | None:
    return torch.ones_like(like, dtype=torch.bool) if evaluate else None
