"""Dense CRF mean-field inference (Krähenbühl and Koltun 2011) on local windows (ConvCRF style).

Energy over labellings x of an image with colours I (0..255 units) and pixel positions p:

    E(x) = Σ_i ψ_u(x_i) + Σ_{i,j} μ(x_i, x_j) Σ_m w_m k_m(i, j),      ψ_u = −log softmax(logits)

    Gaussian:   k_g(i, j) = exp(−|p_i − p_j|² / 2 sxy_g²)                          sxy=3,  w=3
    bilateral:  k_b(i, j) = exp(−|p_i − p_j|² / 2 sxy_b² − |I_i − I_j|² / 2 srgb²)  sxy=80, srgb=13,
                                                                                    w=10

with Potts compatibility μ(l, l') = [l ≠ l'] — the parameter names and defaults of pydensecrf's
``addPairwiseGaussian`` and ``addPairwiseBilateral``. Each kernel is normalised symmetrically as
pydensecrf's default ``NORMALIZE_SYMMETRIC``: ``k̃(i, j) = n_i k(i, j) n_j`` with
``n_i = (Σ_j k(i, j))^(−1/2)``, sums over j including i, as its permutohedral filter does.
Mean-field inference, ``iterations`` times:

    Q = softmax(−ψ_u)
    z_i(l) = −ψ_u,i(l) + Σ_m w_m Σ_j k̃_m(i, j) Q_j(l)
    Q = softmax(z)

(Potts as a reward for agreeing labels differs from the penalty for disagreeing ones by a per-pixel
constant, which softmax ignores, so this is pydensecrf's update.) The output is the last ``z``,
``[B, K, H, W]``: logits-like scores whose softmax is the CRF's marginals; with zero iterations it
is ``log_softmax(logits)``.

Two ways to compute the messages ``Σ_j k̃(i, j) Q_j``:

- fully connected (the default, ``window=None``), as pydensecrf does: each kernel is a Gaussian
  filter over the pixels' features (``p / sxy``, and ``I / srgb`` for the bilateral one) computed
  on the permutohedral lattice of Adams et al. (2010), fastadv.ops.permutohedral_filter, in
  O(K·H·W) whatever the kernels' reach. The lattices (and the normalisations, folded into their
  weights) are built once a call and shared by every iteration and by the backward pass.
  Differentiable in the logits: the backward of a message pass is the same symmetric filter
  applied to the incoming gradient (transposed: the blur directions in reverse order), as in
  CRF-as-RNN (Zheng et al. 2015). The image enters only through the lattices' features, which the
  gradient treats as constants: no gradient flows to ``images``, and an attack through the CRF
  follows the logits path, as Arnab et al.'s attacks on CRF-RNN did.
- on local windows (``window`` an odd int), as ConvCRF (Teichmann and Cipolla 2018): the kernels
  truncated to a ``window × window`` neighbourhood, exact within it, at ``O(window² · K · H · W)``;
  a window of at least ``2·max(H, W) − 1`` covers every pair, and then the result equals
  `exact`. Differentiable in the logits and in the image (exact gradients in both).

`exact` computes the same mean field with exact dense Gaussian filters (O((HW)²), small images):
the reference both are tested against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastadv._outputs import logits_of
from fastadv.models.common import check_images
from fastadv.ops import permutohedral_filter, permutohedral_lattice
from fastadv.ops.permutohedral import dense_gaussian_filter


class DenseCRF(nn.Module):
    """Mean-field dense CRF: ``crf(logits [B, K, H, W], images [B, 3, H, W] in [0, 1]) -> refined
    logits [B, K, H, W]``, fully connected (``window=None``) or on local windows.

    ``backend`` picks the permutohedral filter's ("auto", "cuda", "cpu" or "torch"; see
    fastadv.ops) in the fully connected mode.
    """

    def __init__(
        self,
        iterations: int = 5,
        window: int | None = None,
        gaussian_sxy: float = 3.0,
        gaussian_compat: float = 3.0,
        bilateral_sxy: float = 80.0,
        bilateral_srgb: float = 13.0,
        bilateral_compat: float = 10.0,
        backend: str = "auto",
    ):
        super().__init__()
        if window is not None and (window < 1 or window % 2 == 0):
            raise ValueError(f"window must be None or a positive odd number, got {window}")
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        _check_parameters(
            positive={"gaussian_sxy": gaussian_sxy, "bilateral_sxy": bilateral_sxy,
                      "bilateral_srgb": bilateral_srgb},
            # Potts: a penalty for disagreeing labels
            non_negative={"gaussian_compat": gaussian_compat, "bilateral_compat": bilateral_compat},
        )  # fmt: skip
        self.iterations, self.window, self.backend = iterations, window, backend
        self.gaussian_sxy, self.gaussian_compat = gaussian_sxy, gaussian_compat
        self.bilateral_sxy, self.bilateral_srgb = bilateral_sxy, bilateral_srgb
        self.bilateral_compat = bilateral_compat

    def forward(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        _check_pair(logits, images)
        if self.window is None:
            return self._lattice_mean_field(logits, images)
        filters = [
            (w, self._kernel(images, sxy, srgb)) for w, sxy, srgb in self._kernels() if w != 0
        ]
        return _mean_field(
            logits, self.iterations, lambda q: sum(w * self._filter(q, k) for w, k in filters)
        )

    def exact(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The exact mean field: every pair of pixels whatever the mode, each kernel an exact
        dense Gaussian filter (O((HW)²): small images); both modes are tested against it."""
        _check_pair(logits, images)
        b, k, h, w = logits.shape
        pos = _positions(h, w, images.device).to(logits.dtype).expand(b, -1, -1)
        rgb = (images.to(logits.dtype) * 255.0).flatten(2).transpose(1, 2)
        kernels = []
        for compat, sxy, srgb in self._kernels():
            feats = pos / sxy if srgb is None else torch.cat([pos / sxy, rgb / srgb], -1)
            norm = dense_gaussian_filter(feats.new_ones(b, h * w, 1), feats).rsqrt()
            kernels.append((compat, feats, norm))

        def message(q):
            return sum(c * n * dense_gaussian_filter(n * q, f) for c, f, n in kernels)

        flat = logits.permute(0, 2, 3, 1).reshape(b, h * w, k)
        z = _mean_field(flat, self.iterations, message, dim=2)
        return z.reshape(b, h, w, k).permute(0, 3, 1, 2)

    def _lattice_mean_field(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        b, k, h, w = logits.shape
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        lattices = self._lattices(images, dtype)

        # Pixel-major [B, HW, K], the lattice's layout: the softmax runs over contiguous rows.
        flat = logits.to(dtype).permute(0, 2, 3, 1).reshape(b, h * w, k)
        unary = F.log_softmax(flat, dim=2)
        z = unary
        for _ in range(self.iterations if lattices else 0):
            # z = unary + Σ_m w_m k̃_m softmax(z), in one pass over the pixels
            z = permutohedral_filter(z, lattices, add=unary, softmax=True, backend=self.backend)
        return z.reshape(b, h, w, k).permute(0, 3, 1, 2).to(logits.dtype)

    def _lattices(self, images: torch.Tensor, dtype: torch.dtype) -> list:
        """A lattice per kernel with a nonzero weight: of float32 features (as pydensecrf's),
        with ``n_i·sqrt(w)`` folded into their weights, so that filtering through one is
        ``w·k̃``."""
        b, _, h, w = images.shape
        with torch.no_grad():
            pos = _positions(h, w, images.device).expand(b, -1, -1)
            rgb = (images.float() * 255.0).flatten(2).transpose(1, 2)
            out = []
            for compat, sxy, srgb in self._kernels():
                if compat == 0:
                    continue
                feats = pos / sxy if srgb is None else torch.cat([pos / sxy, rgb / srgb], -1)
                lattice = permutohedral_lattice(feats, backend=self.backend, validate=False)
                ones = feats.new_ones(b, h * w, 1)
                norm = permutohedral_filter(ones, lattice, backend=self.backend)[..., 0]
                scale = (norm.to(dtype) + 1e-20).rsqrt() * math.sqrt(compat)
                out.append(lattice.scaled(scale))
        return out

    def _kernels(self):
        """(weight, sxy, srgb or None) of the Gaussian and the bilateral kernel."""
        return [
            (self.gaussian_compat, self.gaussian_sxy, None),
            (self.bilateral_compat, self.bilateral_sxy, self.bilateral_srgb),
        ]

    def _offsets(self):
        r = self.window // 2
        return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]

    def _kernel(self, images: torch.Tensor, sxy: float, srgb: float | None) -> torch.Tensor:
        """Symmetrically normalised weights ``[B, window², H, W]``: entry o of pixel i is
        ``k̃(i, i + offset_o)``, zero where the neighbour lies outside the image."""
        colour = images * 255.0
        inside = torch.ones_like(colour[:, :1])
        weights = []
        for (dy, dx, colour_j), (_, _, inside_j) in zip(
            self._shifted(colour), self._shifted(inside), strict=True
        ):
            weight = inside_j * math.exp(-(dy * dy + dx * dx) / (2 * sxy * sxy))
            if srgb is not None:
                diff = (colour - colour_j).pow(2).sum(1, keepdim=True)
                weight = weight * torch.exp(-diff / (2 * srgb * srgb))
            weights.append(weight)
        k = torch.cat(weights, dim=1)
        norm = k.sum(1, keepdim=True).rsqrt()
        # k̃(i, j) = n_i k(i, j) n_j, with n_j gathered by the same shifts as the neighbours.
        return k * norm * torch.cat([norm_j for *_, norm_j in self._shifted(norm)], dim=1)

    def _shifted(self, x: torch.Tensor):
        """``(dy, dx, x_o)`` per window offset, ``x_o(i) = x(i + (dy, dx))``, zero off the image."""
        r = self.window // 2
        h, w = x.shape[-2:]
        padded = F.pad(x, (r, r, r, r))
        for dy, dx in self._offsets():
            yield dy, dx, padded[..., r + dy : r + dy + h, r + dx : r + dx + w]

    def _filter(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``Σ_j k̃(i, j) q_j`` for every pixel i and class. Summing one shifted view per offset
        keeps memory at O(K·H·W), where unfold would take O(window²·K·H·W)."""
        out = torch.zeros_like(q)
        for o, (_, _, q_o) in enumerate(self._shifted(q)):
            out = out.addcmul(k[:, o : o + 1], q_o)
        return out


def _mean_field(logits: torch.Tensor, iterations: int, message, dim: int = 1) -> torch.Tensor:
    """``iterations`` mean-field updates ``z = −ψ_u + message(softmax(z))`` from the unary
    ``−ψ_u = log_softmax(logits)`` (classes along `dim`); the last ``z``."""
    unary = F.log_softmax(logits, dim=dim)
    z = unary
    for _ in range(iterations):
        z = unary + message(z.softmax(dim=dim))
    return z


class CRFModel(nn.Module):
    """``model`` followed by ``crf`` on its logits and the input image: images → refined logits."""

    def __init__(self, model: nn.Module, crf: DenseCRF | None = None):
        super().__init__()
        self.model, self.crf = model, DenseCRF() if crf is None else crf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crf(logits_of(self.model(x)), x)


def _check_parameters(positive: dict, non_negative: dict) -> None:
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    for name, value in non_negative.items():
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _positions(h: int, w: int, device) -> torch.Tensor:
    """Pixel positions (x, y), float32 [1, HW, 2]: pydensecrf's order of the features."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    return torch.stack([xs, ys], -1).reshape(1, h * w, 2).float()


def _check_pair(logits: torch.Tensor, images: torch.Tensor) -> None:
    check_images(images)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a float tensor, got {got}")
    if (
        logits.dim() != 4
        or logits.shape[:1] + logits.shape[2:] != images.shape[:1] + images.shape[2:]
    ):
        shapes = f"logits {tuple(logits.shape)}, images {tuple(images.shape)}"
        raise ValueError(f"logits must be [B, K, H, W] for images [B, 3, H, W]; got {shapes}")
    if logits.numel() == 0:
        raise ValueError(f"logits must not be empty, got shape {tuple(logits.shape)}")
    if logits.device != images.device:
        raise ValueError(f"logits are on {logits.device} but images on {images.device}")
    for name, t in (("logits", logits), ("images", images)):
        if not bool(torch.isfinite(torch.stack(torch.aminmax(t))).all()):  # one pass; NaN spreads
            raise ValueError(f"{name} must be finite (they contain NaN or inf)")
