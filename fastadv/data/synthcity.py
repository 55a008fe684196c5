"""SynthCity: procedural street scenes with per-pixel labels in Cityscapes trainIds.

A scene is a pinhole view of a street from a camera about 1.6 m above the ground: sky, a skyline
of textured facades, a road and two sidewalks converging to a vanishing point, and objects standing
on the ground (trees, poles, cars, persons) drawn far to near, so nearer objects occlude farther
ones. An object whose foot is ``s`` pixels below the horizon is ``h_m · s / 1.6`` pixels tall for a
real height of ``h_m`` metres, which gives persons of many sizes. Colours, textures, shading,
illumination and sensor noise vary per scene and per object, so that classes are told apart by
shape and context, not by a colour lookup.

Everything is drawn in units of the image height, so any resolution works, and a scene is a pure
function of its seed: ``render_scene(seed)`` returns the same arrays on every machine.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 5, 8, 10, 11, 13
#: The trainIds that SynthCity draws (a subset of Cityscapes' 19 classes).
SYNTHCITY_CLASSES = (ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR)
DEFAULT_SIZE = (256, 512)
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_LENGTHS = {"train": 20000, "val": 200, "test": 200}
CAMERA_HEIGHT_M = 1.6

# Texture amplitude per class on three noise octaves (fine, medium, coarse): vegetation is busy,
# sky is smooth, road is grainy. Classes share octaves, so no single frequency gives the class away.
_TEXTURE = np.zeros((256, 3), np.float32)
_TEXTURE[ROAD] = (0.10, 0.06, 0.08)
_TEXTURE[SIDEWALK] = (0.08, 0.05, 0.06)
_TEXTURE[BUILDING] = (0.05, 0.06, 0.08)
_TEXTURE[POLE] = (0.04, 0.03, 0.04)
_TEXTURE[VEGETATION] = (0.22, 0.15, 0.08)
_TEXTURE[SKY] = (0.01, 0.04, 0.08)
_TEXTURE[PERSON] = (0.06, 0.05, 0.03)
_TEXTURE[CAR] = (0.04, 0.03, 0.05)
_TEXTURE[IGNORE_INDEX] = (0.05, 0.05, 0.05)


class _Canvas:
    """An image ``[H, W, 3]`` float32 and its label map ``[H, W]`` uint8, painted in place."""

    def __init__(self, height: int, width: int):
        self.h, self.w = height, width
        self.img = np.zeros((height, width, 3), np.float32)
        self.lab = np.full((height, width), SKY, np.uint8)
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def paint(self, mask: np.ndarray, colour, label: int | None, box=None) -> None:
        """Set ``colour`` (an RGB triple or a ``[h, w, 3]`` field) and ``label`` where ``mask``.

        ``box = (y0, y1, x0, x1)`` says which window of the canvas ``mask`` covers.
        """
        y0, y1, x0, x1 = box if box is not None else (0, self.h, 0, self.w)
        img, lab = self.img[y0:y1, x0:x1], self.lab[y0:y1, x0:x1]
        img[mask] = colour[mask] if np.ndim(colour) == 3 else colour
        if label is not None:
            lab[mask] = label

    def window(self, y0: float, y1: float, x0: float, x1: float):
        """The clipped integer box and its pixel-centre coordinates, or None if it is off-canvas."""
        y0, y1 = max(math.floor(y0), 0), min(math.ceil(y1), self.h)
        x0, x1 = max(math.floor(x0), 0), min(math.ceil(x1), self.w)
        if y0 >= y1 or x0 >= x1:
            return None
        return (y0, y1, x0, x1), self.yy[y0:y1, x0:x1] + 0.5, self.xx[y0:y1, x0:x1] + 0.5


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-scale value noise: a random grid every ``cell`` pixels, bicubic-upsampled."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = torch.from_numpy(rng.standard_normal((1, 1, gh, gw), dtype=np.float32))
    return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()


def _capsule(yy, xx, p, q, radius) -> np.ndarray:
    """Mask of points within ``radius`` of the segment ``p``-``q`` (points as (y, x))."""
    dy, dx = q[0] - p[0], q[1] - p[1]
    t = ((yy - p[0]) * dy + (xx - p[1]) * dx) / max(dy * dy + dx * dx, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    return (yy - p[0] - t * dy) ** 2 + (xx - p[1] - t * dx) ** 2 <= radius * radius


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One RGB colour from hue (turns), saturation and value in [0, 1]."""
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array(
        [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32
    )


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """Any hue, any saturation, value not too dark: clothes and car paint."""
    return _hsv(rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.15, 0.95))


class _Scene:
    """Draws one scene; the attributes are the scene's geometry."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng, self.c = rng, _Canvas(height, width)
        self.h, self.w = height, width
        self.horizon = height * rng.uniform(0.36, 0.52)
        self.vx = width * rng.uniform(0.3, 0.7)
        # Road and sidewalk edges: lines through the vanishing point, x = vx + slope·(y − horizon).
        self.road = (-rng.uniform(0.9, 2.4), rng.uniform(0.9, 2.4))
        self.walk = tuple(s * rng.uniform(1.4, 2.2) for s in self.road)

    def edge_x(self, y, slope):
        return self.vx + slope * (y - self.horizon)

    def draw(self):
        self.sky()
        self.ground()
        self.buildings()
        for _, draw, args in sorted(self.objects(), key=lambda o: o[0]):
            draw(*args)
        self.ego_vehicle()
        return self.finish()

    # --- background -------------------------------------------------------------------------

    def sky(self):
        rng, c = self.rng, self.c
        top = _hsv(rng.uniform(0.53, 0.64), rng.uniform(0.0, 0.7), rng.uniform(0.55, 1.0))
        low = top * 0.5 + rng.uniform(0.5, 1.0) * 0.5
        t = np.clip(c.yy / max(self.horizon, 1.0), 0, 1)[..., None]
        clouds = np.clip(_smooth_noise(rng, self.h, self.w, self.h / 4) * rng.uniform(0, 0.5), 0, 1)
        c.img[:] = (top * (1 - t) + low * t) * (1 - clouds[..., None]) + clouds[..., None] * 0.9

    def ground(self):
        rng, c = self.rng, self.c
        below = c.yy > self.horizon
        road_colour = np.full(3, rng.uniform(0.2, 0.5), np.float32) + rng.uniform(-0.03, 0.03, 3)
        walk_colour = _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.35), rng.uniform(0.45, 0.8))
        lx, rx = self.edge_x(c.yy, self.road[0]), self.edge_x(c.yy, self.road[1])
        wl, wr = self.edge_x(c.yy, self.walk[0]), self.edge_x(c.yy, self.walk[1])
        c.paint(below & (c.xx >= wl) & (c.xx <= wr), walk_colour, SIDEWALK)
        c.paint(below & (c.xx >= lx) & (c.xx <= rx), road_colour, ROAD)
        # Paving-slab joints on the sidewalk, lane markings on the road: darker / white lines that
        # keep their class label, so lines alone do not mark class boundaries.
        depth = np.maximum(c.yy - self.horizon, 1.0)
        slab = (np.mod(self.h * 2.0 / depth, rng.uniform(0.8, 1.6)) < 0.06) & (c.lab == SIDEWALK)
        c.paint(slab, walk_colour * 0.7, None)
        mid = self.edge_x(c.yy, rng.uniform(*sorted(self.road)) * rng.uniform(0.2, 0.6))
        dashes = np.mod(self.h * 4.0 / depth, 2.0) < 1.0
        lane = (np.abs(c.xx - mid) < depth * 0.02 + 0.3) & dashes & (c.lab == ROAD) & below
        c.paint(lane, np.float32([0.85, 0.85, 0.8]) * rng.uniform(0.7, 1.0), None)

    def buildings(self):
        rng = self.rng
        x = 0.0
        while x < self.w:
            bw = self.w * rng.uniform(0.06, 0.25)
            if rng.random() < 0.85:
                self.facade(x, x + bw)
            x += bw

    def facade(self, x0, x1):
        rng, c = self.rng, self.c
        centre = abs((x0 + x1) / 2 - self.vx) / self.w
        top = self.horizon - self.h * (rng.uniform(0.05, 0.35) + centre * rng.uniform(0.3, 1.2))
        win = c.window(top, self.h, x0, x1)
        if win is None:
            return
        box, yy, xx = win
        wl, wr = self.edge_x(yy, self.walk[0]), self.edge_x(yy, self.walk[1])
        mask = (yy <= self.horizon) | (xx < wl) | (xx > wr)
        palette = [(0.08, 0.25), (0.05, 0.55), (0.0, 0.05), (0.6, 0.15), (0.12, 0.4)]
        hue, sat = palette[rng.integers(len(palette))]
        colour = _hsv(
            hue + rng.uniform(-0.03, 0.03), sat * rng.uniform(0.5, 1.2), rng.uniform(0.35, 0.9)
        )
        field = np.broadcast_to(colour, (*yy.shape, 3)).copy()
        # A grid of windows: darker, bluish panes that are still "building".
        px, py = self.h * rng.uniform(0.04, 0.09), self.h * rng.uniform(0.05, 0.1)
        fx, fy = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
        panes = (np.mod(xx - x0, px) < px * fx) & (np.mod(yy - top, py) < py * fy)
        field[panes] = _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5))
        field *= (1.0 - 0.25 * (xx - x0) / max(x1 - x0, 1.0))[..., None]
        c.paint(mask, field, BUILDING, box)

    # --- objects standing on the ground ------------------------------------------------------

    def objects(self):
        """(foot row, draw function, arguments) for every object; drawn in foot-row order."""
        rng, out = self.rng, []
        ground = self.h - self.horizon
        for _ in range(rng.integers(1, 7)):  # trees and poles on the sidewalks
            foot = self.horizon + ground * rng.uniform(0.03, 1.0) ** 1.5
            side = rng.choice([0, 1])
            x = self.edge_x(foot, self.walk[side] * rng.uniform(0.75, 1.0))
            draw = self.tree if rng.random() < 0.4 else self.pole
            out.append((foot, draw, (foot, x)))
        for _ in range(rng.integers(0, 5)):  # cars on the road
            foot = self.horizon + ground * rng.uniform(0.03, 1.0) ** 2.0
            x = self.edge_x(foot, rng.uniform(*sorted(self.road)) * 0.9)
            out.append((foot, self.car, (foot, x)))
        n_persons = 0 if rng.random() < 0.15 else rng.integers(1, 8)
        for _ in range(n_persons):  # persons mostly on the sidewalks, some crossing the road
            foot = self.horizon + ground * rng.uniform(0.08, 1.0) ** 1.2
            slope = self.walk[rng.integers(2)] * rng.uniform(0.55, 1.1)
            slope = slope if rng.random() < 0.75 else rng.uniform(*sorted(self.road))
            out.append((foot, self.person, (foot, self.edge_x(foot, slope))))
        return out

    def scale(self, foot):
        """Pixels per metre for an object standing on the ground at row ``foot``."""
        return max(foot - self.horizon, 1.0) / CAMERA_HEIGHT_M

    def shaded(self, yy, xx, colour, y0, y1, x0, x1):
        """``colour`` lit from above-left: brighter at the top, darker at the bottom-right."""
        ty = (yy - y0) / max(y1 - y0, 1.0)
        tx = (xx - x0) / max(x1 - x0, 1.0)
        return colour * (1.15 - 0.3 * ty - 0.15 * tx)[..., None]

    def tree(self, foot, x):
        rng, c, m = self.rng, self.c, self.scale(foot)
        height, radius = m * rng.uniform(4, 9), m * rng.uniform(1.2, 2.8)
        cy = foot - height + radius
        win = c.window(cy - radius * 1.3, foot, x - radius * 1.5, x + radius * 1.5)
        if win is None:
            return
        box, yy, xx = win
        mask = _capsule(yy, xx, (cy, x), (foot, x), max(m * 0.15, 1.0))  # trunk
        for _ in range(rng.integers(3, 7)):  # canopy: a union of blobs
            oy, ox = rng.normal(0, radius * 0.4, 2)
            r = radius * rng.uniform(0.5, 0.9)
            mask |= (yy - cy - oy) ** 2 + ((xx - x - ox) * 0.9) ** 2 <= r * r
        green = _hsv(rng.uniform(0.17, 0.42), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6))
        c.paint(mask, self.shaded(yy, xx, green, *box), VEGETATION, box)

    def pole(self, foot, x):
        rng, c, m = self.rng, self.c, self.scale(foot)
        top = foot - m * rng.uniform(3.5, 8)
        radius = max(m * rng.uniform(0.08, 0.14), 1.5 * self.h / 256)
        arm = m * rng.uniform(0.0, 1.5) * rng.choice([-1, 1])
        win = c.window(
            top - radius * 3, foot, min(x, x + arm) - radius * 3, max(x, x + arm) + radius * 3
        )
        if win is None:
            return
        box, yy, xx = win
        mask = _capsule(yy, xx, (top, x), (foot, x), radius)
        mask |= _capsule(yy, xx, (top, x), (top, x + arm), radius * 0.8)
        grey = np.full(3, rng.uniform(0.15, 0.7), np.float32) + rng.uniform(-0.05, 0.05, 3)
        c.paint(mask, self.shaded(yy, xx, grey, *box), POLE, box)

    def car(self, foot, x):
        rng, c, m = self.rng, self.c, self.scale(foot)
        length = m * (rng.uniform(1.7, 2.0) if rng.random() < 0.5 else rng.uniform(3.8, 4.6))
        height = m * rng.uniform(1.3, 1.7)
        x0, x1, top = x - length / 2, x + length / 2, foot - height
        win = c.window(top, foot, x0, x1)
        if win is None:
            return
        box, yy, xx = win
        body_top = top + height * rng.uniform(0.35, 0.5)
        inset = length * rng.uniform(0.1, 0.25) * (1 - (yy - top) / (body_top - top))
        cabin = (yy < body_top) & (xx > x0 + inset) & (xx < x1 - inset)
        body = (yy >= body_top) & (yy < foot - height * 0.12)
        wheel_r = height * rng.uniform(0.16, 0.22)
        wheels = np.zeros_like(body)
        for wx in (x0 + length * 0.2, x1 - length * 0.2):
            wheels |= (yy - (foot - wheel_r)) ** 2 + (xx - wx) ** 2 <= wheel_r**2
        paint = _random_colour(rng)
        field = self.shaded(yy, xx, paint, *box)
        glass = cabin & (yy > top + height * 0.05) & (np.abs(xx - x) < (x1 - x0) / 2 - inset - 2)
        field[glass] = _hsv(rng.uniform(0.5, 0.65), 0.2, rng.uniform(0.1, 0.35))
        field[wheels] = 0.06
        c.paint(cabin | body | wheels, field, CAR, box)

    def person(self, foot, x):
        rng, c, m = self.rng, self.c, self.scale(foot)
        h = m * rng.uniform(1.5, 1.9)
        width = h * rng.uniform(0.17, 0.25)  # front view is wide, side view narrow
        win = c.window(foot - h * 1.02, foot + h * 0.02, x - h * 0.45, x + h * 0.45)
        if win is None:
            return
        box, yy, xx = win
        head_r, limb = h * 0.065, h * rng.uniform(0.035, 0.05)
        hip, shoulder, neck = foot - h * 0.48, foot - h * 0.8, foot - h * 0.86
        head = (yy - (foot - h + head_r)) ** 2 + (xx - x) ** 2 <= head_r**2
        torso = _capsule(yy, xx, (neck + limb, x), (hip, x), width / 2)
        stride = rng.uniform(-0.35, 0.35)  # walking pose: legs and arms swing in opposite phase
        legs = np.zeros_like(head)
        arms = np.zeros_like(head)
        for sign in (-1, 1):
            knee = (hip + h * 0.24, x + sign * stride * h * 0.12)
            ankle = (foot - limb, x + sign * stride * h * 0.28 + rng.normal(0, h * 0.02))
            legs |= _capsule(yy, xx, (hip, x + sign * width * 0.2), knee, limb * 1.2)
            legs |= _capsule(yy, xx, knee, ankle, limb)
            swing = -sign * stride * h * 0.3 + rng.normal(0, h * 0.03)
            hand = (shoulder + h * rng.uniform(0.25, 0.35), x + sign * width * 0.6 + swing)
            arms |= _capsule(yy, xx, (shoulder, x + sign * width * 0.45), hand, limb * 0.9)
        skin = _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.95))
        shirt, trousers = _random_colour(rng), _random_colour(rng) * rng.uniform(0.3, 1.0)
        field = np.zeros((*yy.shape, 3), np.float32)
        field[legs] = trousers
        field[torso | arms] = shirt
        field[head] = skin if rng.random() < 0.6 else _hsv(0.08, 0.5, rng.uniform(0.05, 0.4))
        c.paint(head | torso | legs | arms, self.shaded(yy, xx, field, *box), PERSON, box)

    def ego_vehicle(self):
        """In some scenes the camera car's bonnet shows at the bottom: ignore, as in Cityscapes."""
        rng, c = self.rng, self.c
        if rng.random() < 0.7:
            return
        depth = self.h * rng.uniform(0.04, 0.1)
        curve = c.h - depth + depth * ((c.xx - c.w / 2) / (c.w / 2)) ** 2
        c.paint(c.yy > curve, np.full(3, rng.uniform(0.05, 0.5), np.float32), IGNORE_INDEX)

    # --- illumination and sensor ---------------------------------------------------------------

    def finish(self):
        rng, c = self.rng, self.c
        octaves = [_smooth_noise(rng, self.h, self.w, cell) for cell in (1.5, 6.0, 24.0)]
        texture = sum(_TEXTURE[c.lab][..., i] * octaves[i] for i in range(3))
        img = c.img * (1.0 + texture[..., None])
        shadow = _smooth_noise(rng, self.h, self.w, self.h / 3) * rng.uniform(0, 0.15)
        img *= (1.0 + shadow)[..., None]
        gain = rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        img = np.clip(img * gain, 0, 1) ** rng.uniform(0.8, 1.25)
        img += rng.normal(0, rng.uniform(0.005, 0.03), img.shape).astype(np.float32)
        return np.clip(img, 0, 1), c.lab


def render_scene(seed, height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1]):
    """One scene as numpy arrays: image ``[H, W, 3]`` float32 in [0, 1], labels ``[H, W]`` uint8.

    ``seed`` is anything ``numpy.random.default_rng`` accepts (an int, a ``SeedSequence``).
    """
    if height < 16 or width < 16:
        raise ValueError(f"SynthCity needs at least 16x16 pixels, got {height}x{width}")
    return _Scene(np.random.default_rng(seed), height, width).draw()


class SynthCity(torch.utils.data.Dataset):
    """A fixed, deterministic split of SynthCity scenes.

    Item ``i`` of split ``s`` is ``render_scene(SeedSequence([seed, SPLITS[s], i]))``, so splits
    never share a scene and do not depend on length or resolution. Items are
    ``(image [3, H, W] float32 in [0, 1], labels [H, W] int64)``, labels in Cityscapes trainIds
    with ``IGNORE_INDEX`` = 255 for the camera car's bonnet.
    """

    classes = SYNTHCITY_CLASSES
    num_classes = 19  # the label space is Cityscapes' trainIds
    ignore_index = IGNORE_INDEX

    def __init__(self, split: str = "train", length: int | None = None, size=DEFAULT_SIZE, seed=0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.split, self.seed = split, seed
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        self.size = (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        seed = np.random.SeedSequence([self.seed, SPLITS[self.split], index])
        img, lab = render_scene(seed, *self.size)
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return image, torch.from_numpy(lab.astype(np.int64))

    def tensors(self, start: int = 0, stop: int | None = None, progress: bool = False):
        """Items ``start:stop`` stacked: images ``[N, 3, H, W]`` uint8 (to save memory), labels
        ``[N, H, W]`` uint8."""
        from tqdm import tqdm

        stop = self.length if stop is None else stop
        indices = tqdm(range(start, stop), desc=f"SynthCity {self.split}", disable=not progress)
        images = torch.empty((stop - start, 3, *self.size), dtype=torch.uint8)
        labels = torch.empty((stop - start, *self.size), dtype=torch.uint8)
        for i in indices:
            image, label = self[i]
            images[i - start] = (image * 255).round().to(torch.uint8)
            labels[i - start] = label.to(torch.uint8)
        return images, labels
