"""The permutohedral-lattice Gaussian filter (Adams, Baek and Davis 2010): what it approximates, its
definition in PyTorch (the "torch" backend of both ops), the metadata of its outputs and the
constants every backend shares (the math and its sources: kernels/permutohedral_math.h).

What it approximates is the dense Gaussian filter of c-channel values over d-dimensional features,
``out_i = Σ_j exp(−|f_i − f_j|² / 2) v_j`` (`dense_gaussian_filter`, exact, O(N²): small inputs).
The lattice computes it in O(N·d²·c) instead: each pixel's feature is lifted onto the plane
``Σ x = 0`` of R^(d+1), its value splatted onto the d+1 vertices of the enclosing simplex of the
permutohedral lattice with barycentric weights, blurred by ``[½, 1, ½]`` along each of the d+1
lattice directions and sliced back with the same weights.

A lattice is four tensors (``permutohedral_lattice``), for a batch of B images of N pixels, where a
pair ``p = (b·N + i)·(d+1) + r`` is pixel i of image b and the vertex r of its simplex:

- ``offsets`` int32 ``[B, N, d+1]``: each pair's vertex id, vertices numbered in the order pairs
  first touch them (the same on every backend); images never share a vertex.
- ``weights`` ``[B, N, d+1]``, the features' dtype: the barycentric weights (each pixel's sum to 1).
- ``neighbours`` int32 ``[d+1, M, 2]``: the vertex one step backward and forward along each
  direction, M where there is none.
- ``order`` int32 ``[B·N·(d+1)]``: the pairs sorted by vertex, stably (the CUDA splat's order).

``permutohedral_filter(values [B, N, c], offsets, weights, neighbours, order, transpose, add,
softmax)`` takes lists of lattices (the four tensors of each in four lists): it splats the values
(or their softmax over c), blurs (directions 0..d, or d..0 when ``transpose``) and slices through
each, times ``lattice_alpha(d)``, and sums the results, plus ``add`` if given: the message of a
dense CRF's mean field, with all its kernels and its unary, in one pass over the pixels. Each
direction's blur is symmetric, so the filter with ``transpose`` is the exact transpose of the
filter without: the backward of one is the other. Weights other than the barycentric ones may be
passed (per-pixel scales folded in: the filter is then ``diag(s) K diag(s)``).
"""

from __future__ import annotations

import math

import torch

MAX_DIM = 8  # kLatticeMaxDim in kernels/permutohedral_math.h
MAX_COORD = 30000  # kLatticeMaxCoord


def lattice_scale(dim: int, k: int) -> float:
    """The scale of feature k before elevation: the lattice's blur then has unit deviation."""
    return math.sqrt(2.0 / 3.0) * (dim + 1) / math.sqrt((k + 1) * (k + 2))


def lattice_alpha(dim: int) -> float:
    """The constant that makes a vertex's blurred weight onto itself 1, as exp(0) is."""
    return 1.0 / (1.0 + 2.0**-dim)


def dense_gaussian_filter(values: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``out_i = Σ_j exp(−|f_i − f_j|² / 2) v_j`` exactly, image by image (values [B, N, c],
    features [B, N, d]); the pairwise kernel one block of rows at a time, its squared distances
    as ``|f_i|² + |f_j|² − 2 f_i·f_j`` (use float64 where the features are large)."""
    out = torch.empty_like(values)
    n = features.shape[1]
    rows = max(1, (1 << 22) // max(1, n))
    for b in range(features.shape[0]):
        f, v = features[b], values[b]
        norms = f.pow(2).sum(1)
        for start in range(0, n, rows):
            block = f[start : start + rows]
            d2 = norms[start : start + rows, None] + norms[None] - 2 * block @ f.T
            out[b, start : start + rows] = torch.exp(-0.5 * d2.clamp_min(0)) @ v
    return out


# ---- the lattice, in PyTorch ------------------------------------------------------------------


def _elevate(f: torch.Tensor) -> torch.Tensor:
    """[P, d] features → [P, d+1] points of the plane Σ x = 0 (the kernels' order of operations)."""
    d = f.shape[1]
    x = [None] * (d + 1)
    tail = torch.zeros_like(f[:, 0])
    for j in range(d, 0, -1):
        c = f[:, j - 1] * lattice_scale(d, j - 1)
        x[j] = tail - j * c
        tail = tail + c
    x[0] = tail
    return torch.stack(x, 1)


def _simplices(f: torch.Tensor):
    """Each feature's remainder-0 point, ranks and barycentric weights (locate_simplex)."""
    d = f.shape[1]
    x = _elevate(f)
    down = 1.0 / (d + 1)
    q = torch.round(x * down)
    limit = MAX_COORD // (d + 1) - 1
    if not bool(((q > -limit) & (q < limit)).all()):
        raise ValueError(
            "features are too large or not finite: the lattice's coordinates must fit 16 bits "
            f"(|feature| up to about {MAX_COORD // (d + 1) // 2})"
        )
    rem0 = q.long() * (d + 1)
    diff = x - rem0.to(x.dtype)
    later = torch.ones(d + 1, d + 1, dtype=torch.bool, device=f.device).triu(1)  # [i, j]: j > i
    above = diff[:, None, :] > diff[:, :, None]  # [p, i, j]: diff_j > diff_i
    level = diff[:, None, :] >= diff[:, :, None]
    rank = (above & later).sum(2) + (level & later.T).sum(2)
    rank = rank + q.long().sum(1, keepdim=True)
    low, high = rank < 0, rank > d
    rank = rank + (d + 1) * (low.long() - high.long())
    rem0 = rem0 + (d + 1) * (low.long() - high.long())
    v = (x - rem0.to(x.dtype)) * down
    b = torch.zeros(f.shape[0], d + 2, dtype=f.dtype, device=f.device)
    b.scatter_add_(1, d - rank, v)
    b.scatter_add_(1, d - rank + 1, -v)
    b[:, 0] = b[:, 0] + (1 + b[:, d + 1])
    return rem0, rank, b[:, : d + 1]


def _vertex_keys(rem0: torch.Tensor, rank: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """[P, d+1, d+1] keys (image, coordinates 0..d-1) of every feature's d+1 vertices."""
    d = rank.shape[1] - 1
    r = torch.arange(d + 1, device=rank.device)[None, :, None]
    shift = torch.where(rank[:, None, :d] <= d - r, r, r - (d + 1))
    coords = rem0[:, None, :d] + shift
    return torch.cat([image[:, None, None].expand(-1, d + 1, 1), coords], 2)


def _lookup(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The row of `keys` (unique rows) equal to each row of `queries`, len(keys) where none."""
    _, inverse = torch.unique(torch.cat([keys, queries]), dim=0, return_inverse=True)
    table = torch.full((int(inverse.max()) + 1,), len(keys), device=keys.device)
    table[inverse[: len(keys)]] = torch.arange(len(keys), device=keys.device)
    return table[inverse[len(keys) :]]


def permutohedral_lattice(features: torch.Tensor):
    """The lattice of features [B, N, d] (see the module doc) by plain tensor operations."""
    batch, n, d = features.shape
    if batch * n == 0:
        empty = features.new_empty((batch, n, d + 1), dtype=torch.int32)
        no_vertices = features.new_empty((d + 1, 0, 2), dtype=torch.int32)
        return empty, features.new_empty(empty.shape), no_vertices, empty.reshape(-1)
    flat = features.reshape(-1, d)
    rem0, rank, weights = _simplices(flat)
    image = torch.arange(batch, device=features.device).repeat_interleave(n)
    keys = _vertex_keys(rem0, rank, image).reshape(-1, d + 1)
    pairs = keys.shape[0]
    unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((len(unique),), pairs, device=features.device)
    first = first.scatter_reduce(0, inverse, torch.arange(pairs, device=features.device), "amin")
    by_touch = torch.argsort(first)
    vertex_of = torch.empty_like(by_touch)
    vertex_of[by_touch] = torch.arange(len(unique), device=features.device)
    offsets = vertex_of[inverse]
    vertex_keys = unique[by_touch]
    neighbours = []
    for j in range(d + 1):
        pair = []
        for step in (-1, 1):
            move = torch.full((d,), -step, device=features.device)
            if j < d:
                move[j] = step * d
            query = vertex_keys.clone()
            query[:, 1:] += move
            pair.append(_lookup(vertex_keys, query))
        neighbours.append(torch.stack(pair, 1))
    return (
        offsets.reshape(batch, n, d + 1).int(),
        weights.reshape(batch, n, d + 1),
        torch.stack(neighbours).reshape(d + 1, len(unique), 2).int(),
        torch.argsort(offsets, stable=True).int(),
    )


def _filter_one(q, offsets, weights, neighbours, transpose):
    d = neighbours.shape[0] - 1
    m, c = neighbours.shape[1], q.shape[2]
    index = offsets.reshape(-1).long()
    pairs = (weights[..., None] * q[:, :, None, :]).reshape(-1, c)
    lattice = q.new_zeros(m + 1, c).index_add(0, index, pairs)
    for step in range(d + 1):
        j = d - step if transpose else step
        n = neighbours[j].long()
        blurred = lattice[:m] + 0.5 * (lattice[n[:, 0]] + lattice[n[:, 1]])
        lattice = torch.cat([blurred, lattice[m:]])
    return lattice_alpha(d) * (weights[..., None] * lattice[offsets.long()]).sum(2)


def permutohedral_filter(
    values: torch.Tensor,
    offsets: list[torch.Tensor],
    weights: list[torch.Tensor],
    neighbours: list[torch.Tensor],
    order: list[torch.Tensor],
    transpose: bool,
    add: torch.Tensor | None = None,
    softmax: bool = False,
) -> torch.Tensor:
    """Splat, blur and slice values [B, N, c] (or their softmax over c) through each lattice of
    the lists, the results summed, plus `add` (see the module doc)."""
    q = values.softmax(-1) if softmax else values
    out = add
    for lattice in zip(offsets, weights, neighbours, strict=True):
        filtered = _filter_one(q, *lattice, transpose)
        out = filtered if out is None else out + filtered
    return out


def permutohedral_lattice_fake(features: torch.Tensor):
    """Empty outputs of the lattice's shapes and dtypes (M, the number of vertices, depends on the
    data): the fake (meta) implementation of fastadv::permutohedral_lattice."""
    batch, n, d = features.shape
    vertices = torch.library.get_ctx().new_dynamic_size()
    pair_shape = (batch, n, d + 1)
    return (
        features.new_empty(pair_shape, dtype=torch.int32),
        features.new_empty(pair_shape),
        features.new_empty((d + 1, vertices, 2), dtype=torch.int32),
        features.new_empty((batch * n * (d + 1),), dtype=torch.int32),
    )


def permutohedral_filter_fake(
    values, offsets, weights, neighbours, order, transpose, add=None, softmax=False
):
    """The filtered values' metadata: the fake implementation of fastadv::permutohedral_filter."""
    return torch.empty_like(values)
