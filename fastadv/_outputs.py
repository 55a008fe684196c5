"""Model outputs as fastadv reads them."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def logits_of(output) -> torch.Tensor:
    """Logits from a model output: a tensor, or a mapping with "out" (torchvision's
    segmentation models)."""
    if isinstance(output, Mapping):
        if "out" not in output:
            raise ValueError(f"the model returned a mapping without 'out' (keys: {list(output)})")
        output = output["out"]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model must return logits as a tensor, got {type(output).__name__}")
    return output
