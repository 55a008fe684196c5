"""Triton kernels of the colour ops (formulas: kernels/color_math.h, mirrored here line for line).

Triton has no atan2, cbrt or pow of its own (libdevice has them, but not the interpreter), so
they are built from polynomials, exp and log below, accurate to float64. rgb_to_lab and
delta_e2000 are elementwise, BLOCK pixels a program. color_variance takes a tile of the map a
program and loops over the window's offsets; Triton has no shared-memory scatter, so unlike the
CUDA kernel it computes each pair from both ends (twice the ΔE00 work).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastadv._tensors import compute_dtype
from fastadv.reference import color as reference
from fastadv.triton._common import launch

BLOCK = 256
TILE_H, TILE_W = 16, 32

PI = 3.141592653589793
DEG_PER_RAD = 180.0 / PI
RAD_PER_DEG = PI / 180.0


# ---- math Triton lacks


@triton.jit
def _atan_unit(t):
    """atan(t) for t in [0, 1]: Cephes' rational approximation (atan_unit in color_math.h)."""
    mid = t > 0.66
    x = tl.where(mid, (t - 1.0) / (t + 1.0), t)
    z = x * x
    p = (((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z
          - 7.500855792314704667340e1) * z - 1.228866684490136173410e2) * z \
        - 6.485021904942025371773e1  # fmt: skip
    q = ((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z
          + 4.328810604912902668951e2) * z + 4.853903996359136964868e2) * z \
        + 1.945506571482613964425e2  # fmt: skip
    r = x + x * (z * p / q)
    return tl.where(mid, r + 0.7853981633974483096, r)


@triton.jit
def _atan2(y, x):
    ax = tl.abs(x)
    ay = tl.abs(y)
    big = tl.maximum(ax, ay)
    a = _atan_unit(tl.minimum(ax, ay) / tl.where(big > 0, big, 1.0))
    a = tl.where(ay > ax, 1.5707963267948966192 - a, a)
    a = tl.where(x < 0, PI - a, a)
    return tl.where(y < 0, -a, a)


@triton.jit
def _cbrt_positive(t):
    """t^(1/3) for t > 0: exp(log(t) / 3), polished by a Newton step."""
    y = tl.exp(tl.log(t) / 3.0)
    return y - (y * y * y - t) / (3.0 * y * y)


# ---- sRGB -> CIELAB


@triton.jit
def _srgb_to_linear(c):
    above = c > 0.04045
    u = (tl.where(above, c, 0.0) + 0.055) / 1.055
    return tl.where(above, tl.exp(2.4 * tl.log(u)), c / 12.92)


@triton.jit
def _lab_f(t):
    above = t > 0.008856
    return tl.where(above, _cbrt_positive(tl.where(above, t, 1.0)), 7.787 * t + 16.0 / 116.0)


@triton.jit
def _rgb_to_lab(r, g, b):
    r = _srgb_to_linear(r)
    g = _srgb_to_linear(g)
    b = _srgb_to_linear(b)
    x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.95047
    y = 0.212671 * r + 0.715160 * g + 0.072169 * b
    z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.08883
    fx = _lab_f(x)
    fy = _lab_f(y)
    fz = _lab_f(z)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


# ---- CIEDE2000


@triton.jit
def _chroma_ratio(c):
    c2 = c * c
    c7 = c2 * c2 * c2 * c
    return tl.sqrt(c7 / (c7 + 6103515625.0))


@triton.jit
def _hue_degrees(b, a):
    zero = (b == 0) & (a == 0)
    h = _atan2(b, a) * DEG_PER_RAD
    return tl.where(zero, 0.0, tl.where(h < 0, h + 360.0, h))


@triton.jit
def _hue_weighting(c1, s1):
    c2 = 2.0 * c1 * c1 - 1.0
    s2 = 2.0 * s1 * c1
    c3 = c1 * c2 - s1 * s2
    s3 = s1 * c2 + c1 * s2
    c4 = 2.0 * c2 * c2 - 1.0
    s4 = 2.0 * s2 * c2
    return (1.0 - 0.17 * (c1 * 0.86602540378443864676 + s1 * 0.5) + 0.24 * c2
            + 0.32 * (c3 * 0.99452189536827333692 - s3 * 0.10452846326765347140)
            - 0.20 * (c4 * 0.45399049973954679156 + s4 * 0.89100652418836786236))  # fmt: skip


@triton.jit
def _delta_e2000_squared(L1, a1, b1, c1, L2, a2, b2, c2, inv_kl, inv_kc, inv_kh):
    g = 0.5 * (1.0 - _chroma_ratio((c1 + c2) * 0.5))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = tl.sqrt(a1p * a1p + b1 * b1)
    c2p = tl.sqrt(a2p * a2p + b2 * b2)
    cc = c1p * c2p
    grey = cc == 0
    dot = a1p * a2p + b1 * b2
    cross = a1p * b2 - b1 * a2p

    # hue_turn and hue_geometry: the sign of Δh', the direction of h̄' and h̄' itself.
    p = a1p * b2
    q = b1 * a2p
    first_half = (b1 > 0) | ((b1 == 0) & (a1p > 0))
    turn = tl.where(p != q, tl.where(p > q, 1.0, -1.0), tl.where(first_half, 1.0, -1.0))
    turn = turn.to(dot.dtype)
    near = dot >= 0
    c1s = tl.where(grey, 1.0, c1p)
    c2s = tl.where(grey, 1.0, c2p)
    inv1 = 1.0 / c1s
    inv2 = 1.0 / c2s
    u1x = a1p * inv1
    u1y = b1 * inv1
    u2x = a2p * inv2
    u2y = b2 * inv2
    x = tl.where(grey, a1p + a2p, tl.where(near, u1x + u2x, turn * (u2y - u1y)))
    y = tl.where(grey, b1 + b2, tl.where(near, u1y + u2y, turn * (u1x - u2x)))
    norm = tl.sqrt(x * x + y * y)
    inv_norm = 1.0 / tl.where(norm > 0, norm, 1.0)
    cos_h = tl.where(norm > 0, x * inv_norm, 1.0)
    sin_h = tl.where(norm > 0, y * inv_norm, 0.0)
    mean_h = _hue_degrees(y, x)

    # delta_hue_term
    d_h_near = cross * tl.sqrt(2.0 / tl.where(near & (cc != 0), cc + dot, 1.0))
    d_h_far = turn * tl.sqrt(tl.maximum(2.0 * (cc - dot), 0.0))  # >= 0 where it is used
    d_h = tl.where(grey, 0.0, tl.where(near, d_h_near, d_h_far))

    d_l = L2 - L1
    d_c = c2p - c1p
    l_bar_50 = (L1 + L2) * 0.5 - 50.0
    l_bar_50_sq = l_bar_50 * l_bar_50
    c_bar_p = (c1p + c2p) * 0.5
    s_l = 1.0 + 0.015 * l_bar_50_sq / tl.sqrt(20.0 + l_bar_50_sq)
    s_c = 1.0 + 0.045 * c_bar_p
    s_h = 1.0 + 0.015 * c_bar_p * _hue_weighting(cos_h, sin_h)
    theta_arg = (mean_h - 275.0) * 0.04  # / 25
    d_theta = 30.0 * tl.exp(-theta_arg * theta_arg)
    r_t = -2.0 * _chroma_ratio(c_bar_p) * tl.sin(2.0 * d_theta * RAD_PER_DEG)
    t_l = d_l * inv_kl / s_l
    t_c = d_c * inv_kc / s_c
    t_h = d_h * inv_kh / s_h
    return tl.maximum(t_l * t_l + t_c * t_c + t_h * t_h + r_t * t_c * t_h, 0.0)


# ---- kernels


@triton.jit
def _rgb_to_lab_kernel(rgb_ptr, lab_ptr, n, inner, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = i < n
    base = (i // inner) * 3 * inner + i % inner
    r = tl.load(rgb_ptr + base, mask=inside)
    g = tl.load(rgb_ptr + base + inner, mask=inside)
    b = tl.load(rgb_ptr + base + 2 * inner, mask=inside)
    L, a, b = _rgb_to_lab(r, g, b)
    tl.store(lab_ptr + base, L, mask=inside)
    tl.store(lab_ptr + base + inner, a, mask=inside)
    tl.store(lab_ptr + base + 2 * inner, b, mask=inside)


@triton.jit
def _delta_e2000_kernel(x_ptr, y_ptr, inv_k_ptr, out_ptr, n, inner, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = i < n
    base = (i // inner) * 3 * inner + i % inner
    L1 = tl.load(x_ptr + base, mask=inside, other=0.0)
    a1 = tl.load(x_ptr + base + inner, mask=inside, other=0.0)
    b1 = tl.load(x_ptr + base + 2 * inner, mask=inside, other=0.0)
    L2 = tl.load(y_ptr + base, mask=inside, other=0.0)
    a2 = tl.load(y_ptr + base + inner, mask=inside, other=0.0)
    b2 = tl.load(y_ptr + base + 2 * inner, mask=inside, other=0.0)
    c1 = tl.sqrt(a1 * a1 + b1 * b1)
    c2 = tl.sqrt(a2 * a2 + b2 * b2)
    inv_kl = tl.load(inv_k_ptr)
    inv_kc = tl.load(inv_k_ptr + 1)
    inv_kh = tl.load(inv_k_ptr + 2)
    e2 = _delta_e2000_squared(L1, a1, b1, c1, L2, a2, b2, c2, inv_kl, inv_kc, inv_kh)
    tl.store(out_ptr + i, tl.sqrt(e2), mask=inside)


@triton.jit
def _window_extent(i, n, radius):
    return tl.minimum(i + radius, n - 1) - tl.maximum(i - radius, 0) + 1


@triton.jit
def _color_variance_kernel(
    lab_ptr, weight_sq_ptr, out_ptr, height, width, radius,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):  # fmt: skip
    plane = height * width
    image = tl.program_id(2).to(tl.int64)
    lab = lab_ptr + image * 3 * plane
    ys = tl.program_id(1) * TILE_H + tl.arange(0, TILE_H)[:, None]
    xs = tl.program_id(0) * TILE_W + tl.arange(0, TILE_W)[None, :]
    inside = (ys < height) & (xs < width)
    p = ys * width + xs
    L1 = tl.load(lab + p, mask=inside, other=0.0)
    a1 = tl.load(lab + plane + p, mask=inside, other=0.0)
    b1 = tl.load(lab + 2 * plane + p, mask=inside, other=0.0)
    c1 = tl.sqrt(a1 * a1 + b1 * b1)
    one = tl.full([], 1.0, L1.dtype)
    total = tl.zeros([TILE_H, TILE_W], dtype=L1.dtype)
    side = 2 * radius + 1
    for o in range(0, side * side):
        dy = o // side - radius
        dx = o % side - radius
        qy = ys + dy
        qx = xs + dx
        ok = inside & (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width)
        q = qy * width + qx
        L2 = tl.load(lab + q, mask=ok, other=0.0)
        a2 = tl.load(lab + plane + q, mask=ok, other=0.0)
        b2 = tl.load(lab + 2 * plane + q, mask=ok, other=0.0)
        c2 = tl.sqrt(a2 * a2 + b2 * b2)
        e2 = _delta_e2000_squared(L1, a1, b1, c1, L2, a2, b2, c2, one, one, one)
        total += tl.where(ok, tl.load(weight_sq_ptr + o) * e2, 0.0)  # weight 0 at the centre
    count = _window_extent(ys, height, radius) * _window_extent(xs, width, radius) - 1
    cv = tl.where(count > 0, tl.sqrt(total / tl.maximum(count, 1)), 0.0)
    tl.store(out_ptr + image * plane + p, cv, mask=inside)


# ---- the ops (same operands as torch.ops.fastadv.*, checked upstream)


def _compute(t: torch.Tensor) -> torch.Tensor:
    return t.to(compute_dtype(t.dtype)).contiguous()


@torch.library.custom_op("fastadv::rgb_to_lab_triton", mutates_args=())
def rgb_to_lab_triton(rgb: torch.Tensor) -> torch.Tensor:
    """Triton version of torch.ops.fastadv.rgb_to_lab: rgb [M, 3, P]."""
    x = _compute(rgb)
    out = torch.empty_like(x)
    n = x.shape[0] * x.shape[2]
    if n:
        launch(_rgb_to_lab_kernel, (triton.cdiv(n, BLOCK),), x, out, n, x.shape[2], BLOCK=BLOCK)
    return out.to(rgb.dtype)


@torch.library.custom_op("fastadv::delta_e2000_triton", mutates_args=())
def delta_e2000_triton(
    lab1: torch.Tensor, lab2: torch.Tensor, kl: float, kc: float, kh: float
) -> torch.Tensor:
    """Triton version of torch.ops.fastadv.delta_e2000: lab1, lab2 [M, 3, P] -> [M, P]."""
    x, y = _compute(lab1), _compute(lab2)
    # Triton passes Python floats as float32: the weights travel in a tensor.
    inv_k = torch.tensor([1 / kl, 1 / kc, 1 / kh], dtype=x.dtype, device=x.device)
    out = x.new_empty((x.shape[0], x.shape[2]))
    n = out.numel()
    if n:
        grid = (triton.cdiv(n, BLOCK),)
        launch(_delta_e2000_kernel, grid, x, y, inv_k, out, n, x.shape[2], BLOCK=BLOCK)
    return out.to(lab1.dtype)


@torch.library.custom_op("fastadv::color_variance_triton", mutates_args=())
def color_variance_triton(
    rgb: torch.Tensor, kernel_size: int, sigma: float, normalize: bool
) -> torch.Tensor:
    """Triton version of torch.ops.fastadv.color_variance: rgb [B, 3, H, W] -> [B, 1, H, W]."""
    batch, _, height, width = rgb.shape
    lab = rgb_to_lab_triton(_compute(rgb).reshape(batch, 3, height * width))
    r = kernel_size // 2
    weights = [
        reference.gaussian_weight(dy, dx, sigma) ** 2 if (dy, dx) != (0, 0) else 0.0
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
    ]
    weight_sq = torch.tensor(weights, dtype=lab.dtype, device=lab.device)
    out = lab.new_empty((batch, 1, height, width))
    if out.numel():
        grid = (triton.cdiv(width, TILE_W), triton.cdiv(height, TILE_H), batch)
        launch(
            _color_variance_kernel,
            grid,
            lab,
            weight_sq,
            out,
            height,
            width,
            r,
            TILE_H=TILE_H,
            TILE_W=TILE_W,
        )
    return (reference.normalize_by_max(out) if normalize else out).to(rgb.dtype)


rgb_to_lab_triton.register_fake(reference.rgb_to_lab_fake)
delta_e2000_triton.register_fake(reference.delta_e2000_fake)
color_variance_triton.register_fake(reference.color_variance_fake)
reference.register_autograd("fastadv::rgb_to_lab_triton", "fastadv::delta_e2000_triton")
