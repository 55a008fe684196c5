"""The README's main job: an I-FGSM attack with fastadv beside the same attack written as
torchattacks writes it, on the same small model and images, with a timing table.

    python -m fastadv.demo [--batch 8] [--size 128] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import fastadv
from fastadv.attacks import ifgsm


def small_classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()


def eager_bim(model, images, labels, eps, alpha, steps):
    """torchattacks.BIM's loop: mean cross-entropy, autograd, and its clamp arithmetic."""
    adv = images.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(model(adv), labels), adv)[0]
        stepped = adv.detach() + alpha * grad.sign()
        lower = torch.clamp(images - eps, min=0)
        b = (stepped >= lower).float() * stepped + (stepped < lower).float() * lower
        upper = images + eps
        c = (b > upper).float() * upper + (b <= upper).float() * b
        adv = torch.clamp(c, max=1).detach()
    return adv


def timed(fn, repeats=3):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--eps", type=float, default=8.0, help="in pixel units (x / 255)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    kernels = "CUDA and C++" if fastadv.build_info()["cuda"] else "C++"
    print(f"fastadv {fastadv.__version__} on {device}; compiled kernels: {kernels}")

    model = small_classifier().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    images = torch.rand(
        args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)
    ).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)
    eps, alpha = args.eps / 255, 1 / 255

    floor_s, _ = timed(lambda: _forward_backward(model, images, labels, args.steps))
    eager_s, eager_adv = timed(lambda: eager_bim(model, images, labels, eps, alpha, args.steps))
    ours_s, result = timed(
        lambda: ifgsm(model, images, labels, eps=eps, alpha=alpha, steps=args.steps)
    )
    same = (result.adv - eager_adv).abs().max().item()

    size = f"{args.batch} x 3 x {args.size} x {args.size}"
    print(f"\nI-FGSM, {args.steps} steps, eps {args.eps:g}/255, images {size}")
    print(f"{'':28}{'time (ms)':>12}{'images/s':>12}{'overhead':>12}")
    for name, seconds in [
        ("forward+backward only", floor_s),
        ("torchattacks-style loop", eager_s),
        ("fastadv.attacks.ifgsm", ours_s),
    ]:
        overhead = f"{1000 * (seconds - floor_s):.1f} ms" if seconds is not floor_s else "floor"
        print(f"{name:28}{1000 * seconds:12.1f}{args.batch / seconds:12.1f}{overhead:>12}")
    print(f"\nlargest difference between the two adversarial batches: {same:.2e}")
    fooled = result.success.sum().item()
    print(f"fooled: {fooled} of {args.batch}; L-inf {255 * result.linf.max().item():.2f}/255")


def _forward_backward(model, images, labels, steps):
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
        x = x.detach()


if __name__ == "__main__":
    main()
