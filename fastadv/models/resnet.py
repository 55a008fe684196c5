"""ResNet-50 (He et al. 2016) with torchvision's parameter names, so a torchvision or Places365
ResNet-50 state dict loads with `load_state_dict(..., strict=True)`.

The input preprocessing is part of the module (`Preprocess`, whose buffers are not saved), so
the model takes images in [0, 1] like every fastadv attack: normalisation, and optionally the
resize and centre crop of its evaluation (Places365's authors: shorter side 256, centre 224).
"""

from __future__ import annotations

import torch
from torch import nn

from fastadv.models.preprocess import Preprocess


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, torchvision's "ResNet v1.5") -> 1x1, with a projection
    shortcut where the shape changes."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet with Bottleneck blocks, behind its input preprocessing
    (ImageNet normalisation; `resize_size` and `crop_size` as in `Preprocess`)."""

    def __init__(
        self,
        layers=(3, 4, 6, 3),
        num_classes: int = 1000,
        resize_size: int | None = None,
        crop_size: int | None = None,
    ):
        super().__init__()
        self.resize_size, self.crop_size = resize_size, crop_size
        self.preprocess = Preprocess(resize_size=resize_size, crop_size=crop_size)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-50; Places365's has num_classes=365."""
    return ResNet((3, 4, 6, 3), num_classes, **kwargs)
