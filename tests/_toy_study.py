"""A small real study for the harness tests: I-FGSM on a seeded segmenter, a confusion
matrix and a few per-image values a record. Run as a script it evaluates into argv[1],
slowly, so that a test can kill it mid-way."""

import sys
import time

import torch
from _models import images, segmenter

from fastadv import metrics
from fastadv.attacks import ifgsm
from fastadv.experiments import harness

SETTINGS = ["ifgsm/eps=2", "ifgsm/eps=8"]


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


if __name__ == "__main__":
    torch.set_num_threads(1)
    harness.run(
        SETTINGS,
        ToyData(),
        lambda s, x, y: evaluate(s, x, y, delay=0.3),
        sys.argv[1],
        batch_size=3,
        progress=False,
    )
