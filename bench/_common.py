"""Shared by the benchmark scripts: timing quantiles, the machine's streaming bandwidth, CSV
rows."""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable

import torch

import fastadv

# Where the rows go: bench/results, or $FASTADV_BENCH_RESULTS (the GPU run collects its own).
RESULTS = os.environ.get("FASTADV_BENCH_RESULTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results"
)
COLUMNS = [
    "op", "backend", "shape", "dtype", "median_ms", "p20_ms", "p80_ms", "throughput", "unit",
    "pct_of_peak", "peak", "device", "torch", "triton", "fastadv", "date", "note",
]  # fmt: skip
QUANTILES = (0.5, 0.2, 0.8)


def time_ms(fn: Callable[[], object], device: torch.device, *, min_time_s: float = 0.5) -> tuple:
    """(median, p20, p80) milliseconds of fn(). On a GPU: triton.testing.do_bench (L2 flushed
    between runs); on the CPU: repeated wall-clock timing after a warm-up."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return tuple(do_bench(fn, quantiles=list(QUANTILES)))
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time_s and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _quantiles(times)


def time_interleaved(fns: dict[str, Callable[[], object]], device, rounds: int = 5) -> dict:
    """{name: (median, p20, p80) ms} for long-running candidates compared with each other. On
    the CPU they run in turns, round after round, so a change in the machine's load falls on
    all of them alike; on a GPU each is timed by time_ms."""
    if device.type == "cuda":
        return {name: time_ms(fn, device) for name, fn in fns.items()}
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: _quantiles(t) for name, t in times.items()}


def _quantiles(times_ms) -> tuple:
    q = torch.tensor(times_ms, dtype=torch.float64).quantile(
        torch.tensor(QUANTILES, dtype=torch.float64)
    )
    return tuple(q.tolist())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def stream_bandwidth_gbs(device: torch.device, nbytes: int) -> float:
    """The machine's streaming bandwidth, measured: bytes read plus written per second by an
    in-place update (x *= 1) of `nbytes`. Not a copy into another buffer: on a CPU the stores
    to a buffer not yet read first load it (write-allocate), so a copy moves 3x its size while
    counting 2x, and understates the machine by a third."""
    buf = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    median_ms = time_ms(lambda: buf.mul_(1.0), device)[0]
    return 2 * nbytes / (median_ms * 1e-3) / 1e9


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def row(
    op, backend, shape, dtype, times, throughput, unit, peak=None, note="", device=None
) -> dict:
    return {
        "op": op,
        "backend": backend,
        "shape": "x".join(map(str, shape)),
        "dtype": str(dtype).replace("torch.", ""),
        "median_ms": f"{times[0]:.4f}",
        "p20_ms": f"{times[1]:.4f}",
        "p80_ms": f"{times[2]:.4f}",
        "throughput": f"{throughput:.4g}",
        "unit": unit,
        "pct_of_peak": f"{100 * throughput / peak:.1f}" if peak else "",
        "peak": f"{peak:.4g}" if peak else "",
        "device": device_name(device) if device is not None else "",
        "torch": torch.__version__,
        "triton": _version("triton"),
        "fastadv": fastadv.__version__,
        "date": datetime.date.today().isoformat(),
        "note": note,
    }


def append_rows(name: str, rows: list[dict]) -> str:
    """Appends rows to bench/results/<name>.csv (header written once) and prints them."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print_table(rows)
    print(f"appended {len(rows)} rows to {path}")
    return path


def print_table(rows: list[dict]) -> None:
    cols = [
        "op",
        "backend",
        "shape",
        "dtype",
        "median_ms",
        "throughput",
        "unit",
        "pct_of_peak",
        "note",
    ]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
