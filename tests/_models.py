"""Small seeded models for the attack tests."""

import torch
from torch import nn


def classifier(num_classes=10, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )


def segmenter(num_classes=5, seed=0, width=8, gain=1.0):
    """gain > 1 scales the first layer up and drops the biases: predictions that depend on
    the image rather than on the biases, so attacks can change them."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, num_classes, 3, padding=1),
    )
    if gain != 1.0:
        with torch.no_grad():
            model[0].weight.mul_(gain)
            model[0].bias.zero_()
            model[2].bias.zero_()
    return model


def images(b=4, h=16, w=16, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))
