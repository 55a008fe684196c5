"""Triton kernels of the nearest-non-class neighbour fill (algorithm and tie rule:
kernels/nearest_fill_math.h, which the CPU and CUDA kernels share; this file mirrors it).

Pass 1: one program a row, in blocks of columns: the nearest non-hidden column to the left is a
running maximum (an associative scan), the one to the right a running minimum scanned in
reverse. Pass 2: one program a block of adjacent columns, one lane a column, each lane running
Meijster's sweeps over the rows; the lanes' envelope stacks live in scratch [2, B, H, W] so that
a block's loads and stores at one stack depth are adjacent.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastadv.reference.nearest_fill import nearest_fill_fake
from fastadv.triton._common import launch

ROW_BLOCK = 1024
COLUMN_BLOCK = 32  # one warp: a lane a column


@triton.jit
def _maximum(a, b):
    return tl.maximum(a, b)


@triton.jit
def _minimum(a, b):
    return tl.minimum(a, b)


@triton.jit
def _rows_kernel(hide_ptr, site_ptr, W, BLOCK: tl.constexpr):
    """site = the nearest non-hidden column of the row, the left one of two equidistant ones,
    -1 when the row is all hidden (nearer_site in nearest_fill_math.h)."""
    base = tl.program_id(0).to(tl.int64) * W
    offs = tl.arange(0, BLOCK)
    last = -1  # the last non-hidden column left of the block
    for start in range(0, W, BLOCK):
        cols = start + offs
        inside = cols < W
        hidden = tl.load(hide_ptr + base + cols, mask=inside, other=1)
        left = tl.associative_scan(tl.where(hidden == 0, cols, -1), 0, _maximum)
        left = tl.maximum(left, last)
        tl.store(site_ptr + base + cols, left, mask=inside)
        last = tl.max(left, 0)
    blocks = tl.cdiv(W, BLOCK)
    nxt = W  # the first non-hidden column right of the block; W: none
    for i in range(0, blocks):
        cols = (blocks - 1 - i) * BLOCK + offs
        inside = cols < W
        hidden = tl.load(hide_ptr + base + cols, mask=inside, other=1)
        right = tl.associative_scan(tl.where(hidden == 0, cols, W), 0, _minimum, reverse=True)
        right = tl.minimum(right, nxt)
        left = tl.load(site_ptr + base + cols, mask=inside, other=-1)
        take_right = (left < 0) | ((right < W) & (right - cols < cols - left))
        site = tl.where(take_right, tl.where(right < W, right, -1), left)
        tl.store(site_ptr + base + cols, site, mask=inside)
        nxt = tl.min(right, 0)


@triton.jit
def _row_cost(cols, site):
    """Squared distance along its row from a row's site to column `cols`."""
    return (cols - site) * (cols - site)


@triton.jit
def _parabola(u, row, cost):
    """Squared distance from row u of the column to the site of row `row`."""
    return (u - row) * (u - row) + cost


@triton.jit
def _build_envelope(site_col, s_col, t_col, cols, inside, H, W, BLOCK: tl.constexpr):
    """Meijster's forward sweep, one lane a column, the stack's top in registers
    (build_envelope in nearest_fill_math.h). Returns each lane's top index (-1: no site)."""
    q = tl.full([BLOCK], -1, tl.int32)
    top_row = tl.zeros([BLOCK], tl.int32)
    top_start = tl.zeros([BLOCK], tl.int32)
    top_cost = tl.zeros([BLOCK], tl.int32)
    for u in range(0, H):
        site_u = tl.load(site_col + u * W, mask=inside, other=-1)
        has = site_u >= 0
        f_u = _row_cost(cols, site_u)
        # pop while strictly nearer at the start of the top's segment
        pop = has & (q >= 0)
        pop = pop & (_parabola(top_start, top_row, top_cost) > _parabola(top_start, u, f_u))
        while tl.max(pop.to(tl.int32), 0) > 0:
            q = tl.where(pop, q - 1, q)
            reload = pop & (q >= 0)
            row = tl.load(s_col + q * W, mask=reload, other=0)
            top_row = tl.where(reload, row, top_row)
            top_start = tl.where(reload, tl.load(t_col + q * W, mask=reload, other=0), top_start)
            row_site = tl.load(site_col + row * W, mask=reload, other=0)
            top_cost = tl.where(reload, _row_cost(cols, row_site), top_cost)
            pop = reload & (_parabola(top_start, top_row, top_cost) > _parabola(top_start, u, f_u))
        nonempty = q >= 0
        # 1 + separation(top, u): the first row where u's site is strictly nearer
        numerator = u * u - top_row * top_row + f_u - top_cost
        w = 1 + numerator // tl.where(nonempty, 2 * (u - top_row), 1)
        push = has & (~nonempty | (w < H))
        tl.store(s_col + q * W, top_row, mask=push & nonempty)  # the covered top, to memory
        tl.store(t_col + q * W, top_start, mask=push & nonempty)
        q = tl.where(push, q + 1, q)
        top_row = tl.where(push, u, top_row)
        top_start = tl.where(push, tl.where(nonempty, w, 0), top_start)
        top_cost = tl.where(push, f_u, top_cost)
    tl.store(s_col + q * W, top_row, mask=q >= 0)
    tl.store(t_col + q * W, top_start, mask=q >= 0)
    return q


@triton.jit
def _euclidean(d2):
    """The float32 of the exact root (euclidean in nearest_fill_math.h): below 2^24 the correctly
    rounded float32 root, above it the float64 root (exact there) rounded to float32."""
    small = tl.sqrt_rn(d2.to(tl.float32))
    large = tl.sqrt(d2.to(tl.float64)).to(tl.float32)
    return tl.where(d2 < (1 << 24), small, large)


@triton.jit
def _columns_kernel(
    labels_ptr, site_ptr, out_ptr, distance_ptr, empty_ptr, stack_ptr, B, H, W,
    WITH_DISTANCE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Pass 2 for a block of columns of image b: the forward sweep, then the backward sweep
    that writes each pixel's source label (and distance); all-hidden images stay as they are."""
    b = tl.program_id(0).to(tl.int64)  # axis 0: a batch may pass axis 1's limit of 65535
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < W
    plane = H.to(tl.int64) * W
    site_col = site_ptr + b * plane + cols
    s_col = stack_ptr + b * plane + cols
    t_col = stack_ptr + (B + b) * plane + cols
    q = _build_envelope(site_col, s_col, t_col, cols, inside, H, W, BLOCK)
    tl.store(empty_ptr + b + cols * 0, (q < 0).to(tl.uint8), mask=cols == 0)
    # the backward sweep reads the stack once a segment (for_each_nearest in nearest_fill_math.h)
    live = q >= 0
    row = tl.load(s_col + q * W, mask=live, other=0)
    start = tl.load(t_col + q * W, mask=live, other=0)
    col = tl.load(site_col + row * W, mask=live, other=0)
    for i in range(0, H):
        u = H - 1 - i
        r = tl.where(live, row, u)  # all-hidden images stay as they are
        c = tl.where(live, col, cols)
        label = tl.load(labels_ptr + b * plane + r * W + c, mask=inside)
        tl.store(out_ptr + b * plane + u * W + cols, label, mask=inside)
        if WITH_DISTANCE:
            d2 = (u - r) * (u - r) + (cols - c) * (cols - c)
            distance = tl.where(live, _euclidean(d2), float("inf"))
            tl.store(distance_ptr + b * plane + u * W + cols, distance, mask=inside)
        step = live & (u == start) & (q > 0)  # segment 0 starts at row 0
        q = tl.where(step, q - 1, q)
        row = tl.where(step, tl.load(s_col + q * W, mask=step, other=0), row)
        start = tl.where(step, tl.load(t_col + q * W, mask=step, other=0), start)
        col = tl.where(step, tl.load(site_col + row * W, mask=step, other=0), col)


@torch.library.custom_op("fastadv::nearest_fill_triton", mutates_args=())
def nearest_fill_triton(
    labels: torch.Tensor, hide: torch.Tensor, with_distance: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton version of torch.ops.fastadv.nearest_fill (contiguous [B, H, W] operands, checked
    upstream)."""
    batch, height, width = labels.shape
    out, distance, _ = nearest_fill_fake(labels, hide, with_distance)
    empty = torch.zeros(batch, dtype=torch.uint8, device=labels.device)
    if labels.numel() == 0:
        return out, distance, empty.bool()
    site = torch.empty(labels.shape, dtype=torch.int32, device=labels.device)
    stacks = torch.empty((2, *labels.shape), dtype=torch.int32, device=labels.device)
    row_block = min(ROW_BLOCK, triton.next_power_of_2(width))
    launch(_rows_kernel, (batch * height,), hide.view(torch.uint8), site, width, BLOCK=row_block)
    grid = (batch, triton.cdiv(width, COLUMN_BLOCK))
    launch(
        _columns_kernel, grid, labels, site, out, distance if with_distance else out, empty, stacks,
        batch, height, width, WITH_DISTANCE=with_distance, BLOCK=COLUMN_BLOCK,
        num_warps=COLUMN_BLOCK // 32,
    )  # fmt: skip
    return out, distance, empty.bool()


nearest_fill_triton.register_fake(nearest_fill_fake)
