"""Benchmark of the fully connected DenseCRF (permutohedral lattice) on a real photograph:
scikit-image's astronaut at 512x1024, 19 classes of smooth random logits, 5 mean-field iterations,
pydensecrf's default kernels.

Rows, in the same run: pydensecrf2 (Krähenbühl's code, one thread: it has no other), fastadv's
fully connected CRF on one thread and on all, forward and forward plus backward (the gradient in
the logits), the windowed CRF (window 11, all threads), and the CUDA backend on a GPU. The notes
give the ratio to pydensecrf2, the share of labels that agree with its labels, and the machine's
load. Rows go to bench/results/dense_crf.csv.

    python bench/dense_crf.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import os

import numpy as np
import skimage.data
import skimage.transform
import torch

from _common import append_rows, row, time_interleaved, time_ms
from fastadv.models import DenseCRF

HEIGHT, WIDTH, CLASSES, ITERATIONS = 512, 1024, 19, 5


def scene(height: int, width: int, seed: int = 0):
    """The photograph (uint8 [H, W, 3]) and smooth random logits (float32 [K, H, W])."""
    image = skimage.transform.resize(skimage.data.astronaut(), (height, width))
    image = (image * 255).round().astype(np.uint8)
    coarse = np.random.default_rng(seed).standard_normal((CLASSES, height // 16, width // 16))
    logits = skimage.transform.resize(coarse, (CLASSES, height, width), order=1) * 3
    return image, logits.astype(np.float32)


def pydensecrf_probabilities(image: np.ndarray, logits: np.ndarray) -> np.ndarray:
    import pydensecrf.densecrf as dcrf

    k, h, w = logits.shape
    crf = dcrf.DenseCRF2D(w, h, k)
    shifted = logits - logits.max(0)
    log_p = shifted - np.log(np.exp(shifted).sum(0))
    crf.setUnaryEnergy(np.ascontiguousarray(-log_p.reshape(k, -1)))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    return np.array(crf.inference(ITERATIONS)).reshape(k, h, w)


def forward(crf, z, x):
    with torch.no_grad():
        return crf(z, x)


def forward_backward(crf, z, x):
    z = z.detach().requires_grad_()
    out = crf(z, x)
    out.backward(torch.ones_like(out) / out.numel())
    return z.grad


def on_threads(n: int, fn):
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the image, 3 rounds")
    args = parser.parse_args()
    height, width = (HEIGHT // 2, WIDTH // 2) if args.quick else (HEIGHT, WIDTH)
    image, logits = scene(height, width)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    z = torch.from_numpy(logits)[None]
    cpu, shape = torch.device("cpu"), (1, CLASSES, height, width)
    dense = DenseCRF(iterations=ITERATIONS)
    threads = torch.get_num_threads()

    ours = forward(dense, z, x).argmax(1)[0].numpy()
    candidates, notes = {}, {}
    if importlib.util.find_spec("pydensecrf") is not None:
        theirs = pydensecrf_probabilities(image, logits).argmax(0)
        candidates["pydensecrf2"] = lambda: pydensecrf_probabilities(image, logits)
        notes["pydensecrf2"] = "Krähenbühl's permutohedral code, one thread"
        agree = f"labels {100 * np.mean(ours == theirs):.2f} % as pydensecrf2"
    else:
        agree = "pydensecrf2 not installed"
    for n in sorted({1, threads}):
        candidates[f"cpu-{n}t"] = on_threads(n, lambda: forward(dense, z, x))
        candidates[f"cpu-{n}t-backward"] = on_threads(n, lambda: forward_backward(dense, z, x))
        notes[f"cpu-{n}t"] = f"forward, {n} threads; {agree}"
        notes[f"cpu-{n}t-backward"] = f"forward + backward (logits), {n} threads"
    times = time_interleaved(candidates, cpu, rounds=3 if args.quick else 5)

    windowed = DenseCRF(iterations=ITERATIONS, window=11)
    window_labels = forward(windowed, z, x).argmax(1)[0].numpy()
    times["window11"] = time_interleaved({"w": lambda: forward(windowed, z, x)}, cpu, 1)["w"]
    notes["window11"] = (
        f"windowed CRF, window 11, forward, {threads} threads; "
        f"labels {100 * np.mean(window_labels == ours):.2f} % as the fully connected"
    )

    reference = times.get("pydensecrf2")
    load = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    rows = []
    for name, t in times.items():
        ratio = f"{reference[0] / t[0]:.2f}x pydensecrf2; " if reference else ""
        rows.append(row("dense_crf", name, shape, torch.float32, t, x[0, 0].numel() / t[0] / 1e3,
                        "Mpx/s", note=ratio + notes[name] + f"; {load}", device=cpu))  # fmt: skip
    if torch.cuda.is_available():
        rows += bench_gpu(dense, z, x, ours, shape)
    append_rows("dense_crf", rows)


def bench_gpu(dense, z, x, cpu_labels, shape) -> list[dict]:
    gpu = torch.device("cuda")
    zg, xg = z.to(gpu), x.to(gpu)
    labels = forward(dense, zg, xg).argmax(1)[0].cpu().numpy()
    agree = f"labels {100 * np.mean(labels == cpu_labels):.2f} % as the CPU's"
    out = []
    for name, fn in (("cuda", forward), ("cuda-backward", forward_backward)):
        t = time_ms(lambda fn=fn: fn(dense, zg, xg), gpu)
        out.append(row("dense_crf", name, shape, torch.float32, t, x[0, 0].numel() / t[0] / 1e3,
                       "Mpx/s", note=agree, device=gpu))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
