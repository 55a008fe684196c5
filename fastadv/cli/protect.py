"""`fastadv protect`: Sweere et al.'s colour-variance protection of your photos from a scene
classifier (Algorithm 1), with any classifier.

Each photo is protected on its working copy (--max-side) from the class the model gives it;
the perturbation is written over the full-size photo, and the verdict (--condition) is the
model's on the written file (exit code 1 when a photo is not protected).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fastadv.cli import photo_jobs
from fastadv.cli.photo_jobs import size_text
from fastadv.experiments.study import model_line

HELP = "protect your photos from a scene classifier (Sweere et al.)"
# The attack's own tensors, in working images (fastadv.cli.memory): Adam's perturbation and
# moments, the bound, the colour-variance map's intermediates; 14 to 19 measured.
COPIES = 20
REENCODING = (
    "sites that re-encode uploads as JPEG, or resize them, can undo part of the protection "
    "(docs/protect.md)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fastadv.experiments.protect import add_algorithm_arguments

    p.add_argument("images", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument(
        "--condition", choices=["top1", "top5", "top1-50"], default="top1",
        help="protected when the photo's class is no longer first, no longer among the five "
        "first, or no longer first with at most half the new first's probability",
    )  # fmt: skip
    add_algorithm_arguments(p)
    photo_jobs.add_arguments(p, "scene-cnn", "a classifier")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fastadv.models import CLASSIFICATION

    found = photo_jobs.setup(args, CLASSIFICATION, "protected", COPIES)
    photo_jobs.prepare(args, found)
    photo_jobs.warn(REENCODING)
    print(
        f"{'image':28} {'size':>11} {'attack at':>11} {'before':24} {'after':24} "
        f"{'protected':>9} {'iter':>4}  output"
    )
    results = photo_jobs.each(found, lambda job: _protect_one(job, found, args))
    protected = results.count(True)
    failed = len(args.images) - len(results) + results.count(None)
    failures = f"; {failed} could not be read or written" if failed else ""
    print(
        f"{protected} of {len(args.images)} images protected ({args.condition}){failures}; "
        f"model: {model_line(found.info, photos=True)}"
    )
    return 0 if protected == len(args.images) else 1


def _protect_one(job, found, args) -> bool:
    from fastadv.attacks import color_variance_attack
    from fastadv.attacks.color_variance import condition_met
    from fastadv.experiments.protect import algorithm_settings

    def attack(net, x):
        return color_variance_attack(net, x, condition=args.condition, **algorithm_settings(args))

    done = photo_jobs.attack_photo(
        job, found.model, found.device, args.max_side, attack, args.steps + 2
    )
    classes = found.info.classes
    with torch.no_grad():
        before, after = done.net(done.x), done.net(done.held)
    protected = bool(condition_met(args.condition, after, done.result.labels)[0])
    print(
        f"{job.path.name[:28]:28} {size_text(job.size):>11} {size_text(job.work):>11} "
        f"{_top1(before, classes):24} {_top1(after, classes):24} "
        f"{'yes' if protected else 'NO':>9} {int(done.result.iterations[0]):>4}  {job.out}"
    )
    return protected


def _top1(logits: torch.Tensor, classes) -> str:
    p, k = logits.softmax(1)[0].max(0)
    return f"{classes[k] if classes else int(k)} ({p.item():.2f})"[:24]
