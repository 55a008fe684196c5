"""Benchmark of the Mind's Eye data: fastadv.data.RenderedObjects, rendered from scratch.

Renders the first N training samples (objects rasterised, alpha-blended onto photograph crops,
rounded to 8 bits), with 1 thread and with all of them, best of a few runs, in samples/s.
Rows are appended to bench/results/rendered.csv.

    python bench/rendered.py [--samples 4096]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import append_rows, row, time_ms
from fastadv.data import RenderedObjects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    RenderedObjects("train", 64).images()  # loads the background photographs once
    rows = []
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        times = time_ms(lambda: RenderedObjects("train", args.samples).images(), cpu)
        per_s = args.samples / (times[0] * 1e-3)
        rows.append(
            row(
                "rendered_objects",
                f"fastadv-{threads}t",
                (args.samples, 1, 64, 64),
                torch.float32,
                times,
                per_s,
                "samples/s",
                note=f"{threads} threads; target 1000 samples/s",
                device=cpu,
            )
        )
    append_rows("rendered", rows)


if __name__ == "__main__":
    main()
