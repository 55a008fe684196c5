"""Pieces shared by the models."""

from __future__ import annotations

import torch
from torch import nn

#: ImageNet statistics, the usual input normalisation of ImageNet-style backbones.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel, for images ``[B, C, H, W]`` in [0, 1].

    Part of the model, so attacks work in [0, 1] image space and the gradient goes through it.
    With ``persistent=False`` mean and std stay out of the state_dict, so a network's own
    (e.g. torchvision's) parameter names load unchanged.
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, persistent: bool = True):
        super().__init__()
        for name, value in (("mean", mean), ("std", std)):
            value = torch.tensor(value, dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(name, value, persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.mean.shape[1])
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def check_images(x: torch.Tensor, channels: int = 3) -> None:
    """Raise a clear error unless ``x`` is a float batch ``[B, channels, H, W]``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected images [B, {channels}, H, W], got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got dtype {x.dtype}")


def conv_bn_relu(cin: int, cout: int, batch_norm: bool, kernel: int = 3, dilation: int = 1):
    """``kernel``×``kernel`` convolution with 'same' padding, optional BatchNorm, ReLU."""
    pad = dilation * (kernel - 1) // 2
    layers = [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
