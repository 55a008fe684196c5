"""Figures: matplotlib for files, and the Fig. 1-like view of one hidden image."""

from __future__ import annotations

from pathlib import Path

import torch

from fastadv.errors import optional_import
from fastadv.experiments.palette import colorize, palette, palette_ids

LEGEND_ENTRIES = 12  # the classes with the most pixels; more would not be legible


def pyplot():
    """matplotlib.pyplot on its file-only backend (Agg): the studies write figures, never
    show them. A MissingExtra when matplotlib is not installed."""
    optional_import("matplotlib").use("Agg")
    return optional_import("matplotlib.pyplot")


def hide_panel(
    x, adv, target, pred_before, pred_after, path: Path, title: str = "", classes=None
) -> Path:
    """Original, adversarial, noise (amplified), target; predictions before and after, the
    pixels whose prediction changed, and a legend of the classes shown. x, adv: [3, H, W]; the
    rest: [H, W] label maps; `classes`: the model's class names (None: unknown)."""
    plt = pyplot()
    colors = palette(classes)
    noise = adv - x
    scale = max(noise.abs().max().item(), 1e-12)
    tiles = [
        ("original", x),
        ("adversarial", adv),
        (f"noise (x{0.5 / scale:.0f})", 0.5 + 0.5 * noise / scale),
        ("target", colorize(target, colors)),
        ("prediction, original", colorize(pred_before, colors)),
        ("prediction, adversarial", colorize(pred_after, colors)),
        ("changed", (pred_before != pred_after).float().expand(3, -1, -1)),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(14, 14 * x.shape[1] / x.shape[2] / 2 + 0.8))
    for ax, (name, image) in zip(axes.flat, tiles, strict=False):
        ax.imshow(image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    _legend(axes.flat[-1], (target, pred_before, pred_after), classes, colors)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _legend(ax, label_maps, classes, colors) -> None:
    """The classes of `label_maps` with the most pixels, in `colors`, on `ax`."""
    from matplotlib.patches import Patch

    counts = torch.bincount(
        torch.cat([palette_ids(m).flatten() for m in label_maps]), minlength=256
    )
    known = 256 if classes is None else len(classes)
    shown = [k for k in counts.argsort(descending=True).tolist() if counts[k] and k < known]
    handles = [
        Patch(color=colors[k].tolist(), label=f"class {k}" if classes is None else classes[k])
        for k in shown[:LEGEND_ENTRIES]
    ]
    ax.legend(handles=handles, loc="center", fontsize=8, frameon=False, title="classes")


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[3, H, W] in [0, 1] -> [H, W, 3] uint8, rounded (the lossless PNG's pixels)."""
    return (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
