"""Benchmark of nearest_fill: Fischer et al.'s target (every person pixel takes the label of its
nearest non-person pixel) on Cityscapes-sized label maps with person-like blobs.

Anchors, in the same run: SciPy's exact distance_transform_edt with indices plus the gather
(what one would write otherwise, a host round trip per image), OpenCV's distanceTransformWithLabels
(approximate: the note gives the fraction of hidden pixels it sends to a pixel that is not a
nearest one), and on a GPU CuPy's exact cupyx.scipy.ndimage.distance_transform_edt. Then our
cpu backend on one thread and on all, and the triton and cuda backends on a GPU. Rows go to
bench/results/nearest_fill.csv; ratios to SciPy (per image, one core) are in the notes.

    python bench/nearest_fill.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import os

import numpy as np
import scipy.ndimage as ndi
import torch

from _common import append_rows, row, time_ms
from fastadv.ops import available, nearest_fill

PERSON = 11  # the Cityscapes train id of person
BACKGROUND = (0, 1, 2, 8, 10, 13)  # road, sidewalk, building, vegetation, sky, car
SHAPES = [(1, 512, 1024), (8, 512, 1024), (1, 1024, 2048), (8, 1024, 2048)]


def person_maps(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """uint8 label maps: horizontal bands of background classes broken by vertical blocks, and
    3 to 12 upright ellipses of person per image, some overlapping, some cut by the border."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    maps = []
    for _ in range(batch):
        bands = np.sort(g.uniform(0, height, size=len(BACKGROUND) - 1))
        labels = np.asarray(BACKGROUND, dtype=np.uint8)[np.searchsorted(bands, yy)]
        for _ in range(g.integers(2, 6)):  # buildings and poles cutting across the bands
            x0, x1 = np.sort(g.integers(0, width, size=2))
            labels[: g.integers(height // 4, height), x0:x1] = g.choice(BACKGROUND)
        for _ in range(g.integers(3, 13)):
            ry = g.uniform(0.04, 0.2) * height
            rx = ry * g.uniform(0.25, 0.45)
            cy, cx = g.uniform(0.3, 1.05) * height, g.uniform(0, width)
            labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = PERSON
        maps.append(labels)
    return torch.from_numpy(np.stack(maps))


def scipy_fill(labels: np.ndarray) -> np.ndarray:
    out = np.empty_like(labels)
    for b, image in enumerate(labels):
        rows, cols = ndi.distance_transform_edt(
            image == PERSON, return_distances=False, return_indices=True
        )
        out[b] = image[rows, cols]
    return out


def opencv_fill(cv2, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's filled labels and each pixel's source (flat index)."""
    out, src = np.empty_like(labels), np.empty(labels.shape, dtype=np.int64)
    for b, image in enumerate(labels):
        visible = (image != PERSON).astype(np.uint8)
        # distance to the nearest zero: zero where the pixel is visible
        _, nearest = cv2.distanceTransformWithLabels(
            1 - visible, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        flat = nearest.ravel()
        seeds = np.flatnonzero(visible.ravel())
        pixel_of = np.empty(flat.max() + 1, dtype=np.int64)
        pixel_of[flat[seeds]] = seeds  # each visible pixel carries its own label
        src[b] = pixel_of[nearest]
        out[b] = image.ravel()[src[b]]
    return out, src


def opencv_wrong_fraction(src: np.ndarray, distance: torch.Tensor, hidden: np.ndarray) -> float:
    """The fraction of hidden pixels whose OpenCV source is farther than the nearest."""
    _, height, width = src.shape
    yy, xx = np.mgrid[:height, :width]
    d2 = (yy - src // width) ** 2 + (xx - src % width) ** 2
    exact = np.round(distance.double().numpy() ** 2)
    return float(((d2 > exact) & hidden).sum() / max(1, hidden.sum()))


def cupy_fill(cp, cupy_ndi, labels) -> object:
    out = cp.empty_like(labels)
    for b in range(labels.shape[0]):
        rows, cols = cupy_ndi.distance_transform_edt(
            labels[b] == PERSON, return_distances=False, return_indices=True
        )
        out[b] = labels[b][rows, cols]
    return out


def bench_shape(shape, args) -> list[dict]:
    batch, height, width = shape
    labels = person_maps(batch, height, width, seed=height + batch)
    hidden = (labels == PERSON).numpy()
    cpu = torch.device("cpu")
    rows = []

    def add(name, fn, device, note=""):
        times = time_ms(fn, device, min_time_s=args.min_time)
        scipy_ms = float(rows[0]["median_ms"]) if rows else times[0]  # SciPy's row comes first
        note = f"{scipy_ms / times[0]:.1f}x scipy" + (f"; {note}" if note else "")
        if device.type == "cpu":  # other work on the machine shows in the CPU rows
            note += f"; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        throughput = labels.numel() / times[0] / 1e3
        rows.append(row("nearest_fill", name, shape, labels.dtype, times, throughput, "Mpx/s",
                        note=note, device=device))  # fmt: skip
        print(f"{name:>8} {shape}: {times[0]:9.2f} ms  ({note})", flush=True)

    want = nearest_fill(labels, PERSON, return_distance=True, backend="cpu")
    edt = ndi.distance_transform_edt(hidden[0]).astype(np.float32)
    assert np.array_equal(edt, want.distance[0].numpy()), "distances differ from scipy's"
    add("scipy", lambda: scipy_fill(labels.numpy()), cpu, "anchor: edt with indices + gather")

    if importlib.util.find_spec("cv2") is not None:
        import cv2

        cv2.setNumThreads(1)
        _, src = opencv_fill(cv2, labels.numpy())
        wrong = opencv_wrong_fraction(src, want.distance, hidden)
        add("opencv", lambda: opencv_fill(cv2, labels.numpy()), cpu,
            f"approximate: {100 * wrong:.2f}% of hidden px get a non-nearest source")  # fmt: skip

    threads = torch.get_num_threads()
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        add(f"cpu-{n}t", lambda: nearest_fill(labels, PERSON, backend="cpu"), cpu, f"{n} threads")
    torch.set_num_threads(threads)

    if torch.cuda.is_available():
        bench_gpu(labels, want, add)
    return rows


def bench_gpu(labels, want, add) -> None:
    gpu = torch.device("cuda")
    on_gpu = labels.to(gpu)
    if importlib.util.find_spec("cupy") is not None:
        import cupy as cp
        import cupyx.scipy.ndimage as cupy_ndi

        as_cupy = cp.asarray(on_gpu)
        add("cupy", lambda: cupy_fill(cp, cupy_ndi, as_cupy), gpu, "exact edt with indices")
    for backend in ("triton", "cuda"):
        if backend in available(gpu):
            got = nearest_fill(on_gpu, PERSON, return_distance=True, backend=backend)
            assert torch.equal(got.labels.cpu(), want.labels), backend
            assert torch.equal(got.distance.cpu(), want.distance), backend
            add(backend, lambda b=backend: nearest_fill(on_gpu, PERSON, backend=b), gpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smallest shape only")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    args = parser.parse_args()
    rows = []
    for shape in SHAPES[:1] if args.quick else SHAPES:
        rows += bench_shape(shape, args)
    append_rows("nearest_fill", rows)


if __name__ == "__main__":
    main()
