"""`fastadv demo`: the segmentation studies, reduced, on SynthCity with the shipped compact
FCN-8s, and a markdown report of both."""

from __future__ import annotations

import time
from pathlib import Path

from fastadv.experiments import hide, robustness, study

MODEL = "fcn8s-synthcity"  # the shipped compact FCN-8s, in both studies
THEIRS = "Their headline (Cityscapes): >= 85 % hidden with >= 97 % preserved at eps 10."


def run(out: Path, images: int, *, progress: bool = True) -> tuple[list[Path], float] | None:
    """Runs (or resumes) both reduced studies into `out` and writes out/report.md; rank 0 gets
    (report.md and the studies' files, minutes taken), the other ranks None."""
    start = time.perf_counter()
    hide_args = study.parse(hide, [
        "--images", str(images), "--size", "256", "512", "--batch-size", "2",
        "--eps", "2", "6", "10", "--modes", "full", "after", "--model", MODEL, "--out", str(out),
    ])  # fmt: skip
    hidden = study.run(hide, hide_args, progress=progress)
    # The CRF costs most: half the resolution and two images keep the demo short.
    robustness_args = study.parse(robustness, [
        "--images", str(min(images, 2)), "--size", "128", "256", "--batch-size", "2",
        "--eps", "2", "8", "--attacks", *robustness.ATTACKS, "--variants", *robustness.VARIANTS,
        "--models", MODEL, "--out", str(out),
    ])  # fmt: skip
    robust = study.run(robustness, robustness_args, progress=progress)
    if hidden is None:
        return None
    minutes = (time.perf_counter() - start) / 60
    setup = (
        f"SynthCity val images ({images} at 256x512 for hiding, {robustness_args.images} at "
        "128x256 for robustness, the fully connected DenseCRF), the shipped compact FCN-8s; "
        f"{minutes:.1f} min on {study.device(None)}. Full studies: `fastadv experiment hide` and "
        "`fastadv experiment robustness`."
    )
    report = out / "report.md"
    report.write_text(
        "\n".join(
            [
                "# fastadv demo: the segmentation studies, reduced",
                "\n" + setup,
                "\n## Hiding persons (Fischer et al., their Fig. 2)\n",
                hidden.table,
                f"\n{THEIRS} Here: {hide.headline_text(hide.headline(hidden.rows))}",
                "\n![Fig. 2](hide_fig2.png)\n\n![Fig. 1](hide_fig1.png)",
                "\n## Robustness and defences (Arnab et al.)\n",
                robust.table,
                "\n![IoU ratio](robustness.png)\n",
                robust.text,
            ]
        )
        + "\n"
    )
    return [report, *hidden.files, *robust.files], minutes
