"""What the registry says about a loaded model, and the one error it raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

SEGMENTATION = "segmentation"  # images [B, 3, H, W] -> logits [B, K, H, W]
CLASSIFICATION = "classification"  # images -> logits [B, K]
SCORES = "scores"  # images -> per-class scores in [0, 1] (the mind's-eye triple-staged network)
STAGE = "stage"  # one stage of a larger network; its inputs are not images alone

ATTRIBUTE = "fastadv_info"  # where `load` keeps a model's ModelInfo


class ModelError(ValueError):
    """A model argument that cannot be loaded; the message is one line that names it."""


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model's description, for summaries and class names.

    Attributes:
        name: display name, e.g. "fcn8s-synthcity" or "torchvision:resnet50 (IMAGENET1K_V2)".
        task: SEGMENTATION, CLASSIFICATION, SCORES, STAGE, or None when a user's factory did
            not say (its output's shape then tells: [B, K] or [B, K, H, W]).
        classes: the class names, in logit order, or None when unknown.
        synthetic: a shipped model trained on fastadv's synthetic scenes, not on photographs.
        source: where the weights came from (a file, the torch hub cache, a factory).
        metadata: what the weights record (e.g. the training command and validation mIoU).
    """

    name: str
    task: str | None
    classes: tuple[str, ...] | None = None
    synthetic: bool = False
    source: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def attach(model: nn.Module, info: ModelInfo) -> nn.Module:
    """`model`, carrying `info` (read back with `describe`)."""
    setattr(model, ATTRIBUTE, info)
    return model


def describe(model: nn.Module) -> ModelInfo:
    """The ModelInfo of a model from `fastadv.models.load`; for any other module, its class
    name with the task and classes unknown."""
    info = getattr(model, ATTRIBUTE, None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(name=type(model).__name__, task=None)
