"""Benchmark of the fused sign-step-clip update against what a user would otherwise run.

Compares, on the same tensors: the eager update of torchattacks' PGD (add alpha * sign, clamp
delta, clamp to [0, 1]), torch.compile of that update, and fastadv's cpu / triton / cuda
backends. Throughput is the op's minimal traffic (read x, x0, grad; write x) per second, against
the streaming bandwidth (an in-place update) measured in the same run. Rows go to
bench/results/sign_step.csv.

    python bench/sign_step.py [--shape 8 3 512 1024] [--dtypes float32 bfloat16]
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


def candidates(device: torch.device):
    """(name, function of (x, x0, grad)) for every implementation that runs on `device`."""
    compiled = torch.compile(torchattacks_update)
    yield "torchattacks-eager", torchattacks_update
    yield "torch.compile", compiled
    for backend in available(device):
        if backend == "torch" or (backend == "triton" and device.type == "cpu"):
            continue  # the reference is the eager line above; interpreted Triton is not timed
        yield (
            f"fastadv-{backend}",
            lambda x, x0, g, b=backend: sign_step_(x, x0, g, ALPHA, EPS, backend=b),
        )


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
    append_rows("sign_step", rows)


if __name__ == "__main__":
    main()
