"""SynthScenes: procedural outdoor and indoor scene images for the privacy-protection study.

Sweere et al. protect Places365 images against a scene classifier. Places365 is large and
licensed per image, so the library ships a stand-in: twelve scene categories drawn from
primitives (sky gradients, horizons, smooth-noise textures, rectangles, triangles, ellipses,
perspective trapezoids). Each category has a fixed layout grammar; each image draws its own
horizon, object counts and positions, palette jitter and texture noise.

Two cues name an image's class, as in photographs:
- its layout (sky, horizon, buildings, trees, ...), which is the class's own in half the images
  and a random category's in the other half: scene layouts are shared between categories (a
  Places365 "park" and "field" look alike), which is why Places365 top-1 accuracy is about 55 %;
- its material texture, which is always the class's own: a fine ripple of a class-specific
  orientation and spatial frequency, a few grey levels deep, over class-filtered grain.
A classifier must read the texture to pass 90 %, as photo CNNs lean on texture rather than
shape (Geirhos et al., ICLR 2019). That reliance on a weak, fine-scale cue is what makes photo
classifiers easy to fool with perturbations of a few grey levels, and what Sweere et al.'s
protection exploits; classifiers trained on layout alone need an L-inf of 4-8/255 to flip
(docs/protect.md).

Image `i` of a split is a pure function of (seed, split, i, size): the same arguments give the
same pixels on every machine (torch's CPU generator), and the val split never overlaps train.
torch's CPU generator keeps 32 bits of a seed, so the seed of image i is packed into 32 bits
without collisions: split (1 bit) | seed (7 bits) | i (24 bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

CLASSES = (
    "street",
    "highway",
    "park",
    "forest",
    "beach",
    "desert",
    "snowfield",
    "lake",
    "mountains",
    "field",
    "room",
    "corridor",
)
SPLITS = {"train": 0, "val": 1}
MAX_SEED, MAX_LENGTH = 1 << 7, 1 << 24  # the packed 32-bit generator seed (module docstring)


class _Canvas:
    """An RGB image [3, H, W] being painted, its normalised coordinates y, x in [0, 1] and the
    generator every random draw of this image comes from."""

    def __init__(self, size: int, gen: torch.Generator):
        self.size, self.gen = size, gen
        ramp = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        self.y, self.x = ramp.view(-1, 1).expand(size, size), ramp.view(1, -1).expand(size, size)
        self.img = torch.zeros(3, size, size)

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        """One uniform draw in [lo, hi)."""
        return lo + (hi - lo) * torch.rand((), generator=self.gen).item()

    def n(self, lo: int, hi: int) -> int:
        """One integer draw in [lo, hi]."""
        return int(torch.randint(lo, hi + 1, (), generator=self.gen))

    def colour(self, rgb, jitter: float = 0.06) -> torch.Tensor:
        """A base colour with per-channel jitter, as [3, 1, 1]."""
        c = torch.tensor(rgb, dtype=torch.float32) + jitter * (
            2 * torch.rand(3, generator=self.gen) - 1
        )
        return c.clamp(0, 1).view(3, 1, 1)

    def noise(self, cells: int, amp: float) -> torch.Tensor:
        """Smooth value noise [H, W] in [-amp, amp]: a random cells x cells grid, bicubic up."""
        grid = 2 * torch.rand(1, 1, cells, cells, generator=self.gen) - 1
        up = F.interpolate(grid, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return amp * up[0, 0].clamp(-1, 1)

    def paint(self, region: torch.Tensor, rgb, texture: float = 0.0, cells: int = 8) -> None:
        """Fills the bool/float [H, W] region with a colour, modulated by smooth noise."""
        c = self.colour(rgb)
        if texture:
            c = (c + self.noise(cells, texture)).clamp(0, 1)
        a = region.float()
        self.img = self.img * (1 - a) + c * a

    def sky(self, top, bottom) -> None:
        t = self.y
        self.img = self.colour(top) * (1 - t) + self.colour(bottom) * t

    def below(self, h: float, wobble: float = 0.0, cells: int = 4) -> torch.Tensor:
        """The region under a (possibly wavy) horizon at height h."""
        return self.y > h + (self.noise(cells, wobble)[0:1] if wobble else 0.0)

    def rect(self, y0, y1, x0, x1) -> torch.Tensor:
        return (self.y >= y0) & (self.y < y1) & (self.x >= x0) & (self.x < x1)

    def ellipse(self, cy, cx, ry, rx) -> torch.Tensor:
        return ((self.y - cy) / ry) ** 2 + ((self.x - cx) / rx) ** 2 < 1

    def triangle(self, apex_y, apex_x, base_y, half_w) -> torch.Tensor:
        """A peak: apex at (apex_y, apex_x), base half-width half_w at base_y."""
        frac = (self.y - apex_y) / max(base_y - apex_y, 1e-3)
        return (frac >= 0) & (frac <= 1) & ((self.x - apex_x).abs() <= frac * half_w)

    def trapezoid(self, top_y, top_half, bottom_half, cx=0.5) -> torch.Tensor:
        """A road in perspective: half-width top_half at top_y growing to bottom_half at y=1."""
        frac = ((self.y - top_y) / (1 - top_y)).clamp(min=0)
        return (self.y >= top_y) & (
            (self.x - cx).abs() <= top_half + frac * (bottom_half - top_half)
        )


def _street(c: _Canvas) -> None:
    c.sky((0.45, 0.6, 0.85), (0.75, 0.82, 0.9))
    h = c.u(0.35, 0.5)
    for side in (0, 1):
        x = 0.0 if side == 0 else 1.0
        for _ in range(c.n(2, 4)):
            w, top = c.u(0.08, 0.2), c.u(0.05, h - 0.05)
            x0 = x if side == 0 else x - w
            grey = c.u(0.35, 0.7)
            c.paint(c.rect(top, 1, x0, x0 + w), (grey, grey * c.u(0.8, 1.0), grey * 0.9), 0.05)
            windows = ((c.y * 40 % 1 < 0.45) & (c.x * 50 % 1 < 0.5)) & c.rect(
                top + 0.03, h + 0.15, x0 + 0.01, x0 + w - 0.01
            )
            c.paint(windows, (0.15, 0.2, 0.3))
            x = x0 + w if side == 0 else x0
    c.paint(c.trapezoid(h + 0.1, 0.12, 0.45), (0.3, 0.3, 0.32), 0.04, 32)
    c.paint(c.trapezoid(h + 0.1, 0.005, 0.02) & (c.y * 20 % 1 < 0.5), (0.9, 0.9, 0.9))


def _highway(c: _Canvas) -> None:
    c.sky((0.35, 0.55, 0.9), (0.8, 0.85, 0.92))
    h = c.u(0.4, 0.55)
    c.paint(c.below(h), (0.35, 0.55, 0.25), 0.08, 16)
    cx = c.u(0.35, 0.65)
    c.paint(c.trapezoid(h, 0.01, 0.7, cx), (0.28, 0.28, 0.3), 0.03, 32)
    for lane in (-0.35, 0.0, 0.35):
        line = c.trapezoid(h, 0.001, 0.012, cx + 0.0) & (
            (c.x - cx - lane * (c.y - h) / (1 - h)).abs() < 0.01 + 0.01 * c.y
        )
        c.paint(
            line & ((c.y * 15 % 1 < 0.6) | (lane != 0.0)),
            (0.95, 0.9, 0.5) if lane else (0.95, 0.95, 0.95),
        )


def _tree(c: _Canvas, cy, cx, r, crown) -> None:
    c.paint(c.rect(cy, cy + 2.2 * r, cx - r / 6, cx + r / 6), (0.35, 0.22, 0.12))
    c.paint(c.ellipse(cy, cx, r, r * 0.8), crown, 0.12, 16)


def _park(c: _Canvas) -> None:
    c.sky((0.4, 0.62, 0.9), (0.78, 0.86, 0.95))
    h = c.u(0.35, 0.55)
    c.paint(c.below(h, 0.03), (0.35, 0.7, 0.3), 0.1, 24)
    c.paint(c.trapezoid(h + 0.15, 0.03, 0.2, c.u(0.3, 0.7)), (0.78, 0.7, 0.55), 0.05, 16)
    for _ in range(c.n(2, 5)):
        _tree(c, h - c.u(0.0, 0.08), c.u(0.05, 0.95), c.u(0.07, 0.13), (0.15, 0.5, 0.18))


def _forest(c: _Canvas) -> None:
    c.sky((0.55, 0.7, 0.8), (0.7, 0.8, 0.8))
    c.paint(c.y > c.u(0.05, 0.2), (0.1, 0.3, 0.12), 0.12, 12)
    for _ in range(c.n(8, 14)):
        x, w = c.u(0, 1), c.u(0.015, 0.04)
        c.paint(c.rect(c.u(0.0, 0.3), 1, x - w, x + w), (0.3, 0.2, 0.12), 0.05)
    for _ in range(c.n(6, 10)):
        _tree(c, c.u(0.05, 0.5), c.u(0, 1), c.u(0.08, 0.16), (0.12, 0.38, 0.14))
    c.paint(c.y > c.u(0.8, 0.9), (0.25, 0.3, 0.12), 0.1, 16)


def _beach(c: _Canvas) -> None:
    c.sky((0.3, 0.6, 0.95), (0.7, 0.85, 0.98))
    h, shore = c.u(0.3, 0.45), c.u(0.55, 0.75)
    c.paint(c.below(h), (0.1, 0.45, 0.7), 0.05, 16)
    c.paint(c.below(h) & (torch.sin(c.y * 50 + c.x * 6) > 0.8), (0.85, 0.92, 0.98))
    c.paint(c.below(shore, 0.04, 6), (0.92, 0.83, 0.6), 0.05, 32)


def _desert(c: _Canvas) -> None:
    c.sky((0.65, 0.75, 0.9), (0.95, 0.9, 0.8))
    h = c.u(0.35, 0.55)
    c.paint(c.ellipse(c.u(0.08, 0.25), c.u(0.1, 0.9), 0.06, 0.06), (1.0, 0.95, 0.7))
    for k in range(3):
        crest = h + 0.12 * k + 0.06 * torch.sin(c.x * c.u(4, 9) + c.u(0, 6.28))
        shade = 0.85 - 0.07 * k
        c.paint(c.y > crest, (0.9 * shade, 0.7 * shade, 0.42 * shade), 0.04, 16)


def _snowfield(c: _Canvas) -> None:
    c.sky((0.7, 0.75, 0.82), (0.88, 0.9, 0.93))
    h = c.u(0.3, 0.5)
    c.paint(c.below(h, 0.04), (0.95, 0.96, 0.99), 0.03, 24)
    for _ in range(c.n(0, 3)):
        x = c.u(0.05, 0.95)
        c.paint(c.triangle(h - 0.12, x, h + 0.02, 0.04), (0.12, 0.22, 0.16))


def _lake(c: _Canvas) -> None:
    c.sky((0.4, 0.6, 0.9), (0.8, 0.87, 0.95))
    h = c.u(0.3, 0.45)
    c.paint(c.below(h - 0.08, 0.05), (0.12, 0.32, 0.18), 0.1, 16)
    c.paint(c.below(h), (0.2, 0.42, 0.6), 0.04, 8)
    c.paint(c.below(h) & (torch.sin(c.y * 70) > 0.8), (0.55, 0.7, 0.85))
    c.paint(c.below(c.u(0.8, 0.92), 0.04), (0.4, 0.55, 0.25), 0.1, 16)


def _mountains(c: _Canvas) -> None:
    c.sky((0.35, 0.55, 0.9), (0.8, 0.85, 0.95))
    h = c.u(0.55, 0.7)
    for _ in range(c.n(2, 4)):
        apex, x, half = c.u(0.1, 0.35), c.u(0.1, 0.9), c.u(0.25, 0.45)
        grey = c.u(0.35, 0.55)
        c.paint(c.triangle(apex, x, h, half), (grey, grey * 0.95, grey * 0.9), 0.08, 12)
        c.paint(c.triangle(apex, x, apex + 0.08, half * 0.08 / (h - apex)), (0.97, 0.97, 1.0))
    c.paint(c.below(h, 0.02), (0.3, 0.5, 0.22), 0.1, 16)


def _field(c: _Canvas) -> None:
    c.sky((0.4, 0.62, 0.92), (0.82, 0.88, 0.95))
    h = c.u(0.3, 0.5)
    crop = (0.85, 0.75, 0.3) if c.u() < 0.5 else (0.45, 0.65, 0.2)
    c.paint(c.below(h), crop, 0.06, 16)
    depth = ((c.y - h) / (1 - h)).clamp(min=1e-3)
    rows = torch.sin((c.x - 0.5) / depth * c.u(30, 50)) > 0.3
    c.paint(c.below(h) & rows, tuple(0.7 * v for v in crop))


def _room(c: _Canvas) -> None:
    c.img = c.colour((0.85, 0.8, 0.68), 0.1).expand(3, c.size, c.size).clone()
    floor = c.u(0.6, 0.75)
    c.paint(c.y > floor, (0.55, 0.38, 0.22), 0.06, 8)
    c.paint((c.y > floor) & ((c.x * c.u(8, 14)) % 1 < 0.06), (0.35, 0.24, 0.14))
    wx = c.u(0.1, 0.6)
    c.paint(c.rect(0.15, 0.45, wx, wx + 0.25), (0.6, 0.75, 0.95), 0.05)
    c.paint(c.rect(0.15, 0.45, wx + 0.12, wx + 0.13), (0.95, 0.95, 0.95))
    for _ in range(c.n(1, 3)):
        x, w, top = c.u(0.0, 0.8), c.u(0.15, 0.3), c.u(0.45, floor - 0.05)
        c.paint(
            c.rect(top, floor + 0.1, x, x + w), (c.u(0.2, 0.7), c.u(0.2, 0.5), c.u(0.2, 0.6)), 0.05
        )


def _corridor(c: _Canvas) -> None:
    c.img = c.colour((0.8, 0.82, 0.8), 0.1).expand(3, c.size, c.size).clone()
    vy, vx, s = c.u(0.4, 0.55), c.u(0.4, 0.6), c.u(0.08, 0.14)
    dy, dx = (c.y - vy).abs(), (c.x - vx).abs()
    c.paint((c.y > vy) & (dy > dx * 0.9), (0.45, 0.42, 0.4), 0.05, 8)
    c.paint((c.y < vy) & (dy > dx * 0.9), (0.95, 0.95, 0.92))
    c.paint((c.y < vy) & (dy > dx * 0.9) & ((c.x - vx).abs() < 0.02), (1.0, 1.0, 0.85))
    c.paint((dx < s) & (dy < s), (0.3, 0.3, 0.32))
    for k in range(c.n(2, 4)):
        d = s + 0.06 + 0.1 * k
        door = (dx > d) & (dx < d + 0.04) & (c.y > vy - 0.9 * d) & (c.y < vy + 0.9 * d)
        c.paint(door, (0.45, 0.3, 0.2))


_PAINTERS: dict[str, Callable[[_Canvas], None]] = {
    "street": _street,
    "highway": _highway,
    "park": _park,
    "forest": _forest,
    "beach": _beach,
    "desert": _desert,
    "snowfield": _snowfield,
    "lake": _lake,
    "mountains": _mountains,
    "field": _field,
    "room": _room,
    "corridor": _corridor,
}


def _texture(label: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Fine texture [3, H, W] of unit scale: white noise through the class's own 5x5 filter
    (fixed per class), standing in for the foliage, ripples, grain and brickwork whose
    fine-scale statistics photo classifiers lean on."""
    kernel = torch.randn(3, 1, 5, 5, generator=torch.Generator().manual_seed(7919 + label))
    kernel = kernel / kernel.flatten(1).norm(dim=1).view(3, 1, 1, 1)
    noise = torch.randn(1, 3, size + 4, size + 4, generator=gen)
    return F.conv2d(noise, kernel, groups=3)[0]


def _ripple(label: int, c: _Canvas) -> torch.Tensor:
    """The class's material ripple [H, W] of unit amplitude: sin(2π f (x cos θ + y sin θ) + φ)
    with orientation θ = 15° · label and f = 10 + label cycles per image width (each jittered a
    little), random phase. Frequencies in cycles per image, not per pixel, so a 256-pixel render
    shrunk to 128 pixels shows the ripple a 128-pixel render does."""
    theta = math.pi * label / len(CLASSES) + c.u(-0.1, 0.1)
    freq = 2 * math.pi * (10 + label) * c.u(0.9, 1.1)
    along = c.x * math.cos(theta) + c.y * math.sin(theta)
    return torch.sin(freq * along + c.u(0, 2 * math.pi))


def render(label: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """One image [3, size, size] in [0, 1] of class `label`: a layout (the class's own in half
    the images, a random category's otherwise), a random mirror, the class's material texture
    (its ripple and its filtered grain), then a photometric jitter strong enough that colour
    alone does not name the class (per-channel gains g, contrast k, brightness b:
    x -> k (g x - 0.5) + 0.5 + b)."""
    c = _Canvas(size, gen)
    layout = label if c.u() < 0.5 else c.n(0, len(CLASSES) - 1)
    _PAINTERS[CLASSES[layout]](c)
    if c.u() < 0.5:
        c.img = c.img.flip(-1)
    grain = c.u(0.03, 0.08) * _texture(label, size, gen)
    c.img = c.img + grain + c.u(0.01, 0.02) * _ripple(label, c)
    gains = (0.75 + 0.5 * torch.rand(3, generator=gen)).view(3, 1, 1)
    b, k = c.u(-0.1, 0.1), c.u(0.75, 1.25)
    return (k * (gains * c.img - 0.5) + 0.5 + b).clamp(0, 1)


class SynthScenes(torch.utils.data.Dataset):
    """`length` images of `size` x `size`; item i is (image [3, H, W] float32 in [0, 1], label).

    Labels cycle through the classes (i mod 12), so every split is balanced. The fixed val
    split is `SynthScenes("val")`; its images come from seeds disjoint from train's."""

    classes = CLASSES

    def __init__(self, split: str = "train", length: int | None = None, size: int = 64, seed=0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if not 0 <= int(seed) < MAX_SEED:
            raise ValueError(f"seed must be in [0, {MAX_SEED}), got {seed}")
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.length = int(length if length is not None else (6000 if split == "train" else 600))
        if not 0 <= self.length <= MAX_LENGTH:
            raise ValueError(f"length must be in [0, {MAX_LENGTH}], got {self.length}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} images")
        label = i % len(CLASSES)
        seed = (SPLITS[self.split] << 31) | (self.seed << 24) | i
        gen = torch.Generator().manual_seed(seed)
        return render(label, self.size, gen), label

    def tensors(self, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `count` items stacked: images [N, 3, H, W] and labels [N]."""
        count = self.length if count is None else min(count, self.length)
        items = [self[i] for i in range(count)]
        return torch.stack([im for im, _ in items]), torch.tensor([lb for _, lb in items])
