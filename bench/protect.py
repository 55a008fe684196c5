"""Benchmark of colour-variance protection (Sweere et al.'s Algorithm 1), end to end.

A batch of 16 SynthScenes val images at 256x256 (uint8 grid), the shipped scene classifier,
condition top1, the attack's defaults (m, α, T, lr), one seed:
  - "fastadv": fastadv.attacks.color_variance_attack on the batch: the compiled colour-variance
    map, the batched loop with per-sample early stop, the fused clip-and-round op;
  - "cv-pire-style": what a user would otherwise write after CV-PIRE: the map with
    colour-science (vectorised over the 8 shifted windows, bench/color_variance.py's anchor;
    CV-PIRE itself loops over pixels in Python and is far slower), then a plain PyTorch loop
    with torch.optim.Adam, one image at a time.
Throughput in images/s; the note gives the speed-up, and both success rates (they run the
same algorithm, so they should agree up to the random start).

Rows are appended to bench/results/protect.csv.
"""

from __future__ import annotations

import os
import sys
import time

import torch
import torch.nn.functional as F

# _common, and fastadv from a source checkout built in place
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from color_variance import colour_science_map

from _common import append_rows, row
from fastadv.attacks import color_variance_attack
from fastadv.attacks.color_variance import condition_met
from fastadv.experiments.protect import QuantisedScenes
from fastadv.models.scene import load_classifier

BATCH, SIZE = 16, 256
DEFAULTS = {"multiplier": 0.2, "l1_weight": 1.0, "steps": 200, "lr": 0.01}


def cv_pire_style(model, image: torch.Tensor, label: torch.Tensor) -> bool:
    """Algorithm 1 for one image [1, 3, H, W] as a plain PyTorch loop; True on success."""
    cv = colour_science_map(image[0].permute(1, 2, 0).double().numpy(), 3)
    pt = DEFAULTS["multiplier"] * torch.from_numpy(cv).float()[None, None]
    v = (torch.empty_like(image).uniform_(-0.01, 0.01) * pt).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=DEFAULTS["lr"])
    for _ in range(DEFAULTS["steps"] + 1):
        logits = model((image + v).clamp(0, 1))
        if condition_met("top1", logits.detach(), label):
            return True
        l1 = v.abs().sum() / (3 * pt.sum())
        loss = -F.cross_entropy(logits, label) + DEFAULTS["l1_weight"] * l1
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            v.copy_(torch.round(torch.maximum(torch.minimum(v, pt), -pt) * 255) / 255)
    return False


def main() -> None:
    model, _ = load_classifier("scene-cnn")
    data = QuantisedScenes(BATCH, SIZE)
    x = torch.stack([data[i][0] for i in range(BATCH)])
    y = torch.stack([data[i][1] for i in range(BATCH)])
    torch.manual_seed(0)
    start = time.perf_counter()
    ours = color_variance_attack(model, x, y, condition="top1", **DEFAULTS)
    ours_s = time.perf_counter() - start
    torch.manual_seed(0)
    start = time.perf_counter()
    theirs = [cv_pire_style(model, x[i : i + 1], y[i : i + 1]) for i in range(BATCH)]
    theirs_s = time.perf_counter() - start
    shape, cpu = (BATCH, 3, SIZE, SIZE), torch.device("cpu")
    note = (
        f"success {ours.success.float().mean():.2f} (fastadv) vs "
        f"{sum(theirs) / BATCH:.2f} (cv-pire-style); speed-up {theirs_s / ours_s:.1f}x; "
        f"{torch.get_num_threads()} threads"
    )
    rows = [
        row("protect", "fastadv", shape, torch.float32, (ours_s * 1e3,) * 3, BATCH / ours_s,
            "images/s", note=note, device=cpu),
        row("protect", "cv-pire-style", shape, torch.float32, (theirs_s * 1e3,) * 3,
            BATCH / theirs_s, "images/s", note=note, device=cpu),
    ]  # fmt: skip
    append_rows("protect", rows)


if __name__ == "__main__":
    main()
