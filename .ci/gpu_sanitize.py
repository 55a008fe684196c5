"""Calls every CUDA kernel of fastadv in every path, on small tensors, for compute-sanitizer
(memcheck, racecheck, synccheck, initcheck): .ci/gpu_check runs it under each tool.

    compute-sanitizer --tool memcheck --error-exitcode 1 python .ci/gpu_sanitize.py

Paths: sign_step_ in each dtype with each form of step and eps (scalar, per sample [B] and
[B, 1, 1, 1], per pixel, per element), with and without mask (bool and float), active and
quantum, contiguous, channels_last and misaligned (the one-element-a-thread path); the colour
ops in each dtype, planar and interleaved, colour-variance maps larger than a tile with k = 3
and 7; nearest_fill in each label dtype with and without distance, with an all-hidden image;
the dense CRF if it is built. `--device cpu` runs the same calls on the CPU backend (the dry
run of .ci/gpu_check).
"""

from __future__ import annotations

import argparse
import itertools

import torch

import fastadv.ops as ops

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def sign_step_paths(device, backend) -> int:
    calls = 0
    b, c, h, w = 2, 3, 17, 33
    forms = {
        "scalar": lambda: 0.02,
        "per-sample": lambda: torch.full((b,), 0.02, device=device),
        "per-sample-4d": lambda: torch.full((b, 1, 1, 1), 0.02, device=device),
        "per-pixel": lambda: 0.02 * torch.rand(b, 1, h, w, device=device),
        "per-element": lambda: 0.02 * torch.rand(b, c, h, w, device=device),
    }  # each a step and an eps
    masks = (None, torch.rand(b, h, w, device=device) > 0.5, torch.rand(b, 1, h, w, device=device))
    layouts = ("contiguous", "channels_last", "misaligned")
    options = itertools.product(FLOAT_DTYPES, forms, masks, (False, True), (None, 1 / 255))
    for i, (dtype, form, mask, with_active, quantum) in enumerate(options):
        layout = layouts[i % len(layouts)]
        x0 = torch.rand(b, c, h, w, device=device).to(dtype)
        x, grad = x0.clone(), torch.randn_like(x0)
        if layout == "channels_last":
            x, x0, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, x0, grad))
        elif layout == "misaligned":
            x, x0, grad = (_misaligned(t) for t in (x, x0, grad))
        active = torch.tensor([True, False], device=device) if with_active else None
        ops.sign_step_(
            x, x0, grad, forms[form](), forms[form](), mask=mask, active=active,
            quantum=quantum, backend=backend,
        )  # fmt: skip
        calls += 1
    return calls


def _misaligned(t: torch.Tensor) -> torch.Tensor:
    """t's values in a view that starts one element into its storage."""
    store = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    store[1:] = t.reshape(-1)
    return store[1:].view(t.shape)


def color_paths(device, backend) -> int:
    calls = 0
    for dtype in FLOAT_DTYPES:
        rgb = torch.rand(2, 3, 70, 100, device=device).to(dtype)  # larger than a 32x16 tile
        lab = ops.rgb_to_lab(rgb, backend=backend)
        ops.delta_e2000(lab, lab.roll(1, -1), backend=backend)
        pairs = torch.rand(1000, 3, device=device).to(dtype)  # interleaved [N, 3]
        lab_pairs = ops.rgb_to_lab(pairs, dim=-1, backend=backend)
        ops.delta_e2000(lab_pairs, lab_pairs.flip(0), dim=-1, backend=backend)
        for k, normalize in itertools.product((3, 7), ("max", "none")):
            ops.color_variance(rgb, k, 1.0, normalize, backend=backend)
        flat = torch.full((1, 3, 70, 100), 0.5, device=device).to(dtype)
        ops.color_variance(flat, 3, backend=backend)
        calls += 10
    return calls


def nearest_fill_paths(device, backend) -> int:
    calls = 0
    for dtype, with_distance in itertools.product(
        (torch.uint8, torch.int32, torch.int64), (False, True)
    ):
        labels = torch.randint(0, 4, (3, 37, 53), device=device).to(dtype)
        labels[1] = 1  # every pixel of image 1 hidden
        for shape_labels in (labels, labels[:, :1, :], labels[:, :, :1]):
            ops.nearest_fill(
                shape_labels.contiguous(), 1, return_distance=with_distance, on_empty="keep",
                backend=backend,
            )  # fmt: skip
            calls += 1
    return calls


def dense_crf_paths(device) -> int:
    """The fully connected CRF, forward and backward, where it is built."""
    from fastadv.models import DenseCRF

    crf = DenseCRF().to(device)
    logits = torch.randn(2, 5, 40, 60, device=device, requires_grad=True)
    image = torch.rand(2, 3, 40, 60, device=device)
    crf(logits, image).sum().backward()
    return 1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default=None, help="default: cuda on a GPU, cpu on the CPU")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    backend = args.backend or ("cuda" if device.type == "cuda" else "cpu")
    counts = {
        "sign_step_": sign_step_paths(device, backend),
        "colour ops": color_paths(device, backend),
        "nearest_fill": nearest_fill_paths(device, backend),
        "dense CRF": dense_crf_paths(device),
    }
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(
        f"gpu_sanitize on {device} ({backend}): " + ", ".join(f"{n} {k}" for k, n in counts.items())
    )


if __name__ == "__main__":
    main()
