"""What an iterative attack pursues: the loss it follows and when a sample is done.

Losses are summed over samples (and pixels), so a sample's gradient does not depend on which
other samples are still in the batch; only their sign is used.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fastadv.attacks._model import logits_of


def cross_entropy_sum(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")


def _fraction(hit: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Per sample: the fraction of counted pixels (or the single label) that are hits; 1 where
    nothing is counted (nothing left to do)."""
    hit, counted = hit.reshape(hit.shape[0], -1).float(), counted.reshape(hit.shape[0], -1).float()
    total = counted.sum(1)
    return torch.where(total > 0, (hit * counted).sum(1) / total.clamp_min(1), 1.0)


class Goal:
    """Ascend (+1) or descend (-1) `loss`; a sample is done when `done` says so.

    `labels` is the per-sample (or per-pixel) label tensor of the whole batch; `idx` names the
    samples still in the batch, so goals index their own per-sample tensors with it.
    """

    direction = 1.0

    def __init__(self, labels: torch.Tensor, *, ignore_index: int = 255, fraction: float = 0.99):
        self.labels = labels
        self.ignore_index = ignore_index
        self.fraction = fraction

    def view(self, output):
        """What loss and done read of a model output: its logits."""
        return logits_of(output)

    def forward(self, model, x: torch.Tensor):
        return self.view(model(x))

    def target(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return self.labels[idx]

    def loss(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return cross_entropy_sum(logits, self.target(logits, idx), self.ignore_index)

    def counted(self, idx: torch.Tensor) -> torch.Tensor:
        return self.labels[idx] != self.ignore_index

    def done(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Untargeted(Goal):
    """Move away from `labels`; done once the prediction differs (on `fraction` of the pixels)."""

    def done(self, logits, idx):
        wrong = logits.argmax(1) != self.labels[idx]
        return _fraction(wrong, self.counted(idx)) >= self.fraction


class Targeted(Goal):
    """Move towards `labels` (the targets); done once the prediction equals them."""

    direction = -1.0

    def done(self, logits, idx):
        hit = logits.argmax(1) == self.labels[idx]
        return _fraction(hit, self.counted(idx)) >= self.fraction


class LeastLikely(Untargeted):
    """Towards the least likely class of the current prediction (per sample or per pixel,
    recomputed every iteration, as Arnab et al. do); done like `Untargeted` w.r.t. `labels`."""

    direction = -1.0

    def target(self, logits, idx):
        return logits.detach().argmin(1)


class HideClasses(Targeted):
    """Towards the nearest-other-class fill; done once `fraction` of the hidden pixels (those
    of the classes in the clean prediction) are predicted as some other class."""

    def __init__(self, targets, hidden: torch.Tensor, classes: torch.Tensor, **kw):
        super().__init__(targets, **kw)
        self.hidden = hidden
        self.classes = classes

    def done(self, logits, idx):
        still = torch.isin(logits.argmax(1), self.classes)
        return _fraction(~still, self.hidden[idx]) >= self.fraction


class Decision(Goal):
    """Towards `labels` (the targets) under any loss, done when `decision(output)` equals them:
    for networks whose decision is not an argmax (thresholds over several scores)."""

    direction = -1.0

    def __init__(self, targets, decision: Callable, loss_fn: Callable):
        super().__init__(targets)
        self.decision = decision
        self.loss_fn = loss_fn

    def view(self, output):
        return output

    def loss(self, output, idx):
        return self.loss_fn(output, self.labels[idx])

    def done(self, output, idx):
        return self.decision(output) == self.labels[idx]
