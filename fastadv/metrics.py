"""Metrics of the four papers: segmentation (confusion matrix, IoU, hiding), classification
(top-k), and perceptual distance (SSIM, CIEDE2000, Berntsen's distortion).

Segmentation metrics take label maps [B, H, W]; pixels equal to `ignore_index` are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastadv.ops import delta_e2000, rgb_to_lab


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """int64 [K, K], rows the target class, columns the predicted class."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (
        t.min() < 0 or t.max() >= num_classes or p.min() < 0 or p.max() >= num_classes
    ):
        raise ValueError(f"class ids must lie in [0, {num_classes}) or equal ignore_index")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, -1)


def pixel_accuracy(cm: torch.Tensor) -> float:
    return (cm.diag().sum() / cm.sum().clamp_min(1)).item()


def per_class_iou(cm: torch.Tensor) -> torch.Tensor:
    """IoU = TP / (TP + FP + FN) per class; NaN for classes neither present nor predicted."""
    tp = cm.diag().double()
    union = cm.sum(0).double() + cm.sum(1).double() - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.nan)


def mean_iou(cm: torch.Tensor) -> float:
    """Mean over the classes that occur (in the target or the prediction)."""
    return per_class_iou(cm).nanmean().item()


def iou_ratio(adversarial_miou: float, clean_miou: float) -> float:
    """Arnab et al.'s robustness measure: adversarial mIoU / clean mIoU."""
    return adversarial_miou / clean_miou if clean_miou > 0 else float("nan")


def hidden_fraction(
    clean_pred: torch.Tensor, adv_pred: torch.Tensor, classes: Sequence[int]
) -> torch.Tensor:
    """Per image: of the pixels the clean prediction assigns to `classes`, the fraction the
    adversarial prediction assigns to none of them (NaN where there were none)."""
    classes_t = torch.as_tensor(list(classes), device=clean_pred.device)
    hidden = torch.isin(clean_pred, classes_t).flatten(1)
    gone = ~torch.isin(adv_pred, classes_t).flatten(1)
    count = hidden.sum(1)
    return torch.where(count > 0, (hidden & gone).sum(1) / count.clamp_min(1), torch.nan)


def preserved_fraction(
    clean_pred: torch.Tensor, adv_pred: torch.Tensor, classes: Sequence[int]
) -> torch.Tensor:
    """Per image: of the pixels the clean prediction assigns to other classes, the fraction
    whose prediction is unchanged."""
    classes_t = torch.as_tensor(list(classes), device=clean_pred.device)
    other = ~torch.isin(clean_pred, classes_t).flatten(1)
    same = (clean_pred == adv_pred).flatten(1)
    count = other.sum(1)
    return torch.where(count > 0, (other & same).sum(1) / count.clamp_min(1), torch.nan)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    if k > logits.shape[1]:
        raise ValueError(f"k={k} exceeds the {logits.shape[1]} classes")
    hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(1)
    return hit.float().mean().item()


def ssim(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, win_size: int = 7
) -> torch.Tensor:
    """Per image: mean structural similarity, as skimage.metrics.structural_similarity with
    its defaults (uniform win_size window, K1 = 0.01, K2 = 0.03, sample covariance, borders of
    (win_size - 1) / 2 left out) and the mean over channels (channel_axis)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"x and y must be [B, C, H, W] of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    if min(x.shape[2:]) < win_size:
        raise ValueError(f"images must be at least {win_size} pixels on each side")
    x, y = x.double(), y.double()
    c = x.shape[1]
    window = torch.full((c, 1, win_size, win_size), 1 / win_size**2, dtype=x.dtype, device=x.device)

    def mean(t):
        return F.conv2d(t, window, groups=c)

    n = win_size**2
    unbias = n / (n - 1)
    mx, my = mean(x), mean(y)
    vx = unbias * (mean(x * x) - mx * mx)
    vy = unbias * (mean(y * y) - my * my)
    vxy = unbias * (mean(x * y) - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def mean_delta_e2000(x: torch.Tensor, y: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Per image: mean CIEDE2000 difference between two sRGB images [B, 3, H, W] in [0, 1]."""
    return (
        delta_e2000(rgb_to_lab(x, backend=backend), rgb_to_lab(y, backend=backend), backend=backend)
        .flatten(1)
        .mean(1)
    )


def distortion(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Berntsen et al.'s distortion (1/255) sqrt(mean((x_adv - x)^2)) with pixels in 0..255,
    i.e. the root-mean-square difference of [0, 1] images; per image."""
    return (x_adv.double() - x.double()).flatten(1).pow(2).mean(1).sqrt()
