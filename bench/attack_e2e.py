"""End-to-end attacks: fastadv against torchattacks at equal work, and the model's bare
forward + backward loop (the floor), on an FCN-style segmentation network.

    I-FGSM (BIM), 10 steps, eps 8/255, untargeted        torchattacks.BIM vs fastadv.attacks.ifgsm
    class hiding (Fischer et al.), eps 10/255, 13 steps  torchattacks.BIM targeted by function
                                                          vs fastadv.attacks.hide_classes
The candidates run in turns, round after round (load changes fall on all alike). How far
fastadv's images are from torchattacks' is reported: equal formulas, rounded in another order,
differ in the last bit, and sign() makes whole steps of those on near-zero gradients. Each
library's overhead is its time above the floor; fastadv runs with evaluate=False (images only,
as torchattacks returns). With early
stopping, hide_classes is also timed to the point where it has reached torchattacks' final
fooling rate. Rows go to bench/results/attack_e2e.csv.

    python bench/attack_e2e.py [--batch 4] [--height 256] [--width 512]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _common import append_rows, row, time_interleaved
from fastadv import metrics
from fastadv.attacks import hide_classes, ifgsm, kurakin_steps
from fastadv.data import SynthCity
from fastadv.models import create, load
from fastadv.ops import nearest_fill

PERSON = 11
STEPS, EPS, HIDE_EPS = 10, 8 / 255, 10 / 255


def floor_loop(model, x, labels, steps):
    """The model's forward and backward w.r.t. the input alone, parameters frozen, no update."""
    for p in model.parameters():
        p.requires_grad_(False)
    adv = x.clone().requires_grad_(True)
    for _ in range(steps):
        torch.autograd.grad(F.cross_entropy(model(adv), labels, reduction="sum"), adv)
    for p in model.parameters():
        p.requires_grad_(True)


def bench(model, x, device):
    import torchattacks

    with torch.no_grad():
        clean = model(x).argmax(1)
    rows = []

    def record(op, fns: dict, notes: dict):
        """Times the candidates in turns; rows with images/s and each one's overhead above
        the floor (the first candidate)."""
        times = time_interleaved(fns, device)
        floor = times[next(iter(fns))][0]
        for name, t in times.items():
            note = notes.get(name, "")
            if name != next(iter(fns)):
                note = (note + "; " if note else "") + f"overhead {t[0] - floor:.1f} ms"
            per_s = x.shape[0] / (t[0] * 1e-3)
            rows.append(
                row(op, name, x.shape, x.dtype, t, per_s, "images/s", note=note, device=device)
            )
        return times

    # I-FGSM at equal work
    bim = torchattacks.BIM(model, eps=EPS, alpha=1 / 255, steps=STEPS)

    def ours():  # evaluate=False: the images only, as torchattacks returns
        return ifgsm(model, x, clean, eps=EPS, alpha=1 / 255, steps=STEPS, evaluate=False).adv

    record(
        "ifgsm",
        {
            "floor (forward+backward)": lambda: floor_loop(model, x, clean, STEPS),
            "torchattacks.BIM": lambda: bim(x, clean),
            "fastadv.ifgsm": ours,
        },
        {"fastadv.ifgsm": f"vs torchattacks: {difference(bim(x, clean), ours())}"},
    )

    # class hiding: torchattacks targeted at the same nearest-fill target
    target = nearest_fill(clean, PERSON, on_empty="keep").labels
    steps = kurakin_steps(HIDE_EPS)
    bim = torchattacks.BIM(model, eps=HIDE_EPS, alpha=1 / 255, steps=steps)
    bim.set_mode_targeted_by_function(lambda images, labels: target)

    def hide(early_stop, evaluate=True):
        return hide_classes(model, x, PERSON, HIDE_EPS, early_stop=early_stop, evaluate=evaluate)

    adv_ta = bim(x, clean)
    rate_ta = hide_rate(model, adv_ta, clean)
    early = hide(True)
    times = record(
        "hide",
        {
            "floor (forward+backward)": lambda: floor_loop(model, x, target, steps),
            "torchattacks.BIM targeted": lambda: bim(x, clean),
            "fastadv.hide_classes": lambda: hide(False, evaluate=False),
            "fastadv.hide_classes early-stop": lambda: hide(True),
        },
        {
            "torchattacks.BIM targeted": f"fooling rate {rate_ta:.2f}",
            "fastadv.hide_classes": f"vs torchattacks: {difference(adv_ta, hide(False).adv)}",
            "fastadv.hide_classes early-stop": f"fooling rate {early.success_rate:.2f}",
        },
    )
    sooner = times["torchattacks.BIM targeted"][0] / times["fastadv.hide_classes early-stop"][0]
    rows[-1]["note"] += f"; {sooner:.2f}x sooner than torchattacks"
    return rows


def difference(a, b) -> str:
    """How far two attacks' images are apart: the largest difference and the share of pixels
    that differ at all. Equal formulas rounded in another order differ in the last bit; sign()
    turns a last-bit change of a near-zero gradient into a whole step, so long runs on large
    images drift apart on a few pixels."""
    d = (a - b).abs()
    return (
        f"max |diff| {d.max().item():.1e}, {(d > 1e-6).float().mean().item():.2%} of pixels differ"
    )


def hide_rate(model, adv, clean) -> float:
    """The share of images on which 99 % of the person pixels are predicted as another class
    (hide_classes' success rule; images without persons count as hidden), for torchattacks'
    images."""
    with torch.no_grad():
        pred = model(adv).argmax(1)
    hidden = metrics.hidden_fraction(clean, pred, [PERSON]).nan_to_num(1.0)
    return (hidden >= 0.99).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None, help="default 4 on the CPU, 8 on a GPU")
    parser.add_argument("--height", type=int, default=None, help="default 256 / 512")
    parser.add_argument("--width", type=int, default=None, help="default 512 / 1024")
    parser.add_argument(
        "--arch",
        default=None,
        help="time this architecture (e.g. fcn8s-vgg16, random weights, seed 0) instead of the "
        "shipped fcn8s-synthcity",
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    batch = args.batch or (8 if gpu else 4)
    height, width = args.height or (512 if gpu else 256), args.width or (1024 if gpu else 512)
    if args.arch:
        torch.manual_seed(0)
        model = create(args.arch).to(device).eval()
    else:
        model = load("fcn8s-synthcity", device=device).eval()
    data = SynthCity(split="val", size=(height, width))
    x = torch.stack([data[i][0] for i in range(batch)]).to(device)
    append_rows("attack_e2e", bench(model, x, device))


if __name__ == "__main__":
    main()
