"""Fischer et al.'s class-hiding study: hide every person pixel at each eps, with the noise on
the full image, or restricted to the person pixels after or during the attack; mean and std
over the images that show persons of the % of person pixels hidden and of background pixels
preserved (their Fig. 2), on the first images of SynthCity's val split.

    fastadv experiment hide --images 12 --size 256 512 --out runs/hide
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from fastadv import metrics
from fastadv.attacks import hide_classes
from fastadv.errors import UsageError
from fastadv.experiments.panels import hide_panel, pyplot
from fastadv.experiments.study import MODEL_HELP, Plan, load_model, synthcity_arguments

NAME = "hide"
HELP = "Fischer et al.: hiding persons vs eps (their Fig. 2)"
EPS_PX = (1, 2, 4, 6, 8, 10, 12, 16, 20)
MODES = {"full": None, "after": "after", "during": "during"}
PERSON = 11  # Cityscapes trainId
HEADLINE = {"eps_px": 10, "hidden": 0.85, "preserved": 0.97}  # their Cityscapes figures
COLUMNS = {
    "mode": "noise",
    "eps_px": "eps",
    "images": "images",
    "hidden_mean": "hidden",
    "hidden_std": "± std",
    "preserved_mean": "preserved",
    "preserved_std": "± std",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    synthcity_arguments(parser, NAME, EPS_PX)
    parser.add_argument(
        "--modes", nargs="+", choices=list(MODES), default=list(MODES),
        help="noise on the full image, or restricted to the persons after or during the attack",
    )  # fmt: skip
    parser.add_argument("--model", default="fcn8s-synthcity", help=MODEL_HELP)


def plan(args: argparse.Namespace, device) -> Plan:
    from fastadv.data import SynthCity
    from fastadv.models import SEGMENTATION

    model = load_model("--model", args.model, device, task=SEGMENTATION)
    person = person_id(model, args.model)
    dataset = SynthCity("val", length=args.images, size=args.size)
    return Plan(
        settings(args.eps, args.modes),
        dataset,
        make_evaluate(model, (person,)),
        {"model": model, "dataset": dataset, "device": device, "person": person},
        models=[model],
    )


def person_id(model, name: str) -> int:
    """The model's own id of "person" (11 in Cityscapes' classes, 15 in VOC's); PERSON for a
    model that names no classes."""
    from fastadv.models import describe

    classes = describe(model).classes
    if classes is None:
        return PERSON
    if "person" not in classes:
        raise UsageError(f"--model {name}: has no class 'person' to hide")
    return classes.index("person")


def settings(eps_px=EPS_PX, modes=tuple(MODES)) -> list[str]:
    return [f"{mode}/eps={eps:g}" for mode in modes for eps in eps_px]


def parse(setting: str) -> tuple[str, float]:
    mode, eps = setting.split("/eps=")
    return mode, float(eps)


def make_evaluate(model, classes=(PERSON,)):
    """The harness's evaluate: one hide_classes run a batch, Kurakin's schedule, alpha = 1."""

    def evaluate(setting, images, labels):
        mode, eps_px = parse(setting)
        result = hide_classes(
            model,
            images,
            list(classes),
            eps_px / 255,
            restrict=MODES[mode],
            early_stop=False,
            evaluate=False,  # the prediction on the result is taken below
        )
        with torch.no_grad():
            adv_pred = model(result.adv).argmax(1)
        hidden = metrics.hidden_fraction(result.clean_pred, adv_pred, classes)
        preserved = metrics.preserved_fraction(result.clean_pred, adv_pred, classes)
        records = []
        for i in range(images.shape[0]):
            record = {
                "preserved": preserved[i].item(),
                "iterations": result.iterations[i].item(),
                "linf_px": 255 * result.linf[i].item(),
            }
            if not math.isnan(hidden[i].item()):  # images without persons have nothing to hide
                record["hidden"] = hidden[i].item()
            records.append(record)
        return records

    return evaluate


def table(summary: dict[str, dict], args: argparse.Namespace) -> list[dict]:
    """One row a setting: mode, eps, and over the images that show persons (the others have
    nothing to hide) their number and the mean and std of hidden and preserved."""
    rows = []
    for setting, s in summary.items():
        mode, eps = parse(setting)
        nan = [math.nan] * s["count"]
        hidden = torch.tensor(s.get("hidden", nan), dtype=torch.float64)
        shows = ~hidden.isnan()
        preserved = torch.tensor(s.get("preserved", nan), dtype=torch.float64)[shows]
        row = {"mode": mode, "eps_px": eps, "images": int(shows.sum())}
        for field, values in (("hidden", hidden[shows]), ("preserved", preserved)):
            row[f"{field}_mean"] = values.mean().item() if values.numel() else math.nan
            row[f"{field}_std"] = values.std(unbiased=False).item() if values.numel() else math.nan
        rows.append(row)
    return rows


def headline(rows: list[dict]) -> dict:
    """Full-image noise at their eps (10), and the smallest eps reaching their figures."""
    full = sorted((r for r in rows if r["mode"] == "full"), key=lambda r: r["eps_px"])
    reached = [
        r
        for r in full
        if r["hidden_mean"] >= HEADLINE["hidden"] and r["preserved_mean"] >= HEADLINE["preserved"]
    ]
    at_ten = next((r for r in full if r["eps_px"] == HEADLINE["eps_px"]), None)
    return {"at_eps_10": at_ten, "smallest_eps": reached[0]["eps_px"] if reached else None}


def headline_text(head: dict) -> str:
    """headline() in a sentence."""
    at, first = head["at_eps_10"], head["smallest_eps"]
    parts = []
    if at is not None:
        parts.append(
            f"at eps 10 with noise on the full image, {at['hidden_mean']:.1%} of the person "
            f"pixels hidden and {at['preserved_mean']:.1%} of the background preserved "
            f"({at['images']} images that show persons)"
        )
    parts.append(
        f"smallest eps reaching both figures: {first:g}"
        if first is not None
        else "no eps reaches both figures"
    )
    return "; ".join(parts) + "."


def plot(rows: list[dict], path: Path) -> Path:
    """Their Fig. 2: mean +- std of hidden (dark red) and preserved (grey) per eps, per mode."""
    plt = pyplot()

    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(
        1, len(modes), figsize=(4.2 * len(modes), 3.4), sharey=True, squeeze=False
    )
    for ax, mode in zip(axes[0], modes, strict=True):
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["eps_px"])
        eps = [r["eps_px"] for r in mine]
        for field, colour, label in (
            ("preserved", "0.6", "background preserved"),
            ("hidden", "darkred", "person pixels hidden"),
        ):
            mean = torch.tensor([r[f"{field}_mean"] for r in mine]) * 100
            std = torch.tensor([r[f"{field}_std"] for r in mine]) * 100
            ax.plot(eps, mean, color=colour, marker="o", label=label)
            ax.fill_between(eps, mean - std, mean + std, color=colour, alpha=0.25)
        ax.set_title(
            {
                "full": "noise on the full image",
                "after": "restricted after the attack",
                "during": "restricted during the attack",
            }[mode]
        )
        ax.set_xlabel("eps (pixel units)")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("%")
    axes[0][0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(plan: Plan, summary: dict, rows: list[dict], args: argparse.Namespace):
    """Their Fig. 2 and Fig. 1; the headline."""
    files = [plot(rows, args.out / "hide_fig2.png"), example(plan, args.out / "hide_fig1.png")]
    return f"headline: {headline_text(headline(rows))}", files


def example(plan: Plan, path: Path) -> Path:
    """Their Fig. 1 for the first image that shows a person, at eps 10."""
    from fastadv.models import describe

    model, dataset = plan.context["model"], plan.context["dataset"]
    for i in range(len(dataset)):
        x = dataset[i][0][None].to(plan.context["device"])
        result = hide_classes(model, x, plan.context["person"], 10 / 255, early_stop=False)
        if result.hidden.any():
            with torch.no_grad():
                after = model(result.adv).argmax(1)
            return hide_panel(
                x[0], result.adv[0], result.target[0], result.clean_pred[0], after[0], path,
                title=f"SynthCity val {i}, eps 10", classes=describe(model).classes,
            )  # fmt: skip
    raise UsageError("no image with a person in the chosen images; give more --images")
