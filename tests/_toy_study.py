"""A small real study for the harness tests: I-FGSM on a seeded segmenter, a confusion
matrix and a few per-image values a record. It is also a study module (fastadv.experiments.study)
that `fastadv.cli.run_study` runs; run as a script it does so with argv, e.g. under torchrun,
each rank writing its process id to <out>/pid-<rank> first so that a test can find it."""

import os
import sys
import time

import torch
from _models import images, segmenter

from fastadv import metrics
from fastadv.attacks import ifgsm
from fastadv.experiments import harness
from fastadv.experiments.study import Plan, shared_arguments

NAME = "toy"
HELP = "I-FGSM on a seeded segmenter"
SETTINGS = ["ifgsm/eps=2", "ifgsm/eps=8"]
COLUMNS = {"setting": "setting", "images": "images", "linf": "mean L-inf"}


class ToyData(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        x = images(1, 12, 12, seed=i)[0]
        return x, (x.sum(0) * 2).long().clamp(0, 4)


def evaluate(setting, x, labels, delay=0.0):
    time.sleep(delay)
    model = segmenter(num_classes=5, width=8, gain=10.0)
    eps = float(setting.split("=")[1]) / 255
    adv = ifgsm(model, x, labels, eps=eps, steps=3).adv
    with torch.no_grad():
        pred = model(adv).argmax(1)
    return [
        {"cm": metrics.confusion_matrix(p, t, 5).tolist(), "linf": (a - b).abs().max().item()}
        for p, t, a, b in zip(pred, labels, adv, x, strict=True)
    ]


def add_arguments(parser):
    shared_arguments(
        parser, NAME, images=10, images_help="(the toy data has 10)", batch_size=3, threads=1
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait a batch")


def plan(args, device):
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"pid-{harness.rank_and_world()[0]}").write_text(str(os.getpid()))
    return Plan(SETTINGS, ToyData(), lambda s, x, y: evaluate(s, x, y, delay=args.delay))


def table(summary, args):
    return [
        {"setting": s, "images": v["count"], "linf": sum(v["linf"]) / v["count"]}
        for s, v in summary.items()
    ]


def report(plan, summary, rows, args):
    return f"{len(rows)} settings", []


if __name__ == "__main__":
    from fastadv.cli import run_study

    sys.exit(run_study(sys.modules[__name__], sys.argv[1:]))
