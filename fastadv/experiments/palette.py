"""Colours for label maps: the Cityscapes palette of the 19 trainIds (from the Cityscapes
scripts' label definitions), black for ignore."""

import torch

CITYSCAPES = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """Label map [H, W] -> RGB image [3, H, W] in [0, 1]; ids outside the palette are black."""
    palette = torch.zeros(256, 3)
    palette[: len(CITYSCAPES)] = torch.tensor(CITYSCAPES, dtype=torch.float32) / 255
    return palette[labels.long().clamp(0, 255).cpu()].permute(2, 0, 1)
