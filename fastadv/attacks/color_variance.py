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
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastadv.attacks._engine import AttackResult
from fastadv.attacks._inputs import check_labels, check_unit_images, clean_logits
from fastadv.attacks._model import attack_mode, logits_of
from fastadv.ops import sign_step
from fastadv.ops._backend import resolve
from fastadv.ops.color import color_variance

Condition = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CONDITIONS = ("top1", "top5", "top1-50")
BOUNDS = ("color_variance", "uniform")
QUANTUM = 1 / 255  # the uint8 grid: the perturbation survives saving as 8-bit PNG
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


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
    multiplier: float = 0.2,
    condition: str | Condition = "top1",
    l1_weight: float = 1.0,
    steps: int = 200,
    lr: float = 0.01,
    kernel_size: int = 3,
    sigma: float = 1.0,
    bound: str = "color_variance",
    backend: str = "auto",
) -> ProtectResult:
    """Protects images x [B, 3, H, W] in [0, 1] from a classifier by Algorithm 1 (module
    docstring). The defaults (m = 0.2, α = 1, T = 200, Adam lr = 0.01, a 3x3 window with
    σ = 1) were chosen by measurement on SynthScenes; see docs/protect.md.

    Returns a ProtectResult; `success[b]` is the condition evaluated on the returned image
    adv[b], so a sample that never met it within `steps` updates is a failure (its adv is the
    last iterate, still within the bound).
    """
    _check_args(x, multiplier, condition, l1_weight, steps, lr, bound)
    with attack_mode(model):
        logits = clean_logits(model, x)
        if logits.dim() != 2:
            raise ValueError("color_variance_attack needs a classifier (logits [B, K])")
        if condition == "top5" and logits.shape[1] <= 5:
            raise ValueError(
                f"condition 'top5' needs a classifier with more than 5 classes, "
                f"got {logits.shape[1]}"
            )
        c0 = logits.argmax(1) if labels is None else _check_labels(labels, logits)
        threshold = _threshold(x, multiplier, kernel_size, sigma, bound, backend)
        v, iterations = _optimise(model, x, c0, threshold, condition, l1_weight, steps, lr, backend)
        adv = (x + v).clamp(0, 1)
        with torch.no_grad():
            success = condition_met(condition, logits_of(model(adv)), c0)
    delta = (adv - x).flatten(1).float()
    return ProtectResult(
        adv, success, iterations, delta.abs().amax(1), delta.norm(dim=1), threshold, c0
    )


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


def _check_labels(labels, logits) -> torch.Tensor:
    """Class ids [B] in [0, K); check_labels with an ignore_index no valid label can take."""
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


def _optimise(model, x, c0, pt, condition, l1_weight, steps, lr, backend):
    """Algorithm 1's loop, batched: (v [B, 3, H, W], Adam updates taken [B]).

    Why the batch does not couple samples: the loss is a sum of per-sample losses, so each
    sample's gradient is its own (the model is in eval mode); Adam is elementwise, and we write
    it out so that a finished sample's rows of v and of both moments leave the batch together.
    Indexing them out, rather than zeroing their updates, also spares the finished samples the
    forward and backward passes. All samples still in the batch have taken the same number of
    steps, so Adam's bias correction needs one step counter. The condition is checked before
    each of the `steps` updates and once more after the last, so the returned perturbation is
    the one the success flag describes.
    """
    impl = resolve(backend, x.device)
    # The clip-and-round step through the fused op on v itself (x0 = 0, step 0):
    # clamp(v, -eps, eps), round to the 1/255 grid, clamp again, clamp to [-1, 1] (a
    # perturbation beyond ±1 is no image). With eps = pT this is Algorithm 1 except where its
    # rounding steps past pT (off-grid pT); we give eps = floor(255 pT) / 255, the grid value
    # at or below pT, so the result is Algorithm 1's whenever Algorithm 1's lies within pT and
    # the grid value just inside otherwise: |v| <= pT and v on the 1/255 grid, both always.
    eps = torch.floor(pt * 255 + 1e-4) / 255  # + 1e-4: pT already on the grid stays there
    v = (torch.empty_like(x).uniform_(-0.01, 0.01) * pt).detach()
    zeros = torch.zeros_like(x)
    ops = sign_step.prepare(v, 0.0, eps, lo=-1.0, hi=1.0, quantum=QUANTUM)
    out, iterations = v.clone(), torch.full_like(c0, steps)
    m, s = torch.zeros_like(v), torch.zeros_like(v)
    idx = torch.arange(x.shape[0], device=x.device)
    budget = 3 * pt.flatten(1).sum(1)  # ||pT||_1 over the three channels pT broadcasts to
    budget = torch.where(budget > 0, budget, 1.0)  # pT = 0 (flat image): v = 0, no L1 term
    full_ops, full_zeros = ops, zeros
    for t in range(steps + 1):
        v.requires_grad_(True)
        logits = logits_of(model((x[idx] + v).clamp(0, 1)))
        done = condition_met(condition, logits.detach(), c0[idx]) | (t == steps)
        keep = ~done
        if done.any():
            out[idx[done]], iterations[idx[done]] = v.detach()[done], t
            if not keep.any():
                break
            idx, logits, m, s = idx[keep], logits[keep], m[keep], s[keep]
            zeros, budget, ops = zeros[keep], budget[keep], ops.subset(keep)
        loss = _loss(logits, c0[idx], v[keep], budget, l1_weight)
        (grad,) = torch.autograd.grad(loss, v)
        grad = grad[keep]
        v = _adam_step(v.detach()[keep], grad, m, s, t + 1, lr)
        sign_step.apply_(v, zeros, grad, ops, impl)  # step 0: grad is not used
    # Samples done at t = 0 hold the unrounded random start; one more clip-and-round puts them
    # on the grid too (a no-op for every other sample, already on it and within eps).
    sign_step.apply_(out, full_zeros, full_zeros, full_ops, impl)
    return out, iterations


def _loss(logits, c0, v, budget, l1_weight) -> torch.Tensor:
    """Σ_b [ -CE(logits_b, c0_b) + α · ||v_b||_1 / ||pT_b||_1 ]."""
    ce = F.cross_entropy(logits, c0, reduction="none")
    return (-ce + l1_weight * v.abs().flatten(1).sum(1) / budget).sum()


def _adam_step(v, grad, m, s, t: int, lr: float) -> torch.Tensor:
    """torch.optim.Adam's update (no weight decay, no amsgrad), moments m, s in place:
    m = β1 m + (1-β1) g;  s = β2 s + (1-β2) g²;  v -= lr · m̂ / (sqrt(ŝ) + ε)."""
    b1, b2 = ADAM_BETAS
    m.mul_(b1).add_(grad, alpha=1 - b1)
    s.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (s / (1 - b2**t)).sqrt_().add_(ADAM_EPS)
    return v.addcdiv(m, denom, value=-lr / (1 - b1**t))
