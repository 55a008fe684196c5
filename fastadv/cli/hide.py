"""`fastadv hide`: Fischer et al.'s class hiding on your photos, with any segmentation model.

Each photo is attacked on its working copy (--max-side); the perturbation is written over the
full-size photo, and the verdict is the model's on the written file: the share of the hidden
classes' pixels it no longer sees, against --min-hidden (exit code 1 when a photo falls short).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from fastadv.cli import photo_jobs
from fastadv.cli.photo_jobs import size_text, warn
from fastadv.errors import UsageError, require_extra
from fastadv.experiments.study import PIXEL_BUDGET, model_line, number_in

HELP = "hide classes from a segmentation model in your photos"
# The attack's own tensors, in working images (fastadv.cli.memory): the image, the adversarial
# image and the one being updated, the gradient, the target and the masks.
COPIES = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument(
        "--classes", nargs="+", default=["person"],
        help="the classes to hide: the model's own class names ('person' is 11 in the shipped "
        "models' Cityscapes classes, 15 in torchvision's VOC classes) or ids",
    )  # fmt: skip
    p.add_argument(
        "--eps", type=PIXEL_BUDGET, default=10,
        help="L-inf budget in pixel units: 1 is one grey level of 255",
    )  # fmt: skip
    p.add_argument(
        "--restrict", choices=["after", "during"], default=None,
        help="noise on the hidden pixels only, cut out after the attack or kept there during "
        "it (default: on the whole photo)",
    )  # fmt: skip
    p.add_argument(
        "--min-hidden", type=number_in(0, 1, above=True), default=0.9,
        help="success: the share of the hidden classes' pixels the model no longer sees in "
        "the written photo; a photo that falls short makes the exit code 1",
    )  # fmt: skip
    photo_jobs.add_arguments(p, "fcn8s-synthcity", "a segmentation model")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fastadv.models import SEGMENTATION

    require_extra("studies")  # the panels; before the work
    if args.eps < 1:
        warn(
            f"--eps {args.eps:g} is in pixel units (1 = one grey level of 255); for a budget "
            f"of {args.eps:g} of the range give --eps {args.eps * 255:g}"
        )
    found = photo_jobs.setup(args, SEGMENTATION, "hidden", COPIES)
    names = found.info.classes
    classes = class_ids(args.classes, names, found.logits[1], args.model)
    photo_jobs.prepare(args, found)
    shown = ", ".join(names[k] if names is not None else f"class {k}" for k in classes)
    print(f"{'image':32} {'size':>11} {'attack at':>11} {'hidden':>14} {'iter':>5}  output")
    results = photo_jobs.each(found, lambda job: _hide_one(job, found, classes, shown, args))
    showing = [hidden for hidden in results if hidden is not None and not math.isnan(hidden)]
    met = sum(hidden >= args.min_hidden for hidden in showing)
    absent = sum(hidden is not None and math.isnan(hidden) for hidden in results)
    parts = []
    if showing or not absent:
        parts.append(
            f"{met} of {len(showing)} images that show {shown} have at least "
            f"{args.min_hidden:.0%} of those pixels hidden at eps {args.eps:g}"
        )
    if absent:
        parts.append(f"{absent} show no {shown} (nothing written)")
    failed = len(args.images) - len(showing) - absent
    if failed:
        parts.append(f"{failed} could not be read or written")
    print(f"{'; '.join(parts)}; model: {model_line(found.info, photos=True)}")
    return 0 if met == len(showing) and not failed else 1


def _hide_one(job, found, classes, names, args) -> float:
    """The share of the classes' pixels hidden in the file written. Nothing is written when
    the model sees none of them (NaN) or nothing else (0: no other class can take over)."""
    from fastadv.attacks import hide_classes, kurakin_steps
    from fastadv.experiments.panels import hide_panel
    from fastadv.metrics import hidden_fraction
    from fastadv.photos import free_path

    def attack(net, x):
        return hide_classes(net, x, classes, args.eps / 255, restrict=args.restrict)

    done = photo_jobs.attack_photo(
        job, found.model, found.device, args.max_side, attack, kurakin_steps(args.eps / 255) + 1,
        keep=lambda result: bool(result.hidden.any()) and not bool(result.hidden.all()),
    )  # fmt: skip
    result = done.result
    sizes = f"{job.path.name[:32]:32} {size_text(job.size):>11} {size_text(job.work):>11}"
    if done.held is None:
        whole = bool(result.hidden.all())
        why = (
            f"every pixel is {names}: no other class can take over"
            if whole
            else f"none: the model sees no {names} to hide"
        )
        print(f"{sizes} {'-':>14} {0:>5}  {why}")
        return 0.0 if whole else math.nan
    with torch.no_grad():
        after = done.net(done.held).argmax(1)
    hidden = hidden_fraction(result.clean_pred, after, classes)[0].item()
    panel = free_path(job.out.with_name(f"{job.path.stem}_panel.png"))
    hide_panel(
        done.x[0], done.held[0], result.target[0], result.clean_pred[0], after[0], panel,
        title=f"{job.path.name} at {size_text(job.work)}", classes=found.info.classes,
    )  # fmt: skip
    met = hidden >= args.min_hidden
    shown = f"{hidden:.1%}" + ("" if met else " (short)")
    print(f"{sizes} {shown:>14} {int(result.iterations[0]):>5}  {job.out}")
    return hidden


def class_ids(wanted, names, count: int, model: str) -> list[int]:
    """The ids of `wanted` (the model's class names, or ids below `count`); a name or id the
    model does not have is a UsageError that lists the valid ones."""
    ids = []
    for item in wanted:
        text = str(item)
        if text.lstrip("-").isdigit():
            ids.append(int(text))
        elif names is not None and text in names:
            ids.append(names.index(text))
        elif names is not None and text.lower() in (lowered := [n.lower() for n in names]):
            ids.append(lowered.index(text.lower()))
        else:
            ids.append(None)
        if ids[-1] is None or not 0 <= ids[-1] < count:
            raise UsageError(f"--classes {text}: {_valid_classes(names, count, model)}")
    return ids


def _valid_classes(names, count: int, model: str) -> str:
    if names is None:
        return f"{model} names no classes; give ids 0 to {count - 1}"
    listed = ", ".join(f"{k} {name}" for k, name in enumerate(names))
    return f"{model} has {count} classes: {listed}"
