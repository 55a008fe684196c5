"""How the attacks call a model: logits out of any output form, inputs in the model's dtype,
the model's state left as found."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from fastadv._outputs import logits_of

__all__ = ["as_attacked", "attack_mode", "check_logits", "logits_of"]


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
def attack_mode(model, set_mode: Callable[[], object] | None = None, *, freeze: bool = True):
    """For the block: the model in eval mode (or in the mode `set_mode()` sets) and, with
    `freeze`, no parameter requiring grad (no parameter gradients are computed or accumulated);
    afterwards every submodule's train/eval flag and every requires_grad flag as they were
    found (a model in train mode with BatchNorm layers frozen by `bn.eval()` comes back so).
    Callables that are not modules are left alone."""
    if not isinstance(model, nn.Module):
        yield
        return
    modules = list(model.modules())
    training = [m.training for m in modules]
    params = list(model.parameters()) if freeze else []
    requires_grad = [p.requires_grad for p in params]
    if set_mode is None:
        model.eval()
    else:
        set_mode()
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        # the flags themselves: train(flag) would recurse and overwrite the children's
        for module, flag in zip(modules, training, strict=True):
            module.training = flag
        for p, flag in zip(params, requires_grad, strict=True):
            p.requires_grad_(flag)


class _CastInputs(nn.Module):
    """The model with its inputs cast to its parameters' dtype: gradients flow back to the
    attack's images in their own dtype."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor):
        return self.model(x.to(self.dtype))


def as_attacked(model, x: torch.Tensor):
    """The model as the attacks call it on images like x: itself, or itself behind a cast of
    its inputs to its parameters' float dtype (a float64 image and a float32 model). Refuses,
    in one line, a model whose parameters are on the meta device or on another device than x.
    Callables that are not modules are taken as they are."""
    if not isinstance(model, nn.Module):
        return model
    params = [p for p in model.parameters() if p.is_floating_point()]
    devices = {p.device for p in params}
    if any(d.type == "meta" for d in devices):
        raise ValueError("model has parameters on the meta device: load its weights first")
    if len(devices) == 1 and x.device not in devices:
        (device,) = devices
        raise ValueError(f"x is on {x.device} but the model's parameters are on {device}")
    if not params or params[0].dtype == x.dtype:
        return model
    return _CastInputs(model, params[0].dtype)
