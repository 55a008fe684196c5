"""Model outputs as fastadv reads them: the logits out of what the networks of several
ecosystems return."""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Where a mapping keeps its logits: torchvision's segmentation models ("out", beside "aux"),
# HuggingFace's ModelOutput ("logits", beside "loss", "hidden_states", ...).
LOGIT_KEYS = ("out", "logits")


def logits_of(output) -> torch.Tensor:
    """Logits from a model output: a tensor; a mapping with "out" or "logits", or holding a
    single tensor; or an object with a `logits` attribute (HuggingFace style)."""
    if isinstance(output, Mapping):
        output = _from_mapping(output)
    elif not isinstance(output, torch.Tensor) and hasattr(output, "logits"):
        output = output.logits
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            "the model must return logits as a tensor, a mapping with 'out' or 'logits', or an "
            f"object with .logits; got {type(output).__name__}"
        )
    return output


def _from_mapping(output: Mapping):
    for key in LOGIT_KEYS:
        if key in output:
            return output[key]
    tensors = [v for v in output.values() if isinstance(v, torch.Tensor)]
    if len(tensors) != 1:
        raise ValueError(
            f"the model returned a mapping without 'out' or 'logits' and with {len(tensors)} "
            f"tensors, so its logits are ambiguous (keys: {list(output)})"
        )
    return tensors[0]
