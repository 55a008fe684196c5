"""Confusion-matrix IoU for segmentation (minimal; the public metrics live in fastadv.metrics)."""

from __future__ import annotations

import torch


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``C[t, p]`` = number of pixels of true class ``t`` predicted as ``p`` (int64 ``[K, K]``).

    Pixels whose target is ``ignore_index`` (or outside ``[0, K)``) are left out.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    target, pred = target.reshape(-1).long(), pred.reshape(-1).long()
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    flat = target[keep] * num_classes + pred[keep]
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def iou(conf: torch.Tensor) -> torch.Tensor:
    """Per-class ``IoU = TP / (TP + FP + FN)``; NaN where a class is never seen."""
    conf = conf.double()
    tp = conf.diagonal()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(conf: torch.Tensor) -> float:
    """Mean of the per-class IoUs over the classes that occur (``nanmean``)."""
    return float(iou(conf).nanmean())
