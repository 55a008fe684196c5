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

ConvCRF (Teichmann and Cipolla 2018) truncates the kernels to a ``window × window`` neighbourhood,
which makes the cost ``O(window² · K · H · W)`` and lets it run on large images; a window of at
least ``2·max(H, W) − 1`` covers every pair, and then the result equals ``fully_connected``.
Everything is differentiable, in the logits and in the image, so attacks can go through the CRF.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastadv._outputs import logits_of
from fastadv.models.common import check_images


class DenseCRF(nn.Module):
    """Mean-field dense CRF on local windows: ``crf(logits, images) -> refined logits``."""

    def __init__(
        self,
        iterations: int = 5,
        window: int = 11,
        gaussian_sxy: float = 3.0,
        gaussian_compat: float = 3.0,
        bilateral_sxy: float = 80.0,
        bilateral_srgb: float = 13.0,
        bilateral_compat: float = 10.0,
    ):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number, got {window}")
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.iterations, self.window = iterations, window
        self.gaussian_sxy, self.gaussian_compat = gaussian_sxy, gaussian_compat
        self.bilateral_sxy, self.bilateral_srgb = bilateral_sxy, bilateral_srgb
        self.bilateral_compat = bilateral_compat

    def forward(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        _check_pair(logits, images)
        filters = [
            (w, self._kernel(images, sxy, srgb)) for w, sxy, srgb in self._kernels() if w != 0
        ]
        return _mean_field(
            logits, self.iterations, lambda q: sum(w * self._filter(q, k) for w, k in filters)
        )

    def fully_connected(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The same mean field with explicit ``[HW, HW]`` kernel matrices, every pair of pixels
        whatever the window: the reference the windowed filter is tested against (tiny images)."""
        _check_pair(logits, images)
        b, k, h, w = logits.shape
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        pos = torch.stack([ys, xs], -1).reshape(1, h * w, 2).to(images).expand(b, -1, -1)
        rgb = (images * 255.0).flatten(2).transpose(1, 2)
        matrices = []
        for compat, sxy, srgb in self._kernels():
            feats = pos / sxy if srgb is None else torch.cat([pos / sxy, rgb / srgb], -1)
            kernel = torch.exp(-0.5 * (feats[:, :, None] - feats[:, None, :]).pow(2).sum(-1))
            norm = kernel.sum(-1).rsqrt()
            matrices.append((compat, norm[:, :, None] * kernel * norm[:, None, :]))

        def message(q):
            flat = q.flatten(2)
            return sum(c * flat @ m.transpose(1, 2) for c, m in matrices).reshape(b, k, h, w)

        return _mean_field(logits, self.iterations, message)

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


def _mean_field(logits: torch.Tensor, iterations: int, message) -> torch.Tensor:
    """``iterations`` mean-field updates ``z = −ψ_u + message(softmax(z))`` from the unary
    ``−ψ_u = log_softmax(logits)``; the last ``z``."""
    unary = F.log_softmax(logits, dim=1)
    z = unary
    for _ in range(iterations):
        z = unary + message(z.softmax(dim=1))
    return z


class CRFModel(nn.Module):
    """``model`` followed by ``crf`` on its logits and the input image: images → refined logits."""

    def __init__(self, model: nn.Module, crf: DenseCRF | None = None):
        super().__init__()
        self.model, self.crf = model, DenseCRF() if crf is None else crf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crf(logits_of(self.model(x)), x)


def _check_pair(logits: torch.Tensor, images: torch.Tensor) -> None:
    check_images(images)
    if (
        logits.dim() != 4
        or logits.shape[:1] + logits.shape[2:] != images.shape[:1] + images.shape[2:]
    ):
        shapes = f"logits {tuple(logits.shape)}, images {tuple(images.shape)}"
        raise ValueError(f"logits must be [B, K, H, W] for images [B, 3, H, W]; got {shapes}")
