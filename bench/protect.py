"""Benchmark of colour-variance protection (Sweere et al.'s Algorithm 1), end to end.

A batch of 16 SynthScenes val images at 256x256 (uint8 grid), the shipped scene classifier,
condition top1, color_variance_attack's defaults (m, α, T, lr), the same random start:
  - "fastadv": fastadv.attacks.color_variance_attack on the batch: the compiled colour-variance
    map, the batched loop with per-sample early stop, the fused clip-and-round op;
  - "fastadv-per-image": the same call one image at a time, to separate what the batch buys
    from what the map kernel buys;
  - "cv-pire-style": what a user would otherwise write after CV-PIRE: the map with
    colour-science (vectorised over the 8 shifted windows, bench/color_variance.py's anchor;
    CV-PIRE itself loops over pixels in Python and is far slower), then a plain PyTorch loop
    with torch.optim.Adam, one image at a time. Its model parameters are frozen too, so it
    computes no weight gradients: the best such a loop can do.
The candidates run in turns, round after round. Throughput in images/s; the note gives the
speed-up, the share of each pipeline spent on the colour-variance map, and the success rates
(the same algorithm: they agree up to the random start).

    python bench/protect.py [--rounds 3]

Rows are appended to bench/results/protect.csv.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time

import torch
import torch.nn.functional as F

# _common, and fastadv from a source checkout built in place
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from color_variance import colour_science_map

from _common import append_rows, row, time_interleaved
from fastadv.attacks import color_variance_attack
from fastadv.attacks.color_variance import condition_met
from fastadv.experiments.protect import QuantisedScenes
from fastadv.models import load
from fastadv.ops import color_variance

BATCH, SIZE, CONDITION = 16, 256, "top1"
DEFAULTS = {  # color_variance_attack's own defaults, which the plain loop copies
    name: parameter.default
    for name, parameter in inspect.signature(color_variance_attack).parameters.items()
    if name in ("multiplier", "l1_weight", "steps", "lr")
}


class Pipelines:
    """The three candidates on one batch; each records its successes and map seconds."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model, x, y
        self.success, self.map_s = {}, {}

    def fastadv(self) -> None:
        torch.manual_seed(0)
        self.success["fastadv"] = color_variance_attack(
            self.model, self.x, self.y, condition=CONDITION
        ).success

    def fastadv_map(self) -> None:
        """The colour-variance map alone, timed apart (the attack computes it inside)."""
        start = time.perf_counter()
        color_variance(self.x)
        self.map_s["fastadv"] = time.perf_counter() - start

    def fastadv_per_image(self) -> None:
        torch.manual_seed(0)
        self.success["fastadv-per-image"] = torch.cat(
            [
                color_variance_attack(self.model, xi[None], yi[None], condition=CONDITION).success
                for xi, yi in zip(self.x, self.y, strict=True)
            ]
        )

    def cv_pire_style(self) -> None:
        torch.manual_seed(0)
        outcomes, self.map_s["cv-pire-style"] = [], 0.0
        for i in range(BATCH):
            start = time.perf_counter()
            cv = colour_science_map(self.x[i].permute(1, 2, 0).double().numpy(), 3)
            self.map_s["cv-pire-style"] += time.perf_counter() - start
            outcomes.append(plain_loop(self.model, self.x[i : i + 1], self.y[i : i + 1], cv))
        self.success["cv-pire-style"] = torch.tensor(outcomes)


def plain_loop(model, image: torch.Tensor, label: torch.Tensor, cv) -> bool:
    """Algorithm 1 for one image [1, 3, H, W] and its map cV [H, W], with torch.optim.Adam;
    True on success."""
    pt = DEFAULTS["multiplier"] * torch.from_numpy(cv).float()[None, None]
    v = (torch.empty_like(image).uniform_(-0.01, 0.01) * pt).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=DEFAULTS["lr"])
    for _ in range(DEFAULTS["steps"] + 1):
        logits = model((image + v).clamp(0, 1))
        if condition_met(CONDITION, logits.detach(), label):
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
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    model = load("scene-cnn")
    model.requires_grad_(False)
    data = QuantisedScenes(BATCH, SIZE)
    x = torch.stack([data[i][0] for i in range(BATCH)])
    y = torch.stack([data[i][1] for i in range(BATCH)])
    runs = Pipelines(model, x, y)
    fns = {
        "fastadv": runs.fastadv,
        "fastadv-per-image": runs.fastadv_per_image,
        "cv-pire-style": runs.cv_pire_style,
    }
    times = time_interleaved(fns, torch.device("cpu"), rounds=args.rounds)
    runs.fastadv_map()
    base_ms = times["cv-pire-style"][0]
    shape, rows = (BATCH, 3, SIZE, SIZE), []
    for name, t in times.items():
        note = (
            f"success {runs.success[name].float().mean():.2f}; "
            f"{base_ms / t[0]:.1f}x cv-pire-style; {torch.get_num_threads()} threads"
        )
        if name in runs.map_s:
            note += f"; map {1e3 * runs.map_s[name]:.0f} ms of the batch's time"
        rows.append(row("protect", name, shape, torch.float32, t, BATCH / (t[0] * 1e-3),
                        "images/s", note=note, device=torch.device("cpu")))  # fmt: skip
    append_rows("protect", rows)


if __name__ == "__main__":
    main()
