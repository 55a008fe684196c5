"""Berntsen et al.'s data: three procedural 3D objects (a monkey-like head, a penguin, an
aeroplane) at random Euler rotations, rendered to 64x64 greyscale with alpha and blended onto
greyscale crops of the photographs that ship with scikit-image; a fourth class "None" of
backgrounds alone.

The objects are built from ellipsoids (each with its own grey albedo, so the objects have
internal structure: eyes, a white belly, engines). The rasteriser is orthographic with a
z-buffer: for every pixel ray (x, y, z), z towards the viewer, an ellipsoid |A p - o| <= 1 is
hit where the quadratic

    |a|^2 z^2 + 2 (u0 . a) z + |u0|^2 - 1 = 0,    u0 = A[:, 0] x + A[:, 1] y - o,  a = A[:, 2]

has real roots; the front surface is the larger root and the z-buffer keeps the nearest
primitive. Shading is Lambert, I = albedo (k_ambient + k_diffuse max(0, n . l)), with the normal
n = A^T (A p - o). Edges are antialiased by rendering at `supersample` times the size and
averaging, which gives the fractional alpha.

Everything is drawn from numpy generators seeded by (seed, split, field), one per field, so
sample i is the same in any subset size and on every machine.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CLASSES = ("monkey", "penguin", "aeroplane", "none")
NONE = 3
SIZE = 64
ANGLE_RANGE = 0.5  # Euler angles uniform in [-0.5, 0.5] rad on each axis
# Photographs of scikit-image's data module, disjoint between the splits (as Berntsen et al.
# took test backgrounds from ImageNet's validation set).
PHOTOS = {
    "train": (
        "astronaut",
        "brick",
        "camera",
        "coffee",
        "grass",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "cell",
        "page",
    ),
    "test": ("chelsea", "coins", "gravel", "moon", "rocket", "clock", "text"),
}
_SPLIT_IDS = {"train": 0, "test": 1}
_LIGHT = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])
_AMBIENT, _DIFFUSE = 0.3, 0.7
_SCALE = 0.8  # object units to image units ([-1, 1] across the image)


@dataclass(frozen=True)
class Ellipsoid:
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    albedo: float
    tilt: float = 0.0  # rotation about the object's z axis (flippers)


# x to the right, y up, z towards the viewer, at zero rotation.
MODELS: dict[str, tuple[Ellipsoid, ...]] = {
    "monkey": (
        Ellipsoid((0, 0, 0), (0.5, 0.5, 0.45), 0.75),
        Ellipsoid((-0.6, 0.08, -0.05), (0.22, 0.26, 0.07), 0.6),
        Ellipsoid((0.6, 0.08, -0.05), (0.22, 0.26, 0.07), 0.6),
        Ellipsoid((0, -0.18, 0.3), (0.34, 0.2, 0.22), 0.9),
        Ellipsoid((0, 0.2, 0.33), (0.4, 0.11, 0.12), 0.7),
        Ellipsoid((-0.17, 0.1, 0.4), (0.1, 0.1, 0.06), 0.15),
        Ellipsoid((0.17, 0.1, 0.4), (0.1, 0.1, 0.06), 0.15),
    ),
    "penguin": (
        Ellipsoid((0, -0.15, 0), (0.38, 0.52, 0.33), 0.2),
        Ellipsoid((0, -0.2, 0.12), (0.29, 0.42, 0.25), 0.95),
        Ellipsoid((0, 0.47, 0), (0.27, 0.26, 0.25), 0.2),
        Ellipsoid((-0.09, 0.53, 0.2), (0.07, 0.08, 0.05), 0.95),
        Ellipsoid((0.09, 0.53, 0.2), (0.07, 0.08, 0.05), 0.95),
        Ellipsoid((0, 0.4, 0.27), (0.12, 0.06, 0.12), 0.6),
        Ellipsoid((-0.42, -0.1, 0), (0.08, 0.32, 0.15), 0.2, tilt=-0.35),
        Ellipsoid((0.42, -0.1, 0), (0.08, 0.32, 0.15), 0.2, tilt=0.35),
        Ellipsoid((-0.16, -0.68, 0.12), (0.15, 0.05, 0.15), 0.6),
        Ellipsoid((0.16, -0.68, 0.12), (0.15, 0.05, 0.15), 0.6),
    ),
    "aeroplane": (
        Ellipsoid((0, 0, 0), (0.11, 0.82, 0.11), 0.7),
        Ellipsoid((0, 0.05, 0), (0.88, 0.16, 0.03), 0.85),
        Ellipsoid((0, -0.66, 0), (0.33, 0.08, 0.02), 0.85),
        Ellipsoid((0, -0.62, 0.14), (0.025, 0.13, 0.18), 0.55),
        Ellipsoid((-0.42, 0.1, -0.06), (0.06, 0.16, 0.06), 0.35),
        Ellipsoid((0.42, 0.1, -0.06), (0.06, 0.16, 0.06), 0.35),
        Ellipsoid((0, 0.56, 0.07), (0.07, 0.14, 0.07), 0.25),
    ),
}


def euler_matrix(angles: torch.Tensor) -> torch.Tensor:
    """R = Rz(c) Ry(b) Rx(a) for angles [B, 3] = (a, b, c); [B, 3, 3]."""
    (ca, cb, cc), (sa, sb, sc) = angles.cos().unbind(1), angles.sin().unbind(1)
    one, zero = torch.ones_like(ca), torch.zeros_like(ca)
    rx = torch.stack([one, zero, zero, zero, ca, -sa, zero, sa, ca], 1).view(-1, 3, 3)
    ry = torch.stack([cb, zero, sb, zero, one, zero, -sb, zero, cb], 1).view(-1, 3, 3)
    rz = torch.stack([cc, -sc, zero, sc, cc, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def _local_frame(e: Ellipsoid) -> tuple[torch.Tensor, torch.Tensor]:
    """(D^-1 Q^T, D^-1 Q^T c): maps object points to the unit sphere's frame."""
    c, s = math.cos(e.tilt), math.sin(e.tilt)
    q = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m = torch.diag(1 / (torch.tensor(e.radii) * _SCALE)) @ q.T
    return m, m @ (torch.tensor(e.center) * _SCALE)


def render(
    classes: torch.Tensor, angles: torch.Tensor, *, size: int = SIZE, supersample: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Objects of `classes` [B] (0..2) at Euler `angles` [B, 3] on black: (grey, alpha), each
    [B, 1, size, size] in [0, 1]; grey is not premultiplied (0 where alpha is 0)."""
    classes, angles = torch.as_tensor(classes).long(), torch.as_tensor(angles).float()
    if angles.dim() != 2 or angles.shape[1] != 3 or classes.shape != angles.shape[:1]:
        raise ValueError(f"need classes [B] and angles [B, 3], got {classes.shape}, {angles.shape}")
    if ((classes < 0) | (classes >= NONE)).any():
        raise ValueError("classes must be object classes 0..2 ('None' has nothing to render)")
    n = size * supersample
    depth = torch.full((len(classes), n * n), -math.inf)
    shade = torch.zeros_like(depth)
    rot = euler_matrix(angles)
    for k, name in enumerate(CLASSES[:NONE]):
        sel = (classes == k).nonzero().squeeze(1)
        if sel.numel():
            depth_k, shade_k = depth[sel], shade[sel]
            for e in MODELS[name]:
                _rasterise(e, rot[sel], n, depth_k, shade_k)
            depth[sel], shade[sel] = depth_k, shade_k
    shape = (len(classes), 1, n, n)
    cover = (depth > -math.inf).float()
    alpha = F.avg_pool2d(cover.view(shape), supersample)
    grey = F.avg_pool2d((cover * shade).view(shape), supersample) / alpha.clamp_min(1e-6)
    return grey.clamp(0, 1), alpha


def _rasterise(e: Ellipsoid, rot, n: int, depth, shade) -> None:
    """Draws one ellipsoid into the z-buffer: depth and shade [B, n*n], in place.

    Only a square window around the ellipsoid's projection is evaluated (its side, twice the
    largest radius, bounds the projection at any rotation), which is what makes the renderer
    fast; windows are shifted inside the image, which keeps every visible pixel in them.
    """
    m, o = _local_frame(e)
    a_mat = m @ rot.transpose(1, 2)  # [B, 3, 3]: camera point -> unit-sphere frame
    centre = rot @ (torch.tensor(e.center) * _SCALE)  # [B, 3]
    w = min(n, math.ceil(max(e.radii) * _SCALE * n) + 2)
    col0 = ((centre[:, 0] + 1) / 2 * n - w / 2).floor().long().clamp(0, n - w)
    row0 = ((1 - centre[:, 1]) / 2 * n - w / 2).floor().long().clamp(0, n - w)
    step = torch.arange(w)
    rows = (row0[:, None] + step).repeat_interleave(w, 1)  # [B, w*w]
    cols = (col0[:, None] + step).repeat(1, w)
    xs = (cols.float() + 0.5) / n * 2 - 1  # pixel centres in [-1, 1], y up
    ys = 1 - (rows.float() + 0.5) / n * 2
    u0 = a_mat[:, :, 0, None] * xs[:, None] + a_mat[:, :, 1, None] * ys[:, None] - o[:, None]
    a = a_mat[:, :, 2, None]
    aa = (a * a).sum(1)
    b = (u0 * a).sum(1)
    disc = b * b - aa * ((u0 * u0).sum(1) - 1)
    z = (-b + disc.clamp_min(0).sqrt()) / aa
    idx = rows * n + cols
    old_z, old_shade = depth.gather(1, idx), shade.gather(1, idx)
    front = (disc > 0) & (z > old_z)
    u = u0 + a * z[:, None]
    # n . l = (A^T u) . l = u . (A l) and |n|^2 = |A^T u|^2: no 3x3 product per pixel
    light = torch.as_tensor(_LIGHT, dtype=torch.float32)
    nl = (u * (a_mat @ light)[:, :, None]).sum(1)
    n_sq = sum((u * a_mat[:, :, j, None]).sum(1) ** 2 for j in range(3))
    lambert = (nl * n_sq.clamp_min(1e-12).rsqrt()).clamp_min(0)
    new_shade = e.albedo * (_AMBIENT + _DIFFUSE * lambert)
    depth.scatter_(1, idx, torch.where(front, z, old_z))
    shade.scatter_(1, idx, torch.where(front, new_shade, old_shade))


@functools.lru_cache(maxsize=2)
def _backgrounds(split: str) -> tuple[np.ndarray, ...]:
    """Greyscale photographs of the split at scales 1, 1/2 and 1/4 (block means), in [0, 1]."""
    from fastadv.errors import optional_import

    photos, rgb2gray = optional_import("skimage.data"), optional_import("skimage.color").rgb2gray
    out = []
    for name in PHOTOS[split]:
        img = getattr(photos, name)()
        grey = rgb2gray(img[..., :3]) if img.ndim == 3 else img / 255.0
        for f in (1, 2, 4):
            h, w = grey.shape[0] // f * f, grey.shape[1] // f * f
            scaled = grey[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))
            if min(scaled.shape) >= SIZE:
                out.append(scaled.astype(np.float32))
    return tuple(out)


class RenderedObjects(torch.utils.data.Dataset):
    """Samples (image [1, 64, 64] float in [0, 1] on the 8-bit grid, label, angles [3]).

    Labels cycle 0, 1, 2, 3 (monkey, penguin, aeroplane, None), so every prefix is balanced;
    angles of None samples are 0 (undefined, as in the paper). `split` picks both the random
    stream and the background photographs. `cache` (a folder) keeps rendered tensors on disk.
    """

    classes = CLASSES

    def __init__(self, split: str = "train", size: int = 20000, seed: int = 0, cache=None):
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {list(_SPLIT_IDS)}, got {split!r}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.split, self.size, self.seed = split, size, seed
        self.cache = Path(cache) if cache is not None else None
        self.labels = torch.arange(size) % 4
        self.angles = torch.from_numpy(self._uniform(0, (size, 3)) * 2 - 1).float() * ANGLE_RANGE
        self.angles[self.labels == NONE] = 0
        self._bg = self._uniform(1, (size, 5))  # photo, scale, row, column, mirror
        self._images: torch.Tensor | None = None

    def _uniform(self, field: int, shape) -> np.ndarray:
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], field])
        return rng.random(shape)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        if not -self.size <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.size} samples")
        img = self.images()[i] if self._images is not None else self.render([i])[0]
        return img, int(self.labels[i]), self.angles[i]

    def background(self, indices) -> torch.Tensor:
        """The background crops of `indices`: [N, 1, 64, 64]."""
        photos = _backgrounds(self.split)
        crops = []
        for i in indices:
            p, _, r, c, m = self._bg[i]
            img = photos[int(p * len(photos))]
            top = int(r * (img.shape[0] - SIZE + 1))
            left = int(c * (img.shape[1] - SIZE + 1))
            crop = img[top : top + SIZE, left : left + SIZE]
            crops.append(crop[:, ::-1] if m < 0.5 else crop)
        return torch.from_numpy(np.stack(crops)[:, None].copy())

    def render(self, indices) -> torch.Tensor:
        """Images of `indices` [N, 1, 64, 64]: object alpha-blended over its background,
        rounded to 8 bits."""
        indices = torch.as_tensor(indices).long()
        out = self.background(indices.tolist())
        obj = (self.labels[indices] != NONE).nonzero().squeeze(1)
        if obj.numel():
            grey, alpha = render(self.labels[indices[obj]], self.angles[indices[obj]])
            out[obj] = alpha * grey + (1 - alpha) * out[obj]
        return (out * 255).round() / 255

    def images(self, chunk: int = 512) -> torch.Tensor:
        """All images [size, 1, 64, 64], rendered once (and cached to disk when asked)."""
        if self._images is None:
            path = self._cache_path()
            if path is not None and path.exists():
                self._images = torch.from_numpy(np.load(path)).float() / 255
            else:
                parts = [
                    self.render(range(s, min(s + chunk, self.size)))
                    for s in range(0, self.size, chunk)
                ]
                self._images = torch.cat(parts)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, (self._images * 255).round().to(torch.uint8).numpy())
        return self._images

    def _cache_path(self) -> Path | None:
        if self.cache is None:
            return None
        return self.cache / f"rendered-{self.split}-{self.seed}-{self.size}.npy"
