"""Benchmark of the CV-PIRE colour-variance map and of CIEDE2000, in one run.

color_variance on scikit-image's astronaut (512x512) tiled to 512x1024, and a batch of 8 tiled to
1024x2048, kernel sizes 3, 5 and 7, float32, normalize="max", sigma 1:
  - "cv-pire-loop": CV-PIRE's way, a Python loop with one colour-science call per pixel pair,
    timed on a crop and extrapolated (labelled so in the note);
  - "colour-science": colour.difference.delta_E_CIE2000 vectorised over the k*k - 1 shifted
    windows, Lab from skimage.color.rgb2lab;
  - "torch": the pure-PyTorch reference on the same device;
  - our "cpu", and "triton" and "cuda" where a GPU is present.
Throughput is in Mpairs/s, pairs being the unordered pixel pairs of the map (about
H * W * (k*k - 1) / 2 an image); the note gives the time per image and the speed-up over
colour-science. On the GPU the CUDA row also gives its share of the FP32 peak, counting
FLOPS_PER_PAIR operations a pair (special functions as one each).

delta_e2000 elementwise on 10^6 random Lab pairs: ours against colour-science and
scikit-image (skimage.color.deltaE_ciede2000), in pairs/s.

Layouts ("layout" rows, one thread): delta_e2000 on the same 10^6 float32 pairs as an [N, 3]
colour list (dim=-1) and planar [1, 3, N]; rgb_to_lab on 16x3x256x256 float32 planar, channels
last, and [16, 256, 256, 3] (dim=-1). Every layout should reach the same vectorised loop.

Rows are appended to bench/results/color_variance.csv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

# _common, and fastadv from a source checkout built in place
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import colour
from skimage import color as skcolor
from skimage import data as skdata

import fastadv.ops as F
from _common import append_rows, row, time_ms
from fastadv.reference.color import gaussian_weight

KERNEL_SIZES = (3, 5, 7)
SIGMA = 1.0
LOOP_CROP = 12  # side of the crop the per-pair loop is timed on
# FP32 operations of one CIEDE2000 pair in kernels/color_math.h, special functions (sqrt, division,
# atan2, exp, sin) counted as one each: an estimate for the share-of-peak column.
FLOPS_PER_PAIR = 190


def astronaut_tiled(rows: int, cols: int) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]: the astronaut tiled rows x cols times."""
    image = skdata.astronaut().astype(np.float32) / 255.0
    return np.tile(image, (rows, cols, 1))


def unordered_pairs(h: int, w: int, k: int) -> int:
    r = k // 2
    return sum(
        (h - dy) * (w - abs(dx)) for dy in range(r + 1) for dx in range(-r, r + 1) if dy or dx > 0
    )


def time_once(fn) -> tuple:
    """For anchors that take seconds: one timed run, no warm-up."""
    start = time.perf_counter()
    fn()
    ms = (time.perf_counter() - start) * 1e3
    return ms, ms, ms


def colour_science_map(image: np.ndarray, k: int) -> np.ndarray:
    """The map with colour-science, vectorised over the k*k - 1 shifted windows."""
    lab = skcolor.rgb2lab(image)
    h, w, _ = lab.shape
    r = k // 2
    padded = np.pad(lab, ((r, r), (r, r), (0, 0)), mode="edge")
    inside = np.pad(np.ones((h, w)), r)
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy == 0 and dx == 0:
                continue
            window = (slice(r + dy, r + dy + h), slice(r + dx, r + dx + w))
            de = colour.difference.delta_E_CIE2000(lab, padded[window])
            total += inside[window] * (gaussian_weight(dy, dx, SIGMA) * de) ** 2
            count += inside[window]
    cv = np.sqrt(total / count)
    return cv / cv.max()


def cv_pire_seconds_per_pair(image: np.ndarray, k: int) -> float:
    """CV-PIRE's per-pixel, per-neighbour loop on a crop: seconds per (ordered) pixel pair."""
    lab = skcolor.rgb2lab(image[:LOOP_CROP, :LOOP_CROP])
    r = k // 2
    pairs = 0
    start = time.perf_counter()
    for y in range(LOOP_CROP):
        for x in range(LOOP_CROP):
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    inside = 0 <= y + dy < LOOP_CROP and 0 <= x + dx < LOOP_CROP
                    if (dy or dx) and inside:
                        colour.difference.delta_E_CIE2000(lab[y, x], lab[y + dy, x + dx])
                        pairs += 1
    return (time.perf_counter() - start) / pairs


def gpu_fp32_peak(device: torch.device) -> float | None:
    """FP32 FLOP/s: SMs x 128 lanes x 2 (FMA) x the maximum SM clock (nvidia-smi)."""
    try:
        mhz = subprocess.run(
            ["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[device.index or 0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return None
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return sms * 128 * 2 * float(mhz) * 1e6


class MapRows:
    """The rows of one image size and kernel size; the note compares with colour-science."""

    def __init__(self, shape: tuple, k: int):
        self.shape, self.k = shape, k
        batch, _, h, w = shape
        self.pairs = batch * unordered_pairs(h, w, k)
        self.colour_ms = None
        self.rows = []

    def add(self, backend, times, device, note="", peak_flops=None):
        per_image = times[0] / self.shape[0]
        if self.colour_ms:
            note = f", {self.colour_ms / times[0]:.1f}x colour-science{note}"
        throughput = self.pairs / (times[0] * 1e-3) / 1e6
        peak = None if peak_flops is None else peak_flops / FLOPS_PER_PAIR / 1e6
        note = f"k={self.k}, {per_image:.4g} ms/image{note}"
        self.rows.append(
            row("color_variance", backend, self.shape, torch.float32, times, throughput,
                "Mpairs/s", peak, note, device)
        )  # fmt: skip


def kernel_rows(image: np.ndarray, batch: int, k: int, anchors: bool) -> list[dict]:
    cpu = torch.device("cpu")
    x_cpu = torch.from_numpy(image).permute(2, 0, 1)[None].repeat(batch, 1, 1, 1).contiguous()
    out = MapRows(tuple(x_cpu.shape), k)
    if anchors:
        per_pair = cv_pire_seconds_per_pair(image, k)
        note = f", extrapolated from a {LOOP_CROP}^2 crop at {per_pair * 1e6:.0f} us/pair"
        out.add("cv-pire-loop", (per_pair * 2 * out.pairs * 1e3,) * 3, cpu, note)
        out.colour_ms = time_once(lambda: colour_science_map(image, k))[0]
        out.add("colour-science", (out.colour_ms,) * 3, cpu)
        out.add("torch", time_once(lambda: F.color_variance(x_cpu, k, backend="torch")), cpu)

    def ours():
        return F.color_variance(x_cpu, k, SIGMA, backend="cpu")

    slow = x_cpu.numel() > 2**22  # the batch: seconds a call
    times = time_once(ours) if slow else time_ms(ours, cpu)
    out.add("cpu", times, cpu, f", {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        x = x_cpu.to(gpu)
        peak = gpu_fp32_peak(gpu)
        for backend in ("torch", "triton", "cuda"):
            times = time_ms(lambda b=backend: F.color_variance(x, k, SIGMA, backend=b), gpu)
            if backend == "cuda" and peak:
                out.add(backend, times, gpu, ", pct_of_peak of FP32", peak_flops=peak)
            else:
                out.add(backend, times, gpu)
    return out.rows


def random_lab(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(0, 100, n), rng.uniform(-100, 100, n), rng.uniform(-100, 100, n)], -1
    )


def delta_e2000_rows(n: int = 1_000_000) -> list[dict]:
    lab = [random_lab(n, seed) for seed in (0, 1)]
    cpu = torch.device("cpu")
    cases = [
        ("colour-science", cpu, lambda: colour.difference.delta_E_CIE2000(*lab)),
        ("scikit-image", cpu, lambda: skcolor.deltaE_ciede2000(*lab)),
    ]
    x, y = (torch.from_numpy(v).float() for v in lab)
    for backend in ("torch", "cpu"):
        cases.append((backend, cpu, lambda b=backend: F.delta_e2000(x, y, dim=-1, backend=b)))
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        xg, yg = x.to(gpu), y.to(gpu)
        for backend in ("torch", "triton", "cuda"):
            cases.append((backend, gpu, lambda b=backend: F.delta_e2000(xg, yg, dim=-1, backend=b)))
    rows = []
    for backend, device, fn in cases:
        times = time_ms(fn, device)
        note = "float64 (numpy)" if backend in ("colour-science", "scikit-image") else ""
        rows.append(
            row(
                "delta_e2000",
                backend,
                (n, 3),
                torch.float32,
                times,
                n / (times[0] * 1e-3),
                "pairs/s",
                note=note,
                device=device,
            )
        )
    return rows


def layout_rows(n: int = 1_000_000, side: int = 256) -> list[dict]:
    """One thread: the elementwise ops in planar and interleaved layouts."""
    x, y = (torch.from_numpy(random_lab(n, seed)).float() for seed in (0, 1))
    rgb = torch.rand(16, 3, side, side)
    xp, yp = x.T.contiguous()[None], y.T.contiguous()[None]
    pairs = {
        "[N, 3] dim=-1": lambda: F.delta_e2000(x, y, dim=-1, backend="cpu"),
        "[1, 3, N] dim=1": lambda: F.delta_e2000(xp, yp, dim=1, backend="cpu"),
    }
    planar, last = rgb.contiguous(), rgb.contiguous(memory_format=torch.channels_last)
    hwc = rgb.permute(0, 2, 3, 1).contiguous()
    images = {
        "planar": lambda: F.rgb_to_lab(planar, validate=False, backend="cpu"),
        "channels last": lambda: F.rgb_to_lab(last, validate=False, backend="cpu"),
        "[B, H, W, 3] dim=-1": lambda: F.rgb_to_lab(hwc, dim=-1, validate=False, backend="cpu"),
    }
    cpu, threads = torch.device("cpu"), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = []
        for op, shape, unit_count, cases in (
            ("delta_e2000", (n, 3), n, pairs),
            ("rgb_to_lab", tuple(rgb.shape), rgb.numel() // 3, images),
        ):
            for layout, fn in cases.items():
                times = time_ms(fn, cpu)
                rows.append(
                    row(op, "cpu", shape, torch.float32, times, unit_count / (times[0] * 1e-3),
                        "pixels/s", note=f"layout {layout}, 1 thread", device=cpu)
                )  # fmt: skip
        return rows
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts-only", action="store_true", help="the layout rows alone")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a check of the script")
    args = parser.parse_args()
    rows = []
    if args.quick:
        rows += kernel_rows(astronaut_tiled(1, 1)[:32, :64], 1, 3, anchors=False)
        rows += delta_e2000_rows(n=10_000) + layout_rows(n=10_000, side=16)
    elif not args.layouts_only:
        for k in KERNEL_SIZES:
            rows += kernel_rows(astronaut_tiled(1, 2), 1, k, anchors=True)
        for k in KERNEL_SIZES:
            rows += kernel_rows(astronaut_tiled(2, 4), 8, k, anchors=False)
        rows += delta_e2000_rows()
    rows += layout_rows()
    append_rows("color_variance", rows)


if __name__ == "__main__":
    main()
