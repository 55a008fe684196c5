"""Benchmark of the fused sign-step-clip update against what a user would otherwise run.

Two updates, each against what a user would otherwise run, on the same tensors:
  - "sign_step_": one I-FGSM / PGD iteration. The eager update of torchattacks' PGD (add
    alpha * sign, clamp delta, clamp to [0, 1]), torch.compile of it, and fastadv's cpu / triton /
    cuda backends. Throughput is the op's minimal traffic (read x, x0, grad; write x).
  - "sign_step_ projection": the clip-and-round of the colour-variance attack (Sweere et al.),
    a perturbation v clipped to a per-pixel bound pT [B, 1, H, W] and rounded to the 1/255 grid.
    The eager line a CV-PIRE-style loop runs, torch.compile of it, and fastadv (x0 = 0, step 0,
    eps = pT, quantum 1/255). Minimal traffic: read v and pT, write v.
Throughputs are set against the streaming bandwidth (an in-place update) measured in the same
run. Rows go to bench/results/sign_step.csv.

    python bench/sign_step.py [--shape 8 3 512 1024] [--projection-shape 16 3 256 256]
                              [--dtypes float32 bfloat16]
"""

from __future__ import annotations

import argparse

import torch

from _common import append_rows, row, stream_bandwidth_gbs, time_ms
from fastadv.ops import available, sign_step_

ALPHA, EPS = 2 / 255, 8 / 255


def torchattacks_update(adv, images, grad):
    """torchattacks.PGD.forward's update, line for line."""
    adv = adv.detach() + ALPHA * grad.sign()
    delta = torch.clamp(adv - images, min=-EPS, max=EPS)
    return torch.clamp(images + delta, min=0, max=1).detach()


def eager_projection(v, pt):
    """A plain loop's clip-and-round of v to the per-pixel bound pT and the 1/255 grid."""
    return v.copy_(torch.round(torch.maximum(torch.minimum(v, pt), -pt) * 255) / 255)


def timed_backends(device: torch.device):
    """fastadv's backends on `device` but the reference (the eager lines stand for it) and
    interpreted Triton, which is not timed."""
    for backend in available(device):
        if backend != "torch" and not (backend == "triton" and device.type == "cpu"):
            yield backend


def candidates(device: torch.device):
    """(name, function of (x, x0, grad)) for every implementation that runs on `device`."""
    compiled = torch.compile(torchattacks_update)
    yield "torchattacks-eager", torchattacks_update
    yield "torch.compile", compiled
    for backend in timed_backends(device):
        yield (
            f"fastadv-{backend}",
            lambda x, x0, g, b=backend: sign_step_(x, x0, g, ALPHA, EPS, backend=b),
        )


def bench_projection(shape, device, bandwidth):
    """The colour-variance attack's clip-and-round, float32 (the attack's dtype here)."""
    pt = 0.1 * torch.rand(shape[0], 1, *shape[2:], device=device)
    v0 = 0.2 * torch.rand(shape, device=device) - 0.1
    zeros = torch.zeros_like(v0)
    nbytes = 2 * v0.numel() * 4 + pt.numel() * 4
    compiled = torch.compile(eager_projection)
    fns = {"eager": lambda v: eager_projection(v, pt), "torch.compile": lambda v: compiled(v, pt)}
    for b in timed_backends(device):
        fns[f"fastadv-{b}"] = lambda v, b=b: sign_step_(
            v, zeros, zeros, 0.0, pt, lo=-1, hi=1, quantum=1 / 255, backend=b
        )
    rows = []
    for name, fn in fns.items():
        v = v0.clone()
        times = time_ms(lambda fn=fn, v=v: fn(v), device)
        gbs = nbytes / (times[0] * 1e-3) / 1e9
        rows.append(row("sign_step_ projection", name, shape, torch.float32, times, gbs, "GB/s",
                        bandwidth, device=device))  # fmt: skip
    eager_ms = float(rows[0]["median_ms"])
    for r in rows:
        r["note"] = f"{eager_ms / float(r['median_ms']):.2f}x eager"
    return rows


def bench(shape, dtype, device, bandwidth):
    x0 = torch.rand(shape, device=device).to(dtype)
    grad = torch.randn(shape, device=device).to(dtype)
    nbytes = 4 * x0.numel() * x0.element_size()
    rows = []
    for name, fn in candidates(device):
        x = x0.clone()
        times = time_ms(lambda fn=fn, x=x: fn(x, x0, grad), device)
        gbs = nbytes / (times[0] * 1e-3) / 1e9
        rows.append(
            row("sign_step_", name, shape, dtype, times, gbs, "GB/s", bandwidth, device=device)
        )
    eager_ms = float(rows[0]["median_ms"])
    for r in rows:
        r["note"] = f"{eager_ms / float(r['median_ms']):.2f}x eager"
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 3, 512, 1024])
    parser.add_argument("--projection-shape", type=int, nargs=4, default=[16, 3, 256, 256])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = tuple(args.shape)
    bandwidth = stream_bandwidth_gbs(device, 4 * torch.Size(shape).numel() * 4)
    print(f"streaming bandwidth on {device}: {bandwidth:.1f} GB/s (read + write, in place)")
    rows = []
    for dtype in args.dtypes:
        rows += bench(shape, getattr(torch, dtype), device, bandwidth)
    rows += bench_projection(tuple(args.projection_shape), device, bandwidth)
    append_rows("sign_step", rows)


if __name__ == "__main__":
    main()
