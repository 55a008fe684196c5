"""Berntsen et al.'s three networks on 64x64 greyscale images (classes: monkey, penguin,
aeroplane, None = 3).

- `DirectClassifier`: a reduced AlexNet, 4 logits (with `params=True`, 3 more outputs that
  estimate the Euler angles; only used to guide training).
- `TripleStaged`: estimator (image + one-hot class planes -> 3 angles), projector (class and
  angles -> grey image on black and alpha), comparator (patch similarity, convolved over the
  image and weighted by the projected alpha). Its output is one score per object class,
  s_c in [0, 1]; `decide(scores, theta)` is the class of the highest score when it exceeds
  theta, else None. One set of weights serves every class through the class input, and the
  whole chain is differentiable, so the attack's gradient runs through all three stages.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_OBJECTS = 3  # monkey, penguin, aeroplane
NONE = 3
NUM_PARAMS = 3  # Euler angles
ANGLE_RANGE = 0.5
PATCH = 10  # comparator patch side
THETAS = (0.2, 0.45, 0.7)
WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def _check_images(x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1:] != (channels, 64, 64):
        raise ValueError(f"expected images [B, {channels}, 64, 64], got {tuple(x.shape)}")


class ReducedAlexNet(nn.Module):
    """conv 16 3x3 (stride 2, as AlexNet's first layer strides), LRN, pool; conv 64, LRN, pool;
    conv 96, 96, 64, pool; fc 1024, 1024 with dropout; `outputs` outputs."""

    def __init__(self, in_channels: int, outputs: int, dropout: float = 0.5):
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 96, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(96, 96, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(96, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, outputs),
        )
        # He initialisation: with PyTorch's default one the activations shrink layer by layer
        # and the angle regression did not leave the mean in 150 Adam steps (it does with this)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_channels)
        return self.head(self.features(x))


class DirectClassifier(nn.Module):
    """Image [B, 1, 64, 64] -> logits [B, 4]; with `params`, `forward_all` also returns the
    angle estimate [B, 3] that the training loss uses."""

    def __init__(self, params: bool = False):
        super().__init__()
        self.params = params
        self.net = ReducedAlexNet(1, 4 + (NUM_PARAMS if params else 0))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.net(x)
        return out[:, :4], (out[:, 4:] if self.params else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def class_planes(classes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One-hot class planes [B, 3, H, W] in the dtype and size of `like`."""
    onehot = F.one_hot(classes, NUM_OBJECTS).to(like.dtype)
    return onehot[:, :, None, None].expand(-1, -1, *like.shape[2:])


class Estimator(nn.Module):
    """(image [B, 1, 64, 64], class [B]) -> Euler angles [B, 3]; the raw output is trained,
    `forward` clips it to the valid range [-0.5, 0.5] as the paper does. No dropout: with it
    the regression learnt too slowly for our CPU budget."""

    def __init__(self):
        super().__init__()
        self.net = ReducedAlexNet(1 + NUM_OBJECTS, NUM_PARAMS, dropout=0.0)

    def raw(self, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, class_planes(classes, x)], 1))

    def forward(self, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return self.raw(x, classes).clamp(-ANGLE_RANGE, ANGLE_RANGE)


class Projector(nn.Module):
    """(class [B], angles [B, 3]) -> (grey [B, 1, 64, 64] of the object on black, alpha
    [B, 1, 64, 64]): fully connected layers, then transposed convolutions 8 -> 64 (a downscaled
    variant of Dosovitskiy et al.'s generator)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(NUM_OBJECTS + NUM_PARAMS, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 64 * 8 * 8),
            nn.ReLU(inplace=True),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(16, 2, 4, stride=2, padding=1),
        )

    def forward(self, classes: torch.Tensor, angles: torch.Tensor):
        if angles.dim() != 2 or angles.shape[1] != NUM_PARAMS or angles.shape[:1] != classes.shape:
            raise ValueError(
                f"need classes [B] and angles [B, 3], got {classes.shape}, {angles.shape}"
            )
        code = torch.cat([F.one_hot(classes, NUM_OBJECTS).to(angles.dtype), angles], 1)
        out = self.deconv(self.fc(code).view(-1, 64, 8, 8))
        return torch.sigmoid(out[:, :1]), torch.sigmoid(out[:, 1:])


class Comparator(nn.Module):
    """Patch similarity convolved over the image: (query, projected grey, projected alpha),
    each [B, 1, 64, 64] -> score [B] in [0, 1].

        sim  = sigmoid(f(query, grey, alpha))        [B, 55, 55], receptive field 10x10, stride 1
        w    = avgpool_10x10(alpha)                  the projected alpha of each patch
        score = sum(sim * w) / sum(w)

    so only patches where the projection draws the object count, each by how much it does.
    The alpha channel enters f too, so a patch knows which of its pixels the object covers.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        # receptive field 4 + 3 + 3 = 10 = PATCH
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 1),
        )

    def similarity_logits(self, query, grey, alpha) -> torch.Tensor:
        """Per-patch logits [B, 55, 55]."""
        return self.net(torch.cat([query, grey, alpha], 1))[:, 0]

    def forward(self, query, grey, alpha) -> torch.Tensor:
        sim = torch.sigmoid(self.similarity_logits(query, grey, alpha))
        weight = patch_weights(alpha)
        return (sim * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-6)


def patch_weights(alpha: torch.Tensor) -> torch.Tensor:
    """avgpool_10x10(alpha) with stride 1: [B, 55, 55]."""
    return F.avg_pool2d(alpha, PATCH, stride=1)[:, 0]


class TripleStaged(nn.Module):
    """Image [B, 1, 64, 64] -> scores [B, 3]: s_c = comparator(x, projector(c, estimator(x, c)))
    for each object class c, the three classes in one batch of 3B."""

    def __init__(self, estimator=None, projector=None, comparator=None):
        super().__init__()
        self.estimator = estimator or Estimator()
        self.projector = projector or Projector()
        self.comparator = comparator or Comparator()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, 1)
        b = x.shape[0]
        xs = x.repeat(NUM_OBJECTS, 1, 1, 1)  # class-major: rows c*B .. c*B + B - 1
        classes = torch.arange(NUM_OBJECTS, device=x.device).repeat_interleave(b)
        grey, alpha = self.projector(classes, self.estimator(xs, classes))
        return self.comparator(xs, grey, alpha).view(NUM_OBJECTS, b).T


def decide(scores: torch.Tensor, theta: float) -> torch.Tensor:
    """argmax_c s_c where max_c s_c > theta, else None (3): int64 [B]."""
    best = scores.max(1)
    return torch.where(best.values > theta, best.indices, torch.full_like(best.indices, NONE))


def decider(theta: float):
    """`decide` at a fixed theta, the `decision` argument of attack_until_flip."""
    if not 0 < theta < 1:
        raise ValueError(f"theta must lie in (0, 1), got {theta}")
    return lambda scores: decide(scores, theta)


def triple_loss(scores: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The attack's loss to descend on the triple-staged network, summed over samples:
    -log s_y towards an object class y (false positive), sum_c -log(1 - s_c) towards None
    (false negative)."""
    s = scores.clamp(eps, 1 - eps)
    is_none = target == NONE
    towards = -torch.log(s.gather(1, target.clamp_max(NUM_OBJECTS - 1)[:, None]))[:, 0]
    away = -torch.log1p(-s).sum(1)
    return torch.where(is_none, away, towards).sum()


# ---- shipped weights -------------------------------------------------------------------------

NETWORKS = {
    "direct": lambda: DirectClassifier(params=False),
    "direct-params": lambda: DirectClassifier(params=True),
    "estimator": Estimator,
    "projector": Projector,
    "comparator": Comparator,
}


def weights_path(name: str, folder=None) -> Path:
    """The weight file of network `name` in `folder` (default: the shipped weights); the
    registry loads it as "mindseye-<name>"."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; one of {list(NETWORKS)}")
    return Path(folder or WEIGHTS) / f"mindseye-{name}.safetensors"
