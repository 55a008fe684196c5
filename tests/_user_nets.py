"""Networks of a user's own, for `--model _user_nets:NAME` (tests/test_cli_photos.py)."""

import torch

from fastadv.models import SEGMENTATION, ModelInfo
from fastadv.models.info import attach


def three_classes():
    """Each pixel named after its strongest channel."""
    net = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.eye(3)[:, :, None, None] * 8)
        net.bias.zero_()
    return attach(net, ModelInfo("rgb-namer", SEGMENTATION, ("red", "green", "blue")))


def unnamed():
    """Two classes it gives no names for."""
    return torch.nn.Conv2d(3, 2, 1)


def huge():
    """4096 channels a pixel: a 6000x4000 photo at full size needs about 800 GB."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4096, 1), torch.nn.Conv2d(4096, 2, 1))
