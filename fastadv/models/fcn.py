"""FCN-8s (Long, Shelhamer and Darrell, CVPR 2015) on a VGG-style backbone.

The backbone is five stages of 3×3 convolutions, each followed by 2×2 max pooling (pool1…pool5,
strides 2…32), then fc6 and fc7 as convolutions. Class scores are taken at three strides and fused
coarse to fine, as in the paper:

    s32 = score_fr(fc7)                                 stride 32
    s16 = up2(s32) + score_pool4(pool4)                 stride 16
    s8  = up2(s16) + score_pool3(pool3)                 stride 8
    out = up8(s8), cropped to the input size

``up2`` and ``up8`` are transposed convolutions initialised to bilinear interpolation (learned, as
in the paper's FCN-8s). Instead of the paper's 100-pixel input padding, pooling rounds up
(``ceil_mode``) so every stage covers the whole input, and each upsampled map is cropped to its
skip's size: any input size gives logits of exactly that size.
"""

from __future__ import annotations

import torch
from torch import nn

from fastadv.models.common import Normalize, check_images, conv_bn_relu

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_DEPTHS = (2, 2, 3, 3, 3)


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Per-channel bilinear upsampling weights ``[C, C, size, size]`` for ConvTranspose2d."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


def upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """×``factor`` transposed convolution: output size = ``factor`` × input size."""
    layer = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    layer.weight.data.copy_(bilinear_kernel(channels, 2 * factor))
    return layer


class FCN8s(nn.Module):
    """FCN-8s. The defaults are the paper's VGG16 network; ``compact_fcn8s`` is a slim one.

    Args:
        num_classes: K, the number of output channels.
        widths, depths: channels and number of 3×3 convolutions of the five stages.
        fc_width, fc_kernel: width and kernel size of fc6 (fc7 is 1×1 of the same width).
        batch_norm: BatchNorm after each convolution (not in the paper; trains faster).
        dropout: dropout after fc6 and fc7 (0.5 in the paper).
        normalize: a module applied to the [0, 1] input first (ImageNet mean/std by default).
    """

    def __init__(
        self,
        num_classes: int = 19,
        widths=VGG16_WIDTHS,
        depths=VGG16_DEPTHS,
        fc_width: int = 4096,
        fc_kernel: int = 7,
        batch_norm: bool = False,
        dropout: float = 0.5,
        normalize: nn.Module | None = None,
    ):
        super().__init__()
        self.normalize = Normalize() if normalize is None else normalize
        self.stages = nn.ModuleList()
        cin = 3
        for width, depth in zip(widths, depths, strict=True):
            convs = [
                conv_bn_relu(cin if i == 0 else width, width, batch_norm) for i in range(depth)
            ]
            self.stages.append(nn.Sequential(*convs, nn.MaxPool2d(2, ceil_mode=True)))
            cin = width
        self.fc = nn.Sequential(
            conv_bn_relu(cin, fc_width, batch_norm, kernel=fc_kernel),
            nn.Dropout2d(dropout),
            conv_bn_relu(fc_width, fc_width, batch_norm, kernel=1),
            nn.Dropout2d(dropout),
        )
        self.score_fr = nn.Conv2d(fc_width, num_classes, 1)
        self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
        self.up2_fr = upsampler(num_classes, 2)
        self.up2_pool4 = upsampler(num_classes, 2)
        self.up8 = upsampler(num_classes, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        h = self.normalize(x)
        pools = []
        for stage in self.stages:
            h = stage(h)
            pools.append(h)
        pool3, pool4 = pools[2], pools[3]
        s = self.score_fr(self.fc(h))
        s = _crop(self.up2_fr(s), pool4) + self.score_pool4(pool4)
        s = _crop(self.up2_pool4(s), pool3) + self.score_pool3(pool3)
        return _crop(self.up8(s), x)


def _crop(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The top-left part of ``t`` with ``like``'s height and width (``t`` is never smaller)."""
    return t[..., : like.shape[-2], : like.shape[-1]]


def fcn8s_vgg16(num_classes: int = 19) -> FCN8s:
    """The paper's FCN-8s: VGG16 backbone, fc6 7×7×4096, fc7 1×1×4096, dropout 0.5."""
    return FCN8s(num_classes)


def compact_fcn8s(num_classes: int = 19) -> FCN8s:
    """A slim FCN-8s for CPU training: widths 16-32-64-96-128, BatchNorm, fc6 3×3×192."""
    return FCN8s(
        num_classes,
        widths=(16, 32, 64, 96, 128),
        depths=(1, 2, 2, 2, 2),
        fc_width=192,
        fc_kernel=3,
        batch_norm=True,
        dropout=0.1,
    )
