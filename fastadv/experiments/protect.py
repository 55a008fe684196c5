"""Sweere et al.'s Table 1 on SynthScenes, and their Fig. 1-like panel.

The five submitted runs (Top1-L1, Top1-L1-50, Top1-noL1, Top5-L1, Top5-noL1) protect each val
image from the scene classifier with Algorithm 1; c0 is the ground-truth label, as in the
paper. Per run: top-1 and top-5 accuracy after protection, SSIM and mean CIEDE2000 against the
original, L-inf in pixel units, success rate, Adam iterations and seconds per image. Runs
prefixed "uniform:" replace the colour-variance bound by a uniform one of equal mean budget.

    fastadv experiment protect --out runs/protect --images 96 --size 128
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import torch

from fastadv import metrics
from fastadv.attacks import color_variance_attack
from fastadv.data.scenes import SynthScenes
from fastadv.experiments.panels import pyplot, to_uint8
from fastadv.experiments.study import (
    MODEL_HELP,
    SYNTHETIC_MIN_SIDE,
    Plan,
    load_model,
    number_in,
    positive_int,
    shared_arguments,
)
from fastadv.ops import color_variance

NAME = "protect"
HELP = "Sweere et al.: Table 1 of colour-variance protection"
RECORDS = "records"  # where the study kept its records before it had a NAME folder

RUNS = {  # name: (condition, uses the L1 term)
    "Top1-L1": ("top1", True),
    "Top1-L1-50": ("top1-50", True),
    "Top1-noL1": ("top1", False),
    "Top5-L1": ("top5", True),
    "Top5-noL1": ("top5", False),
}
THEIRS = {  # their Table 1 on Places365 (ResNet-50): top-1, top-5 accuracy, SSIM
    "Original": (1.00, 1.00, 1.00),
    "Top1-L1": (0.00, 0.99, 0.9994),
    "Top1-L1-50": (0.00, 0.93, 0.9992),
    "Top1-noL1": (0.00, 0.52, 0.9975),
    "Top5-L1": (0.00, 0.00, 0.9614),
    "Top5-noL1": (0.00, 0.00, 0.8955),
}
COLUMNS = {
    "run": "run",
    "images": "images",
    "top1_acc": "top-1 acc.",
    "top5_acc": "top-5 acc.",
    "ssim": "SSIM",
    "delta_e": "mean ΔE00",
    "linf_px": "L∞ (px)",
    "success": "success",
    "iterations": "iterations",
    "seconds": "s / image",
    "their_top1": "theirs: top-1",
    "their_top5": "theirs: top-5",
    "their_ssim": "theirs: SSIM",
}


class QuantisedScenes:
    """SynthScenes val images rounded to the uint8 grid (as decoded photos are), with tensor
    labels for the harness."""

    def __init__(self, images: int, size: int):
        self.scenes = SynthScenes("val", images, size)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int):
        image, label = self.scenes[i]
        return (image * 255).round() / 255, torch.tensor(label)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    shared_arguments(
        parser, NAME, images=96, images_help="SynthScenes val images",
        size=(128, 128), square=True, min_size=SYNTHETIC_MIN_SIDE, batch_size=16, threads=1,
    )  # fmt: skip
    parser.add_argument(
        "--model", default="scene-cnn",
        help=f"{MODEL_HELP}; a classifier of SynthScenes' classes, the labels it is scored on",
    )  # fmt: skip
    add_algorithm_arguments(parser)


def plan(args: argparse.Namespace, device) -> Plan:
    from fastadv.data.scenes import CLASSES
    from fastadv.models import CLASSIFICATION, describe

    model = load_model("--model", args.model, device, task=CLASSIFICATION, classes=CLASSES)
    classes = describe(model).classes
    dataset = QuantisedScenes(args.images, args.size[0])
    attack_kwargs = algorithm_settings(args)
    return Plan(
        settings(),
        dataset,
        make_evaluate(model, attack_kwargs),
        {
            "model": model,
            "classes": classes,
            "dataset": dataset,
            "attack_kwargs": attack_kwargs,
            "device": device,
        },
        models=[model],
    )


def settings(runs=tuple(RUNS), uniform=("Top1-L1", "Top5-L1")) -> list[str]:
    return ["Original", *runs, *(f"uniform:{r}" for r in uniform)]


def make_evaluate(model, attack_kwargs: dict):
    """The harness's evaluate: one color_variance_attack a batch, metrics per image."""

    def evaluate(setting, images, labels):
        start = time.perf_counter()
        if setting == "Original":
            adv, success, iterations = images, torch.zeros_like(labels, dtype=torch.bool), None
        else:
            result = _attack(model, images, labels, setting, attack_kwargs)
            adv, success, iterations = result.adv, result.success, result.iterations
        seconds = (time.perf_counter() - start) / images.shape[0]
        with torch.no_grad():
            top5 = model(adv).topk(5, dim=1).indices
        ssim = metrics.ssim(adv, images)
        delta_e = metrics.mean_delta_e2000(adv, images)
        linf = (adv - images).flatten(1).abs().amax(1) * 255
        return [
            {
                "top1": float(top5[i, 0] == labels[i]),
                "top5": float((top5[i] == labels[i]).any()),
                "ssim": ssim[i].item(),
                "delta_e": delta_e[i].item(),
                "linf_px": linf[i].item(),
                "success": float(success[i]),
                "iterations": 0 if iterations is None else int(iterations[i]),
                "seconds": seconds,
            }
            for i in range(images.shape[0])
        ]

    return evaluate


def _attack(model, images, labels, setting, attack_kwargs):
    bound, name = ("uniform", setting[8:]) if setting.startswith("uniform:") else ("", setting)
    condition, l1 = RUNS[name]
    kwargs = dict(attack_kwargs, condition=condition)
    if not l1:
        kwargs["l1_weight"] = 0.0
    torch.manual_seed(0)  # the random start of Algorithm 1, the same for every run
    return color_variance_attack(model, images, labels, bound=bound or "color_variance", **kwargs)


def table(summary: dict[str, dict], args: argparse.Namespace) -> list[dict]:
    """One row a run: means over images, and their Table 1 figures beside ours."""
    rows = []
    for setting, s in summary.items():
        mean = {k: sum(s[k]) / len(s[k]) for k in ("top1", "top5", "ssim", "delta_e", "seconds")}
        theirs = THEIRS.get(setting, (float("nan"),) * 3)
        rows.append(
            {
                "run": setting,
                "images": s["count"],
                "top1_acc": mean["top1"],
                "top5_acc": mean["top5"],
                "ssim": mean["ssim"],
                "delta_e": mean["delta_e"],
                "linf_px": max(s["linf_px"]),
                "success": sum(s["success"]) / s["count"],
                "iterations": sum(s["iterations"]) / s["count"],
                "seconds": mean["seconds"],
                "their_top1": theirs[0],
                "their_top5": theirs[1],
                "their_ssim": theirs[2],
            }
        )
    return rows


def panel(model, classes, image, label, attack_kwargs, path: Path) -> Path:
    """Their Fig. 1 for one image: original, colour-variance map, then per condition the
    protected image (top-2 labels and probabilities under each) and its perturbation x20."""
    plt = pyplot()
    x, y = image[None], torch.tensor([label], device=image.device)
    runs = ("Top1-L1", "Top1-L1-50", "Top5-L1")
    advs = [_attack(model, x, y, run, attack_kwargs).adv for run in runs]
    fig, axes = plt.subplots(2, 1 + len(runs), figsize=(3.2 * (1 + len(runs)), 8))
    cv = color_variance(x)[0, 0].cpu()
    tiles = [("original", x, axes[0, 0]), ("colour variance", cv, axes[1, 0])]
    tiles += [
        (run, adv, axes[0, i + 1]) for i, (run, adv) in enumerate(zip(runs, advs, strict=True))
    ]
    for ax_tile in tiles:
        _show(model, classes, *ax_tile)
    for i, (run, adv) in enumerate(zip(runs, advs, strict=True)):
        ax = axes[1, i + 1]
        ax.imshow(to_uint8((0.5 + 20 * (adv - x))[0]).numpy())
        ax.set_title(f"{run}: perturbation x20", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _show(model, classes, title, image, ax) -> None:
    """One tile; images get their top-2 labels and probabilities underneath."""
    if image.dim() == 2:
        ax.imshow(image.numpy(), cmap="magma")
    else:
        ax.imshow(to_uint8(image[0]).numpy())
        with torch.no_grad():
            p, k = model(image).softmax(1)[0].topk(2)
        ax.set_xlabel("\n".join(f"{classes[j]}: {q:.3f}" for q, j in zip(p, k, strict=True)))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def report(plan: Plan, summary: dict, rows: list[dict], args: argparse.Namespace):
    """Their Fig. 1 for the first image."""
    c = plan.context
    image, label = c["dataset"][0]
    path = panel(c["model"], c["classes"], image.to(c["device"]), int(label), c["attack_kwargs"],
                 args.out / "panel.png")  # fmt: skip
    text = (
        f"{rows[0]['images']} SynthScenes val images at {args.size[0]} px; the last three "
        "columns are Sweere et al.'s Table 1 (Places365, ResNet-50)."
    )
    return text, [path]


def add_algorithm_arguments(p: argparse.ArgumentParser) -> None:
    """Algorithm 1's settings as options, with color_variance_attack's own (measured)
    defaults, read from its signature so that they live in one place."""
    defaults = inspect.signature(color_variance_attack).parameters
    for name, kind, text in (
        ("multiplier", number_in(0, 1, above=True), MULTIPLIER_HELP),
        ("l1_weight", number_in(0), "alpha, the weight of the L1 term"),
        ("steps", positive_int, "T, the most Adam updates"),
        ("lr", number_in(0.5 / 255, 1, above=True), LR_HELP),
    ):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=kind, default=defaults[name].default, help=text)


MULTIPLIER_HELP = (
    "m in pT = m * cV: each pixel may move by at most m times its colour variance cV, which "
    "is 1 at the image's most varied pixel, so m is the largest change there as a share of "
    "the full range; in (0, 1]: above 1 nothing is bounded any more and the picture is lost "
    "(m = 1000 moved pixels by 254 grey levels). Sweere et al. use 0.1-0.2; docs/protect.md "
    "has the measured sweep"
)
LR_HELP = (
    "Adam's learning rate, in (1/510, 1]: an update of half a grey level or less is undone "
    "by the rounding to the grey levels"
)


def algorithm_settings(args: argparse.Namespace) -> dict:
    """The settings of add_algorithm_arguments, as color_variance_attack's keyword arguments."""
    return {name: getattr(args, name) for name in ("multiplier", "l1_weight", "steps", "lr")}
