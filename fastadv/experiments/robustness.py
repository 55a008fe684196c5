"""Arnab et al.'s robustness study: FGSM, FGSM-ll, I-FGSM and I-FGSM-ll at each eps against
segmentation models, plain, with multiscale processing and with a dense CRF; the measure is
the IoU ratio, adversarial mIoU / clean mIoU against the ground truth, on the first images of
SynthCity's val split.

    fastadv experiment robustness --images 6 --variants plain multiscale --out runs/rob
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fastadv import metrics
from fastadv.attacks import fgsm, ifgsm
from fastadv.experiments.panels import pyplot
from fastadv.experiments.study import MODEL_HELP, Plan, load_model, synthcity_arguments

NAME = "robustness"
HELP = "Arnab et al.: IoU ratio vs eps, plain / MultiScale / DenseCRF"
EPS_PX = (0.25, 0.5, 1, 2, 4, 8, 16, 32)
ATTACKS = ("fgsm", "fgsm-ll", "ifgsm", "ifgsm-ll")
VARIANTS = ("plain", "multiscale", "crf")
CRF_MODES = ("dense", "window")  # fully connected (permutohedral), or on crf_window^2 windows
NUM_CLASSES = 19
COLUMNS = {
    "model": "model",
    "variant": "variant",
    "attack": "attack",
    "eps_px": "eps",
    "clean_miou": "clean mIoU",
    "miou": "mIoU",
    "iou_ratio": "IoU ratio",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    synthcity_arguments(parser, NAME, EPS_PX)
    parser.add_argument(
        "--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS), help="attacks to run"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
        help="the models alone, with multiscale processing, followed by a DenseCRF",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", default=["fcn8s-synthcity", "deeplab-synthcity"],
        help=f"each {MODEL_HELP}, of Cityscapes' 19 classes (the ground truth)",
    )  # fmt: skip
    parser.add_argument(
        "--crf", choices=CRF_MODES, default="dense",
        help="the DenseCRF fully connected (permutohedral lattice, as Arnab et al.'s CRF-RNN) or "
        "on a local window",
    )  # fmt: skip
    parser.add_argument(
        "--crf-window", type=int, default=11, help="side of the window with --crf window"
    )


def plan(args: argparse.Namespace, device) -> Plan:
    from fastadv.data import SynthCity
    from fastadv.data.cityscapes import CLASS_NAMES
    from fastadv.models import SEGMENTATION

    models = {
        model_key(name): load_model(
            "--models", name, device, task=SEGMENTATION, classes=CLASS_NAMES
        )
        for name in args.models
    }
    return Plan(
        settings(models, args.variants, args.attacks, args.eps),
        SynthCity("val", length=args.images, size=args.size),
        make_evaluate(models, args.crf_window, args.crf),
        models=list(models.values()),
    )


def model_key(name: str) -> str:
    """What a model's settings and rows are called: a shipped name less "-synthcity", a weight
    file's name less its folder and suffix (a "/" would split the setting)."""
    if name.endswith(".safetensors"):
        return Path(name).stem
    return name.removesuffix("-synthcity")


def defended(model, variant: str, crf_window: int = 11, crf: str = "dense"):
    """The model as attacked and evaluated: plain, MultiScale (scales 0.5, 0.75, 1; mean) or
    followed by a DenseCRF (pydensecrf's defaults, 5 iterations), fully connected as in Arnab et
    al.'s CRF-RNN (crf="dense") or on a crf_window^2 window (crf="window")."""
    from fastadv.models import CRFModel, DenseCRF, MultiScale

    if crf not in CRF_MODES:
        raise ValueError(f"crf must be one of {CRF_MODES}, got {crf!r}")
    if variant == "multiscale":
        return MultiScale(model)
    if variant == "crf":
        return CRFModel(model, DenseCRF(window=crf_window if crf == "window" else None))
    return model


def settings(models, variants=VARIANTS, attacks=ATTACKS, eps_px=EPS_PX) -> list[str]:
    out = []
    for name in models:
        for variant in variants:
            out.append(f"{name}/{variant}/clean")
            out += [
                f"{name}/{variant}/{attack}/eps={eps:g}" for attack in attacks for eps in eps_px
            ]
    return out


def parse(setting: str):
    """(model, variant, attack or "clean", eps_px or None)."""
    parts = setting.split("/")
    if parts[2] == "clean":
        return parts[0], parts[1], "clean", None
    return parts[0], parts[1], parts[2], float(parts[3].removeprefix("eps="))


def attack(model, images, labels, name: str, eps: float) -> torch.Tensor:
    """Untargeted against the ground truth, or towards the least likely class per pixel
    (recomputed every iteration); I-FGSM with alpha = 1/255 and Kurakin's schedule."""
    kw = {"least_likely": name.endswith("-ll"), "eps": eps, "evaluate": False}
    gt = None if kw["least_likely"] else labels
    if name.startswith("fgsm"):
        return fgsm(model, images, gt, **kw).adv
    return ifgsm(model, images, gt, alpha=min(1 / 255, eps), **kw).adv


def make_evaluate(models: dict, crf_window: int = 11, crf: str = "dense"):
    """The harness's evaluate: a confusion matrix an image, against the ground truth."""
    cache = {}

    def evaluate(setting, images, labels):
        name, variant, attack_name, eps_px = parse(setting)
        key = (name, variant)
        if key not in cache:
            cache[key] = defended(models[name], variant, crf_window, crf).eval()
        model = cache[key]
        x = (
            images
            if attack_name == "clean"
            else attack(model, images, labels, attack_name, eps_px / 255)
        )
        with torch.no_grad():
            pred = model(x).argmax(1)
        return [
            {"cm": metrics.confusion_matrix(p, t, NUM_CLASSES).tolist()}
            for p, t in zip(pred, labels, strict=True)
        ]

    return evaluate


def table(summary: dict[str, dict], args: argparse.Namespace) -> list[dict]:
    """One row a (model, variant, attack, eps): mIoU and the IoU ratio to the clean mIoU."""
    clean = {}
    for setting, s in summary.items():
        name, variant, attack_name, _ = parse(setting)
        if attack_name == "clean" and "cm" in s:
            clean[(name, variant)] = metrics.mean_iou(s["cm"])
    rows = []
    for setting, s in summary.items():
        name, variant, attack_name, eps = parse(setting)
        if attack_name == "clean" or "cm" not in s:
            continue
        miou = metrics.mean_iou(s["cm"])
        base = clean.get((name, variant), float("nan"))
        rows.append(
            {
                "model": name,
                "variant": variant,
                "attack": attack_name,
                "eps_px": eps,
                "images": s["count"],
                "clean_miou": base,
                "miou": miou,
                "iou_ratio": metrics.iou_ratio(miou, base),
            }
        )
    return rows


def plot(rows: list[dict], path: Path) -> Path:
    """IoU ratio vs eps (log scale), one panel an attack, one line a model and variant."""
    plt = pyplot()

    attacks = [a for a in ATTACKS if any(r["attack"] == a for r in rows)]
    fig, axes = plt.subplots(
        1, len(attacks), figsize=(4 * len(attacks), 3.4), sharey=True, squeeze=False
    )
    lines = sorted({(r["model"], r["variant"]) for r in rows})
    styles = {"plain": "-", "multiscale": "--", "crf": ":"}
    for ax, attack_name in zip(axes[0], attacks, strict=True):
        for model, variant in lines:
            mine = sorted(
                (
                    r
                    for r in rows
                    if (r["model"], r["variant"], r["attack"]) == (model, variant, attack_name)
                ),
                key=lambda r: r["eps_px"],
            )
            ax.plot(
                [r["eps_px"] for r in mine],
                [r["iou_ratio"] for r in mine],
                styles.get(variant, "-"),
                marker="o",
                label=f"{model} {variant}",
            )
        ax.set_xscale("log", base=2)
        ax.set_title(attack_name.upper().replace("-LL", " least-likely"))
        ax.set_xlabel("eps (pixel units)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("IoU ratio (adversarial / clean)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def reading(rows: list[dict], eps_px: float = 8) -> str:
    """A short reading of the numbers: what multiscale and the CRF do to the IoU ratio, next to
    Arnab et al.'s claim that both act as defences."""
    lines = []
    at = [r for r in rows if r["eps_px"] == eps_px]
    for model in sorted({r["model"] for r in at}):
        for attack_name in ATTACKS:
            ratio = {
                r["variant"]: r["iou_ratio"]
                for r in at
                if (r["model"], r["attack"]) == (model, attack_name)
            }
            if "plain" not in ratio:
                continue
            parts = [f"{v} {ratio[v]:.2f}" for v in VARIANTS if v in ratio]
            verdicts = [
                f"{v} {'raises' if ratio[v] > ratio['plain'] else 'does not raise'} it"
                for v in ("multiscale", "crf")
                if v in ratio
            ]
            lines.append(
                f"- {model}, {attack_name} at eps {eps_px:g}: IoU ratio {', '.join(parts)}; "
                + "; ".join(verdicts)
                + "."
            )
    claim = (
        "Arnab et al. report that multiscale processing and CRF mean-field inference act as "
        "defences, most of all against single-step attacks (FGSM), less against iterative ones."
    )
    return claim + "\n\n" + "\n".join(lines)


def report(plan: Plan, summary: dict, rows: list[dict], args: argparse.Namespace):
    """The IoU-ratio figure; the reading at eps 8 (else the largest eps run)."""
    eps = 8 if 8 in args.eps else max(args.eps)
    return reading(rows, eps), [plot(rows, args.out / "robustness.png")]
