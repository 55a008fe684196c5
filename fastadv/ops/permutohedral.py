"""The permutohedral-lattice Gaussian filter (Adams, Baek and Davis 2010): in O(N) rather than
O(N²), ``out_i ≈ Σ_j exp(−|f_i − f_j|² / 2) v_j`` over d-dimensional features (1 <= d <= 8).

The lattice is built once for a set of features and then filters any number of value tensors:
the mean field of a dense CRF filters every iteration, and its backward pass, through the lattices
of its two kernels. The filter is linear in the values, and its gradient is the same filter
transposed (the blur directions in reverse order), so it is differentiable in the values; the
lattice, and so the features, are constants to it.

Accuracy (tests/test_permutohedral.py states and tests the bounds): against the exact dense filter
(`dense_gaussian_filter`) on random features N(0, s²), s up to 2, the normalised filter
``K v / K 1`` has a median relative error up to 0.2 % for d = 2 and 4 % for d = 5 (10 % and 34 %
at the worst point); the unnormalised one underestimates by a factor that depends on d and on the
features' spread (0.44-1.01 for d = 2, 0.09-0.76 for d = 5), which normalisations remove.

The "torch" backend computes the same lattice and filter with tensor operations (the definition
the kernels are tested against); "cpu" and "cuda" are the compiled kernels. There is no Triton
backend: building the lattice is a hash table or a sort with a data-dependent number of vertices,
which Triton does not express; the filter's blur and slice are plain gathers that it would, and
its splat a segmented sum, but a Triton filter would still need the CUDA build of the lattice,
and next to the CUDA filter it would fill no gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from fastadv import _ext
from fastadv._tensors import check_dtype
from fastadv.ops import _backend
from fastadv.reference import permutohedral as reference
from fastadv.reference.permutohedral import MAX_DIM, dense_gaussian_filter

__all__ = ["Lattice", "dense_gaussian_filter", "permutohedral_filter", "permutohedral_lattice"]

FLOATS = (torch.float32, torch.float64)


class Lattice(NamedTuple):
    """A permutohedral lattice (fastadv.reference.permutohedral explains each tensor).

    offsets: int32 [B, N, d+1], each pixel's d+1 vertices.
    weights: [B, N, d+1] their barycentric weights (or weights with per-pixel scales folded in,
        see `scaled`), of the dtype the filter runs in.
    neighbours: int32 [d+1, M, 2], the blur neighbours of the M vertices.
    order: int32 [B·N·(d+1)], the (pixel, vertex) pairs sorted by vertex.
    """

    offsets: torch.Tensor
    weights: torch.Tensor
    neighbours: torch.Tensor
    order: torch.Tensor

    @property
    def dim(self) -> int:
        return self.neighbours.shape[0] - 1

    @property
    def vertices(self) -> int:
        return self.neighbours.shape[1]

    def scaled(self, scale: torch.Tensor) -> Lattice:
        """The lattice whose filter is ``diag(s) K diag(s)``, for per-pixel scales s [B, N] (the
        filter's dtype becomes the scale's)."""
        return self._replace(weights=self.weights.to(scale.dtype) * scale[..., None])


def permutohedral_lattice(
    features: torch.Tensor, *, backend: str = "auto", validate: bool = True
) -> Lattice:
    """The lattice of features [B, N, d] (float32 or float64; 1 <= d <= 8), already divided by
    the Gaussian's standard deviations. `validate` checks that they are finite (a host sync; the
    kernels refuse non-finite features anyway, with a less specific message)."""
    check_dtype(features, "features", FLOATS)
    if features.dim() != 3 or not 1 <= features.shape[2] <= MAX_DIM:
        raise ValueError(
            f"features must be [B, N, d] with 1 <= d <= {MAX_DIM}, got {tuple(features.shape)}"
        )
    if validate and not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite (they contain NaN or inf)")
    impl = _LATTICE.pick(_resolve(backend, features.device))
    return Lattice(*impl(features.contiguous()))


def permutohedral_filter(
    values: torch.Tensor,
    lattice: Lattice | Sequence[Lattice],
    *,
    transpose: bool = False,
    add: torch.Tensor | None = None,
    softmax: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Filters values [B, N, c] through `lattice` (splat, blur, slice), or through each of a
    sequence of lattices, the results summed; with `transpose`, the transposed filter; with
    `softmax`, the values' softmax over c rather than the values; plus `add` (of the values'
    shape). One pass over the pixels for all of it on the CPU. Differentiable in `values` and
    `add`. The values' dtype must be the lattices' weights'."""
    lattices = [lattice] if isinstance(lattice, Lattice) else list(lattice)
    if not lattices or not all(isinstance(lat, Lattice) for lat in lattices):
        raise TypeError("lattice must be a Lattice or a non-empty sequence of Lattices")
    check_dtype(values, "values", FLOATS)
    for lat in lattices:
        _check_values(values, lat)
    if add is not None and (
        add.shape != values.shape or add.dtype != values.dtype or add.device != values.device
    ):
        raise ValueError(
            f"add must match values {tuple(values.shape)} {values.dtype} on {values.device}, "
            f"got {tuple(add.shape)} {add.dtype} on {add.device}"
        )
    impl = _FILTER.pick(_resolve(backend, values.device))
    tensors = [[getattr(lat, name).contiguous() for lat in lattices] for name in Lattice._fields]
    add = None if add is None else add.contiguous()
    return impl(values.contiguous(), *tensors, transpose, add, softmax)


def _check_values(values: torch.Tensor, lattice: Lattice) -> None:
    pairs = lattice.offsets.shape
    if values.dim() != 3 or values.shape[:2] != pairs[:2]:
        raise ValueError(
            f"values must be [B, N, c] for a lattice of {tuple(pairs[:2])} pixels, "
            f"got {tuple(values.shape)}"
        )
    if values.dtype != lattice.weights.dtype:
        raise TypeError(
            f"values have dtype {values.dtype} but the lattice's weights {lattice.weights.dtype}"
        )
    if values.device != lattice.offsets.device:
        raise ValueError(
            f"values are on {values.device} but the lattice on {lattice.offsets.device}"
        )


def _resolve(backend: str, device: torch.device) -> str:
    """As _backend.resolve, without Triton (see the module doc)."""
    if backend == "triton":
        raise _backend.BackendUnavailableError(
            "the permutohedral ops have no Triton backend (see fastadv.ops.permutohedral)"
        )
    if backend == "auto":
        return next(b for b in _backend.available(device) if b != "triton")
    return _backend.resolve(backend, device)


_LATTICE = _backend.Implementations(
    reference=reference.permutohedral_lattice, compiled="permutohedral_lattice", triton=None
)
_FILTER = _backend.Implementations(
    reference=reference.permutohedral_filter, compiled="permutohedral_filter", triton=None
)


def _filter_backward(ctx, grad):
    """The filter's gradient: the transposed filter in the values (through the softmax's
    Jacobian if it took one), the identity in `add`."""
    grad = grad.contiguous()
    values = torch.ops.fastadv.permutohedral_filter(grad, *ctx.lattices, not ctx.transpose)
    if ctx.softmax:
        (logits,) = ctx.saved_tensors
        # q ⊙ (g − Σ_c q_c g_c), q = softmax(logits): torch's fused softmax backward
        q = logits.softmax(-1)
        values = torch._softmax_backward_data(values, q, -1, q.dtype)
    constants = [[None] * len(tensors) for tensors in ctx.lattices]
    return values, *constants, None, grad if ctx.has_add else None, None


def _filter_setup_context(ctx, inputs, output):
    values, offsets, weights, neighbours, order, transpose, add, softmax = inputs
    ctx.lattices, ctx.transpose = (offsets, weights, neighbours, order), transpose
    ctx.has_add, ctx.softmax = add is not None, softmax
    if softmax:
        ctx.save_for_backward(values)


if _ext.has_extension():
    torch.library.register_fake("fastadv::permutohedral_lattice")(
        reference.permutohedral_lattice_fake
    )
    torch.library.register_fake("fastadv::permutohedral_filter")(
        reference.permutohedral_filter_fake
    )
    torch.library.register_autograd(
        "fastadv::permutohedral_filter", _filter_backward, setup_context=_filter_setup_context
    )
