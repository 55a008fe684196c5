"""How the attacks call a model: logits out of any output form, the model's state left as found."""

from __future__ import annotations

import contextlib

import torch

from fastadv._outputs import logits_of

__all__ = ["attack_mode", "check_logits", "logits_of"]


def check_logits(logits: torch.Tensor, x: torch.Tensor) -> None:
    """Classifier logits [B, K] or dense logits [B, K, H, W] at the input's size."""
    b, _, h, w = x.shape
    dense_ok = logits.dim() == 4 and logits.shape[0] == b and logits.shape[2:] == (h, w)
    if not ((logits.dim() == 2 and logits.shape[0] == b) or dense_ok):
        raise ValueError(
            f"the model must map images {tuple(x.shape)} to logits [{b}, K] or "
            f"[{b}, K, {h}, {w}], got {tuple(logits.shape)}"
        )


@contextlib.contextmanager
def attack_mode(model):
    """Eval mode and frozen parameters while attacking (no parameter gradients are computed
    or accumulated); the model's mode and every requires_grad flag restored afterwards."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
