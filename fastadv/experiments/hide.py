"""Fischer et al.'s class-hiding study: hide every person pixel at each eps, with the noise on
the full image, or restricted to the person pixels after or during the attack; mean and std
over images of the % of person pixels hidden and of background pixels preserved (their Fig. 2).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from fastadv import metrics
from fastadv.attacks import hide_classes
from fastadv.experiments import harness

EPS_PX = (1, 2, 4, 6, 8, 10, 12, 16, 20)
MODES = {"full": None, "after": "after", "during": "during"}
PERSON = 11  # Cityscapes trainId
HEADLINE = {"eps_px": 10, "hidden": 0.85, "preserved": 0.97}  # their Cityscapes figures


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


def table(summary: dict[str, dict]) -> list[dict]:
    """One row a setting: mode, eps, images, mean and std of hidden and preserved."""
    rows = []
    for setting, s in summary.items():
        mode, eps = parse(setting)
        row = {"mode": mode, "eps_px": eps, "images": s["count"]}
        for field in ("hidden", "preserved"):
            values = torch.tensor(s.get(field, []), dtype=torch.float64)
            row[f"{field}_mean"] = values.mean().item() if values.numel() else float("nan")
            row[f"{field}_std"] = (
                values.std(unbiased=False).item() if values.numel() else float("nan")
            )
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
            f"({at['images']} images)"
        )
    parts.append(
        f"smallest eps reaching both figures: {first:g}"
        if first is not None
        else "no eps reaches both figures"
    )
    return "; ".join(parts) + "."


def plot(rows: list[dict], path: Path) -> Path:
    """Their Fig. 2: mean +- std of hidden (dark red) and preserved (grey) per eps, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def run(
    model,
    dataset,
    out_dir,
    *,
    eps_px=EPS_PX,
    modes=tuple(MODES),
    batch_size=4,
    device="cpu",
    progress=True,
):
    """Runs (or resumes) the study into out_dir; returns its table rows."""
    summary = harness.run(
        settings(eps_px, modes),
        dataset,
        make_evaluate(model),
        Path(out_dir) / "hide",
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    return table(summary)
