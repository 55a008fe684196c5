"""End-to-end attacks: fastadv against torchattacks at equal work, and the model's bare
forward + backward loop (the floor), on an FCN-style segmentation network.

    I-FGSM (BIM), 10 steps, eps 8/255, untargeted        torchattacks.BIM vs fastadv.attacks.ifgsm
    class hiding (Fischer et al.), eps 10/255, 13 steps  torchattacks.BIM targeted by function
                                                          vs fastadv.attacks.hide_classes
Equal results are checked; each library's overhead is its time above the floor. With early
stopping, hide_classes is also timed to the point where it has reached torchattacks' final
fooling rate. Rows go to bench/results/attack_e2e.csv.

    python bench/attack_e2e.py [--batch 4] [--height 256] [--width 512]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _common import append_rows, row, time_ms
from fastadv.attacks import hide_classes, ifgsm, kurakin_steps
from fastadv.data import SynthCity
from fastadv.models import load
from fastadv.ops import nearest_fill

PERSON = 11
STEPS, EPS, HIDE_EPS = 10, 8 / 255, 10 / 255


def floor_loop(model, x, labels, steps):
    """The model's forward and backward w.r.t. the input alone, parameters frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(adv), labels, reduction="sum"), adv)
        adv = (adv.detach() + g.sign() / 255).clamp(0, 1)
    for p in model.parameters():
        p.requires_grad_(True)


def bench(model, x, device):
    import torchattacks

    with torch.no_grad():
        clean = model(x).argmax(1)
    rows = []

    def record(op, name, fn, note=""):
        times = time_ms(fn, device, min_time_s=0.0)
        per_s = x.shape[0] / (times[0] * 1e-3)
        rows.append(
            row(op, name, x.shape, x.dtype, times, per_s, "images/s", note=note, device=device)
        )
        return times[0]

    # I-FGSM at equal work
    bim = torchattacks.BIM(model, eps=EPS, alpha=1 / 255, steps=STEPS)

    def ours():
        return ifgsm(model, x, clean, eps=EPS, alpha=1 / 255, steps=STEPS).adv

    diff = (bim(x, clean) - ours()).abs().max().item()
    floor = record("ifgsm", "floor (forward+backward)", lambda: floor_loop(model, x, clean, STEPS))
    t_ta = record("ifgsm", "torchattacks.BIM", lambda: bim(x, clean))
    t_fa = record("ifgsm", "fastadv.ifgsm", ours, note=f"max |diff| vs torchattacks {diff:.1e}")
    _overheads(rows[-3:], floor, t_ta, t_fa)

    # class hiding: torchattacks targeted at the same nearest-fill target
    target = nearest_fill(clean, PERSON, on_empty="keep").labels
    steps = kurakin_steps(HIDE_EPS)
    bim = torchattacks.BIM(model, eps=HIDE_EPS, alpha=1 / 255, steps=steps)
    bim.set_mode_targeted_by_function(lambda images, labels: target)

    def hide(early_stop):
        return hide_classes(model, x, PERSON, HIDE_EPS, early_stop=early_stop)

    full = hide(False)
    diff = (bim(x, clean) - full.adv).abs().max().item()
    rate = full.success.float().mean().item()  # the same images as torchattacks', so its rate
    floor = record("hide", "floor (forward+backward)", lambda: floor_loop(model, x, target, steps))
    t_ta = record(
        "hide", "torchattacks.BIM targeted", lambda: bim(x, clean), f"fooling rate {rate:.2f}"
    )
    t_fa = record("hide", "fastadv.hide_classes", lambda: hide(False), f"max |diff| {diff:.1e}")
    _overheads(rows[-3:], floor, t_ta, t_fa)
    early_rate = hide(True).success.float().mean().item()
    t_early = record("hide", "fastadv.hide_classes early-stop", lambda: hide(True))
    rows[-1]["note"] = (
        f"fooling rate {early_rate:.2f}; {t_ta / t_early:.2f}x sooner than torchattacks"
    )
    return rows


def _overheads(rows, floor, t_ta, t_fa):
    for r, t in zip(rows[1:], (t_ta, t_fa), strict=True):
        r["note"] = (r["note"] + "; " if r["note"] else "") + f"overhead {t - floor:.1f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None, help="default 4 on the CPU, 8 on a GPU")
    parser.add_argument("--height", type=int, default=None, help="default 256 / 512")
    parser.add_argument("--width", type=int, default=None, help="default 512 / 1024")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    batch = args.batch or (8 if gpu else 4)
    height, width = args.height or (512 if gpu else 256), args.width or (1024 if gpu else 512)
    model = load("fcn8s-synthcity", device=device).eval()
    data = SynthCity(split="val", size=(height, width))
    x = torch.stack([data[i][0] for i in range(batch)]).to(device)
    append_rows("attack_e2e", bench(model, x, device))


if __name__ == "__main__":
    main()
