"""Colour-variance privacy protection: Sweere, Liu and Larson (2019), Algorithm 1.

Per image, with the CV-PIRE colour-variance map cV (fastadv.ops.color_variance, max-normalised
to [0, 1]) and the threshold multiplier m:

    pT = m · cV                                   per pixel, the same for the three channels
    v  ~ U(-0.01, 0.01) · pT
    repeat T times:
        logits = f(clamp(x + v, 0, 1));  stop when the condition holds
        loss   = -CE(logits, c0) + α · ||v||_1 / ||pT||_1
        v      = Adam step on loss
        v      = round(clip(v, -pT, pT) · 255) / 255

c0 is the given label, or the model's clean prediction. The protected image is
clamp(x + v, 0, 1). `bound="uniform"` runs the same loop with pT replaced, per image, by its
mean over the pixels: the uniform bound of equal mean budget, the baseline that shows what
following the colour variance buys.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.optim.adam import adam

from fastadv.attacks._inputs import check_labels, check_unit_images, clean_logits
from fastadv.attacks._loop import FirstPass, shrinking_loop
from fastadv.attacks._model import as_attacked, attack_mode, check_logits, logits_of
from fastadv.attacks._result import AttackResult
from fastadv.ops import SignStep, color_variance

Condition = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CONDITIONS = ("top1", "top5", "top1-50")
BOUNDS = ("color_variance", "uniform")
QUANTUM = 1 / 255  # the uint8 grid: the perturbation survives saving as 8-bit PNG


@dataclass
class ProtectResult(AttackResult):
    """AttackResult plus threshold: pT [B, 1, H, W], the per-pixel bound used; labels: c0 [B],
    the class each image is protected from."""

    threshold: torch.Tensor
    labels: torch.Tensor


def condition_met(condition: str | Condition, logits: torch.Tensor, c0: torch.Tensor):
    """bool [N]: whether each sample's logits meet the protection condition for class c0.

    top1:    c0 is not the arg-max.
    top5:    c0 is not among the five largest logits.
    top1-50: c0 is not the arg-max and its softmax confidence is at most half the new top-1's,
             p(c0) <= 0.5 · max_k p(k). Our reading of the paper's "50 percent relative
             difference in prediction confidence compared to the top1 label":
             (p_top1 - p_c0) / p_top1 >= 0.5.
    A callable gets (logits [N, K], c0 [N]) and returns bool [N].
    """
    if callable(condition):
        met = condition(logits, c0)
        if not (torch.is_tensor(met) and met.shape == c0.shape):
            raise ValueError("a condition callable must return a bool tensor [N]")
        return met.bool()
    if condition == "top5":
        return ~(logits.topk(5, dim=1).indices == c0[:, None]).any(1)
    not_first = logits.argmax(1) != c0
    if condition == "top1":
        return not_first
    probs = logits.softmax(1)
    return not_first & (probs.gather(1, c0[:, None])[:, 0] <= 0.5 * probs.amax(1))


def color_variance_attack(
    model,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    multiplier: float = 0.1,
    condition: str | Condition = "top1",
    l1_weight: float = 1.0,
    steps: int = 200,
    lr: float = 0.005,
    kernel_size: int = 3,
    sigma: float = 1.0,
    bound: str = "color_variance",
    backend: str = "auto",
) -> ProtectResult:
    """Protects images x [B, 3, H, W] in [0, 1] from a classifier by Algorithm 1 (module
    docstring). The defaults (m = 0.1, α = 1, T = 200, Adam lr = 0.005, a 3x3 window with
    σ = 1) were chosen by measurement on SynthScenes; see docs/protect.md. lr must exceed half
    a grid step (1/510), or the rounding undoes every update.

    Returns a ProtectResult; `success[b]` is the condition evaluated on the returned image
    adv[b], so a sample that never met it within `steps` updates is a failure (its adv is the
    last iterate, still within the bound).
    """
    _check_args(x, multiplier, condition, l1_weight, steps, lr, bound)
    model = as_attacked(model, x)
    with attack_mode(model):
        # c0 is the clean prediction, which takes a pass of its own; given labels are checked
        # against the logits of the loop's first pass
        clean = None if labels is not None else _classes(clean_logits(model, x), None, condition)
        threshold = _threshold(x, multiplier, kernel_size, sigma, bound, backend)
        v, iterations, success, c0 = _optimise(
            model, x, labels, clean, threshold, condition, l1_weight, steps, lr, backend
        )
        adv = (x + v).clamp(0, 1)
    return ProtectResult.measured(adv, x, success, iterations, threshold=threshold, labels=c0)


def _check_args(x, multiplier, condition, l1_weight, steps, lr, bound) -> None:
    check_unit_images(x)
    if x.shape[1] != 3:
        raise ValueError(f"x must be RGB images [B, 3, H, W], got shape {tuple(x.shape)}")
    for name, value in (("multiplier", multiplier), ("l1_weight", l1_weight), ("lr", lr)):
        if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not callable(condition) and condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS} or a callable, got {condition!r}")
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")


def _classes(logits, labels, condition) -> torch.Tensor:
    """c0 [B]: the labels, checked, or else the logits' arg-max; the logits must be a
    classifier's, with more than five classes for top5."""
    if logits.dim() != 2:
        raise ValueError(
            f"color_variance_attack needs a classifier (logits [B, K]), got {tuple(logits.shape)}"
        )
    if condition == "top5" and logits.shape[1] <= 5:
        raise ValueError(
            f"condition 'top5' needs a classifier with more than 5 classes, got {logits.shape[1]}"
        )
    if labels is None:
        return logits.argmax(1)
    labels = check_labels(labels, logits, "labels", ignore_index=-1)
    if (labels < 0).any():
        raise ValueError(f"labels holds class ids outside [0, {logits.shape[1]})")
    return labels


def _threshold(x, multiplier, kernel_size, sigma, bound, backend) -> torch.Tensor:
    """pT [B, 1, H, W]: m · cV, or for "uniform" each image's mean of it at every pixel."""
    cv = color_variance(x.detach(), kernel_size, sigma, "max", backend=backend)
    pt = multiplier * cv.to(x.dtype)
    if bound == "uniform":
        pt = pt.mean(dim=(2, 3), keepdim=True).expand_as(pt).contiguous()
    return pt


def _optimise(model, x, labels, clean, pt, condition, l1_weight, steps, lr, backend):
    """Algorithm 1's loop, batched: (v [B, 3, H, W], Adam updates taken [B], success [B], c0),
    c0 the clean prediction `clean`, or else the labels checked against the logits of the
    first pass.

    Why the batch does not couple samples: the loss is a sum of per-sample losses, so each
    sample's gradient is its own (the model is in eval mode); Adam is elementwise, so a finished
    sample's rows of v and of both moments can leave the batch together (the shrinking loop).
    All samples still in the batch have taken the same number of steps, so Adam's bias
    correction needs one step counter. The condition is checked before each of the `steps`
    updates and once more after the last, on the very image returned, so its verdict is the
    success flag; samples done before their first update have their random start put on the
    grid afterwards, and are judged again.
    """
    # The clip-and-round step through the fused op on v itself (x0 = 0, step 0):
    # clamp(v, -eps, eps), round to the 1/255 grid, clamp again, clamp to [-1, 1] (a
    # perturbation beyond ±1 is no image). With eps = pT this is Algorithm 1 except where its
    # rounding steps past pT (off-grid pT); we give eps = floor(255 pT) / 255, the grid value
    # at or below pT, so the result is Algorithm 1's whenever Algorithm 1's lies within pT and
    # the grid value just inside otherwise: |v| <= pT and v on the 1/255 grid, both always.
    eps = torch.floor(pt * 255 + 1e-4) / 255  # + 1e-4: pT already on the grid stays there
    v = (torch.empty_like(x).uniform_(-0.01, 0.01) * pt).detach()
    clip = SignStep.prepare(v, 0.0, eps, lo=-1.0, hi=1.0, quantum=QUANTUM, backend=backend)
    budget = 3 * pt.flatten(1).sum(1)  # ||pT||_1 over the three channels pT broadcasts to
    budget = torch.where(budget > 0, budget, 1.0)  # pT = 0 (flat image): v = 0, no L1 term
    work = v.clone().requires_grad_(True)
    logits = _logits(model, x, work)
    check_logits(logits, x)
    c0 = clean if clean is not None else _classes(logits.detach(), labels, condition)
    stepper = _AdamSteps(
        model, x, c0, condition, (l1_weight / budget).to(v.dtype).view(-1, 1, 1, 1), lr, clip,
        torch.zeros_like(v), torch.zeros_like(v), torch.zeros_like(v),
        torch.zeros((), device=x.device),
    )  # fmt: skip
    # Fewer than two thirds going on: a fresh forward pass of theirs costs less than the
    # backward pass of the whole batch (about two forward passes).
    iterations, success = shrinking_loop(
        stepper, v, steps, check_every=1, first=FirstPass(work, logits), refresh_below=2 / 3
    )
    first = iterations == 0
    if first.any():
        start = v[first]
        stepper.subset(first).round(start)
        v[first] = start
        with torch.no_grad():
            success[first] = condition_met(condition, _logits(model, x[first], start), c0[first])
    return v, iterations, success, c0


def _logits(model, x, v):
    return logits_of(model((x + v).clamp(0, 1)))


@dataclass(frozen=True)
class _AdamSteps:
    """The loop's iteration: the samples' images, labels c0 and L1 weights α / ||pT||_1
    ([n, 1, 1, 1]), the clip-and-round update, the Adam moments and the step count (a 0-d
    tensor all share), and zeros like v."""

    model: object
    x: torch.Tensor
    c0: torch.Tensor
    condition: str | Condition
    l1: torch.Tensor
    lr: float
    clip: SignStep
    zeros: torch.Tensor
    m: torch.Tensor
    s: torch.Tensor
    adam_step: torch.Tensor

    def forward(self, v):
        return _logits(self.model, self.x, v)

    def done(self, logits, idx):
        return condition_met(self.condition, logits.detach(), self.c0)

    def loss(self, logits, idx):
        """-CE summed over the samples. The loss's other term, α · ||v_b||_1 / ||pT_b||_1, has
        the gradient α · sign(v_b) / ||pT_b||_1, which `step` adds itself: its value is never
        needed, so the L1 norm is never computed."""
        return -F.cross_entropy(logits, self.c0, reduction="sum")

    def step(self, v, grad):
        grad.addcmul_(v.sign(), self.l1)
        _adam_(v, grad, self.m, self.s, self.adam_step, self.lr)
        self.round(v)

    def round(self, v):
        """Clip to pT and round to the grid, in place."""
        self.clip(v, self.zeros, self.zeros)  # step 0: the gradient is not used

    def subset(self, keep):
        m = self.m[keep]
        return replace(
            self, x=self.x[keep], c0=self.c0[keep], l1=self.l1[keep], clip=self.clip.subset(keep),
            zeros=self.zeros[: m.shape[0]], m=m, s=self.s[keep],
        )  # fmt: skip


def _adam_(v, grad, m, s, step, lr: float) -> None:
    """One torch.optim.Adam update of v in place (its defaults: betas (0.9, 0.999), eps 1e-8;
    no weight decay, no amsgrad), through torch's functional Adam, fused into one pass on the
    devices torch has the fused kernel for (every float dtype the attack takes); moments m, s
    and the step count (a 0-d tensor, incremented) in place."""
    fused = v.device.type in ("cpu", "cuda") or None  # None: torch's default elsewhere
    adam(
        [v], [grad], [m], [s], [], [step], fused=fused, amsgrad=False,
        beta1=0.9, beta2=0.999, lr=lr, weight_decay=0.0, eps=1e-8, maximize=False,
    )  # fmt: skip
