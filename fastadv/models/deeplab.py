"""A small DeepLab-style network: dilated ResNet, atrous spatial pyramid pooling, light decoder.

After Chen et al. (DeepLab v3/v3+). The backbone reaches stride 8 with strided residual blocks,
then keeps that resolution and grows the receptive field with dilated (atrous) convolutions
instead of further downsampling. ASPP looks at the stride-8 features at several dilation rates and
at the image average, a decoder (v3+) adds stride-4 features for sharper boundaries, and the
logits are bilinearly upsampled to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastadv.models.common import Normalize, check_images, conv_bn_relu


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(x' + bn(conv(relu(bn(conv(x))))))``, ``x'`` a 1×1 projection
    of ``x`` when stride or width change."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.shortcut(x) + self.bn2(self.conv2(y)), inplace=True)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1×1 branch, 3×3 branches at each rate in ``rates`` and
    an image-pooling branch, concatenated and projected by a 1×1 convolution."""

    def __init__(self, cin: int, cout: int, rates=(3, 6, 9), dropout: float = 0.1):
        super().__init__()
        branches = [conv_bn_relu(cin, cout, True, kernel=1)]
        branches += [conv_bn_relu(cin, cout, True, dilation=r) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = conv_bn_relu(cin, cout, True, kernel=1)
        self.project = nn.Sequential(
            conv_bn_relu(cout * (len(rates) + 2), cout, True, kernel=1), nn.Dropout2d(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabLite(nn.Module):
    """Dilated ResNet (output stride 8) + ASPP + decoder.

    Strides and dilations of the stages: stem (conv s2, conv) → stride 2; block s2 → stride 4
    (the decoder's low-level features); block s2 → stride 8; blocks at dilation 2, then 4.

    Args:
        num_classes: K, the number of output channels.
        widths: channels of stem and of the four residual stages.
        aspp_width: channels of ASPP and decoder; rates: ASPP dilation rates at stride 8.
        normalize: applied to the [0, 1] input first (ImageNet mean/std by default).
    """

    def __init__(
        self,
        num_classes: int = 19,
        widths=(24, 32, 64, 96, 128),
        aspp_width: int = 64,
        rates=(3, 6, 9),
        normalize: nn.Module | None = None,
    ):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.normalize = Normalize() if normalize is None else normalize
        self.stem = nn.Sequential(
            nn.Conv2d(3, w0, 3, 2, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True)
        )
        self.layer1 = BasicBlock(w0, w1, stride=2)
        self.layer2 = BasicBlock(w1, w2, stride=2)
        self.layer3 = nn.Sequential(BasicBlock(w2, w3, dilation=2), BasicBlock(w3, w3, dilation=2))
        self.layer4 = BasicBlock(w3, w4, dilation=4)
        self.aspp = ASPP(w4, aspp_width, rates)
        self.low = conv_bn_relu(w1, 24, True, kernel=1)
        self.decoder = conv_bn_relu(aspp_width + 24, aspp_width, True)
        self.classifier = nn.Conv2d(aspp_width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        low = self.layer1(self.stem(self.normalize(x)))
        high = self.aspp(self.layer4(self.layer3(self.layer2(low))))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.classifier(self.decoder(torch.cat([high, self.low(low)], dim=1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
