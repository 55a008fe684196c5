"""Triton kernels of the colour ops (formulas: kernels/color_math.h, mirrored here line for line).

Triton has no atan2, cbrt or pow of its own (libdevice has them, but not the interpreter), so
they are built from polynomials, exp and log below, accurate to float64. rgb_to_lab and
delta_e2000 are elementwise, BLOCK pixels a program, on operands of any strides. color_variance
takes a tile of the map a program and loops over the window's offsets; Triton has no
shared-memory scatter, so unlike the CUDA kernel it computes each pair from both ends (twice the
ΔE00 work).

Precision, compiled as interpreted:
  - Comparisons round a Python float to float32 (arithmetic does not): thresholds are made in
    the operand's dtype (`_gt`).
  - Compiled float32 `/`, `tl.sqrt`, `tl.exp` and `tl.log` are approximate (div.full.f32,
    sqrt.approx, ex2.approx): the math below divides and takes roots rounded to nearest, and
    takes exp, log and sin from libdevice, which the interpreter lacks: INTERPRETED chooses.
  - Kernel arguments that are Python floats arrive as float32: float64 scalars travel as their
    int64 bit pattern (`_bits`, `_from_bits`).
"""

from __future__ import annotations

import struct

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from fastadv._tensors import compute_dtype
from fastadv.reference import color as reference
from fastadv.triton._common import launch

BLOCK = 256
TILE_H, TILE_W = 16, 32

INTERPRETED = tl.constexpr(triton.knobs.runtime.interpret)
PI = tl.constexpr(3.141592653589793)
DEG_PER_RAD = tl.constexpr(180.0 / 3.141592653589793)
RAD_PER_DEG = tl.constexpr(3.141592653589793 / 180.0)
NAN = tl.constexpr(float("nan"))


# ---- arithmetic in the operand's dtype, rounded as the C++ and CUDA kernels round it


@triton.jit
def _gt(x, threshold: tl.constexpr):
    """x > threshold, the threshold in x's dtype."""
    return x > tl.full([], threshold, x.dtype)


@triton.jit
def _div(x, y):
    """x / y rounded to nearest (float64 `/` is; float32 `/` compiles to div.full.f32)."""
    dtype = x.dtype if isinstance(x, tl.tensor) else y.dtype
    if dtype == tl.float32:
        q = tl.div_rn(x, y)
    else:
        q = x / y
    return q


@triton.jit
def _sqrt(x):
    if x.dtype == tl.float32:
        r = tl.sqrt_rn(x)
    else:
        r = tl.sqrt(x)
    return r


@triton.jit
def _exp(x):
    if INTERPRETED:
        r = tl.exp(x)
    else:
        r = libdevice.exp(x)
    return r


@triton.jit
def _log(x):
    if INTERPRETED:
        r = tl.log(x)
    else:
        r = libdevice.log(x)
    return r


@triton.jit
def _sin(x):
    if INTERPRETED:
        r = tl.sin(x)
    else:
        r = libdevice.sin(x)
    return r


@triton.jit
def _from_bits(bits):
    """The float64 whose bit pattern is the integer `bits` (see `_bits`)."""
    return bits.to(tl.int64).to(tl.float64, bitcast=True)


def _bits(value: float) -> int:
    """The bit pattern of the float64 `value`, as an int Triton passes exactly."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


@triton.jit
def _product_error(a, b, p):
    """a * b - p exactly, for p = a * b rounded. Compiled, tl.fma is fused and gives it; the
    interpreter's fma rounds twice, so there Dekker's product does, exact where each operation
    rounds on its own (as numpy's do)."""
    if INTERPRETED:
        if a.dtype == tl.float64:
            split = tl.full([], 134217729.0, a.dtype)  # 2^27 + 1
        else:
            split = tl.full([], 4097.0, a.dtype)  # 2^12 + 1
        ca = split * a
        cb = split * b
        a_hi = ca - (ca - a)
        b_hi = cb - (cb - b)
        a_lo = a - a_hi
        b_lo = b - b_hi
        e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    else:
        e = tl.fma(a, b, -p)
    return e


@triton.jit
def _hue_turn(a1, b1, a2, b2):
    """The sign of Δh' (±1) from the exact sign of a1 b2 - b1 a2 (hue_turn in color_math.h)."""
    p = a1 * b2
    q = b1 * a2
    e = _product_error(a1, b2, p) - _product_error(b1, a2, q)
    first_half = (b1 > 0) | ((b1 == 0) & (a1 > 0))  # h'1 < 180°: Sharma's 180° boundary
    positive = (p > q) | ((p == q) & ((e > 0) | ((e == 0) & first_half)))
    return tl.where(positive, 1.0, -1.0).to(a1.dtype)


# ---- math Triton lacks


@triton.jit
def _atan_unit(t):
    """atan(t) for t in [0, 1]: Cephes' rational approximation (atan_unit in color_math.h)."""
    mid = _gt(t, 0.66)
    x = tl.where(mid, _div(t - 1.0, t + 1.0), t)
    z = x * x
    p = (((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z
          - 7.500855792314704667340e1) * z - 1.228866684490136173410e2) * z \
        - 6.485021904942025371773e1  # fmt: skip
    q = ((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z
          + 4.328810604912902668951e2) * z + 4.853903996359136964868e2) * z \
        + 1.945506571482613964425e2  # fmt: skip
    r = x + x * _div(z * p, q)
    return tl.where(mid, r + 0.7853981633974483096, r)


@triton.jit
def _atan2(y, x):
    ax = tl.abs(x)
    ay = tl.abs(y)
    big = tl.maximum(ax, ay)
    a = _atan_unit(_div(tl.minimum(ax, ay), tl.where(big > 0, big, 1.0)))
    a = tl.where(ay > ax, 1.5707963267948966192 - a, a)
    a = tl.where(x < 0, -a + PI, a)  # tensor first: the interpreter's constexpr - tensor fails
    return tl.where(y < 0, -a, a)


@triton.jit
def _cbrt_positive(t):
    """t^(1/3) for t > 0: exp(log(t) / 3), polished by a Newton step."""
    y = _exp(_div(_log(t), 3.0))
    return y - _div(y * y * y - t, 3.0 * y * y)


# ---- sRGB -> CIELAB


@triton.jit
def _srgb_to_linear(c):
    above = _gt(c, 0.04045)
    u = _div(tl.where(above, c, 0.0) + 0.055, 1.055)
    return tl.where(above, _exp(2.4 * _log(u)), _div(c, 12.92))


@triton.jit
def _lab_f(t):
    above = _gt(t, 0.008856)
    return tl.where(above, _cbrt_positive(tl.where(above, t, 1.0)), 7.787 * t + 16.0 / 116.0)


@triton.jit
def _rgb_to_lab(r, g, b):
    r = _srgb_to_linear(r)
    g = _srgb_to_linear(g)
    b = _srgb_to_linear(b)
    x = _div(0.412453 * r + 0.357580 * g + 0.180423 * b, 0.95047)
    y = 0.212671 * r + 0.715160 * g + 0.072169 * b
    z = _div(0.019334 * r + 0.119193 * g + 0.950227 * b, 1.08883)
    fx = _lab_f(x)
    fy = _lab_f(y)
    fz = _lab_f(z)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


# ---- CIEDE2000


@triton.jit
def _chroma_ratio(c):
    c2 = c * c
    c7 = c2 * c2 * c2 * c
    return _sqrt(_div(c7, c7 + 6103515625.0))


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
    c1p = _sqrt(a1p * a1p + b1 * b1)
    c2p = _sqrt(a2p * a2p + b2 * b2)
    cc = c1p * c2p
    c_sum = c1p + c2p
    grey = cc == 0
    dot = a1p * a2p + b1 * b2
    # differences before products: exact zeros for identical colours, whatever LLVM contracts
    da = a2p - a1p
    db = b2 - b1
    turn = _hue_turn(a1, b1, a2, b2)

    # hue_geometry: the direction of h̄' and h̄' itself
    near = dot >= 0
    inv1 = _div(1.0, tl.where(grey, 1.0, c1p))
    inv2 = _div(1.0, tl.where(grey, 1.0, c2p))
    u1x = a1p * inv1
    u1y = b1 * inv1
    u2x = a2p * inv2
    u2y = b2 * inv2
    x = tl.where(grey, a1p + a2p, tl.where(near, u1x + u2x, turn * (u2y - u1y)))
    y = tl.where(grey, b1 + b2, tl.where(near, u1y + u2y, turn * (u1x - u2x)))
    norm = _sqrt(x * x + y * y)
    inv_norm = _div(1.0, tl.where(norm > 0, norm, 1.0))
    cos_h = tl.where(norm > 0, x * inv_norm, 1.0)
    sin_h = tl.where(norm > 0, y * inv_norm, 0.0)
    mean_h = _hue_degrees(y, x)

    # delta_hue_term, and C'2 - C'1 = (C'2² - C'1²) / (C'1 + C'2)
    cross = a1p * db - b1 * da
    d_h_near = cross * _sqrt(_div(2.0, tl.where(near & (cc != 0), cc + dot, 1.0)))
    d_h_far = turn * _sqrt(tl.maximum(2.0 * (cc - dot), 0.0))  # >= 0 where it is used
    d_h = tl.where(grey, 0.0, tl.where(near, d_h_near, d_h_far))
    d_c_sq = da * (a2p + a1p) + db * (b2 + b1)
    d_c = tl.where(c_sum > 0, _div(d_c_sq, tl.where(c_sum > 0, c_sum, 1.0)), 0.0)

    d_l = L2 - L1
    l_bar_50 = (L1 + L2) * 0.5 - 50.0
    l_bar_50_sq = l_bar_50 * l_bar_50
    c_bar_p = c_sum * 0.5
    s_l = 1.0 + _div(0.015 * l_bar_50_sq, _sqrt(20.0 + l_bar_50_sq))
    s_c = 1.0 + 0.045 * c_bar_p
    s_h = 1.0 + 0.015 * c_bar_p * _hue_weighting(cos_h, sin_h)
    theta_arg = (mean_h - 275.0) * 0.04  # / 25
    d_theta = 30.0 * _exp(-theta_arg * theta_arg)
    r_t = -2.0 * _chroma_ratio(c_bar_p) * _sin(2.0 * d_theta * RAD_PER_DEG)
    t_l = _div(d_l * inv_kl, s_l)
    t_c = _div(d_c * inv_kc, s_c)
    t_h = _div(d_h * inv_kh, s_h)
    sq = t_l * t_l + t_c * t_c + t_h * t_h + r_t * t_c * t_h
    return tl.where(sq > 0, sq, 0.0)


@triton.jit
def _is_finite(v):
    return (v - v) == 0


# ---- kernels


@triton.jit
def _pixel_offset(i, inner, s_outer, s_inner):
    """Offset of pixel i of an [M, inner] grid of pixels with strides s_outer, s_inner."""
    return (i // inner) * s_outer + (i % inner) * s_inner


@triton.jit
def _rgb_to_lab_kernel(
    rgb_ptr, lab_ptr, n, inner,
    in_outer, in_channel, in_inner, out_outer, out_channel, out_inner,
    BLOCK: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = i < n
    src = rgb_ptr + _pixel_offset(i, inner, in_outer, in_inner)
    r = tl.load(src, mask=inside)
    g = tl.load(src + in_channel, mask=inside)
    b = tl.load(src + 2 * in_channel, mask=inside)
    L, a, b = _rgb_to_lab(r, g, b)
    dst = lab_ptr + _pixel_offset(i, inner, out_outer, out_inner)
    tl.store(dst, L, mask=inside)
    tl.store(dst + out_channel, a, mask=inside)
    tl.store(dst + 2 * out_channel, b, mask=inside)


@triton.jit(do_not_specialize=["kl_bits", "kc_bits", "kh_bits"])
def _delta_e2000_kernel(
    x_ptr, y_ptr, out_ptr, n, inner,
    x_outer, x_channel, x_inner, y_outer, y_channel, y_inner, out_outer, out_inner,
    kl_bits, kc_bits, kh_bits,
    BLOCK: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = i < n
    x = x_ptr + _pixel_offset(i, inner, x_outer, x_inner)
    y = y_ptr + _pixel_offset(i, inner, y_outer, y_inner)
    L1 = tl.load(x, mask=inside, other=0.0)
    a1 = tl.load(x + x_channel, mask=inside, other=0.0)
    b1 = tl.load(x + 2 * x_channel, mask=inside, other=0.0)
    L2 = tl.load(y, mask=inside, other=0.0)
    a2 = tl.load(y + y_channel, mask=inside, other=0.0)
    b2 = tl.load(y + 2 * y_channel, mask=inside, other=0.0)
    c1 = _sqrt(a1 * a1 + b1 * b1)
    c2 = _sqrt(a2 * a2 + b2 * b2)
    inv_kl = (1.0 / _from_bits(kl_bits)).to(L1.dtype)
    inv_kc = (1.0 / _from_bits(kc_bits)).to(L1.dtype)
    inv_kh = (1.0 / _from_bits(kh_bits)).to(L1.dtype)
    e = _sqrt(_delta_e2000_squared(L1, a1, b1, c1, L2, a2, b2, c2, inv_kl, inv_kc, inv_kh))
    # NaN for a NaN or infinite component, rather than the clamp's 0 ("identical colours")
    finite = _is_finite(L1) & _is_finite(a1) & _is_finite(b1)
    finite = finite & _is_finite(L2) & _is_finite(a2) & _is_finite(b2)
    e = tl.where(finite, e, NAN)
    tl.store(out_ptr + _pixel_offset(i, inner, out_outer, out_inner), e, mask=inside)


@triton.jit
def _window_extent(i, n, radius):
    return tl.minimum(i + radius, n - 1) - tl.maximum(i - radius, 0) + 1


@triton.jit(do_not_specialize=["sigma_bits"])
def _color_variance_kernel(
    lab_ptr, out_ptr, height, width, radius, sigma_bits,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
):  # fmt: skip
    # One dimension of the grid for every tile of every image: axis 0 takes 2^31 - 1 programs,
    # axes 1 and 2 only 65535.
    tiles_x = tl.cdiv(width, TILE_W)
    tiles = tiles_x * tl.cdiv(height, TILE_H)
    program = tl.program_id(0).to(tl.int64)
    image = program // tiles
    tile = program % tiles
    plane = height.to(tl.int64) * width
    lab = lab_ptr + image * 3 * plane
    ys = (tile // tiles_x) * TILE_H + tl.arange(0, TILE_H)[:, None]
    xs = (tile % tiles_x) * TILE_W + tl.arange(0, TILE_W)[None, :]
    inside = (ys < height) & (xs < width)
    p = ys * width + xs
    L1 = tl.load(lab + p, mask=inside, other=0.0)
    a1 = tl.load(lab + plane + p, mask=inside, other=0.0)
    b1 = tl.load(lab + 2 * plane + p, mask=inside, other=0.0)
    c1 = _sqrt(a1 * a1 + b1 * b1)
    one = tl.full([], 1.0, L1.dtype)
    # g(d)² = (exp(-|d|² / 2σ²) / 2πσ²)², as gaussian_weight_squared in color_math.h
    sigma = _from_bits(sigma_bits).to(L1.dtype)
    two_s2 = 2.0 * sigma * sigma
    total = tl.zeros([TILE_H, TILE_W], dtype=L1.dtype)
    side = 2 * radius + 1
    for o in range(0, side * side):
        dy = o // side - radius
        dx = o % side - radius
        g = _div(_exp(_div(-(dy * dy + dx * dx).to(L1.dtype), two_s2)), two_s2 * PI)
        qy = ys + dy
        qx = xs + dx
        ok = inside & (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width) & (dy * dy + dx * dx > 0)
        q = qy * width + qx
        L2 = tl.load(lab + q, mask=ok, other=0.0)
        a2 = tl.load(lab + plane + q, mask=ok, other=0.0)
        b2 = tl.load(lab + 2 * plane + q, mask=ok, other=0.0)
        c2 = _sqrt(a2 * a2 + b2 * b2)
        e2 = _delta_e2000_squared(L1, a1, b1, c1, L2, a2, b2, c2, one, one, one)
        total += tl.where(ok, g * g * e2, 0.0)
    count = _window_extent(ys, height, radius) * _window_extent(xs, width, radius) - 1
    cv = tl.where(count > 0, _sqrt(_div(total, tl.maximum(count, 1).to(L1.dtype))), 0.0)
    tl.store(out_ptr + image * plane + p, cv, mask=inside)


# ---- the ops (same operands as torch.ops.fastadv.*, checked upstream)


def _compute(t: torch.Tensor) -> torch.Tensor:
    """t in the dtype the kernels compute in, its strides kept."""
    return t.to(compute_dtype(t.dtype))


@torch.library.custom_op("fastadv::rgb_to_lab_triton", mutates_args=())
def rgb_to_lab_triton(rgb: torch.Tensor) -> torch.Tensor:
    """Triton version of torch.ops.fastadv.rgb_to_lab: rgb [M, 3, P], any strides."""
    x = _compute(rgb)
    out = torch.empty_like(x)
    n = x.shape[0] * x.shape[2]
    if n:
        grid = (triton.cdiv(n, BLOCK),)
        launch(_rgb_to_lab_kernel, grid, x, out, n, x.shape[2], *x.stride(), *out.stride(),
               BLOCK=BLOCK)  # fmt: skip
    return out.to(rgb.dtype)


@torch.library.custom_op("fastadv::delta_e2000_triton", mutates_args=())
def delta_e2000_triton(
    lab1: torch.Tensor, lab2: torch.Tensor, kl: float, kc: float, kh: float
) -> torch.Tensor:
    """Triton version of torch.ops.fastadv.delta_e2000: lab1, lab2 [M, 3, P] -> [M, P]."""
    x = _compute(lab1)
    y = lab2.to(x.dtype)
    out = x.new_empty((x.shape[0], x.shape[2]))
    n = out.numel()
    if n:
        grid = (triton.cdiv(n, BLOCK),)
        launch(_delta_e2000_kernel, grid, x, y, out, n, x.shape[2], *x.stride(), *y.stride(),
               *out.stride(), _bits(kl), _bits(kc), _bits(kh), BLOCK=BLOCK)  # fmt: skip
    return out.to(lab1.dtype)


@torch.library.custom_op("fastadv::color_variance_triton", mutates_args=())
def color_variance_triton(
    rgb: torch.Tensor, kernel_size: int, sigma: float, normalize: bool
) -> torch.Tensor:
    """Triton version of torch.ops.fastadv.color_variance: rgb [B, 3, H, W] -> [B, 1, H, W]."""
    batch, _, height, width = rgb.shape
    lab = rgb_to_lab_triton(_compute(rgb).contiguous().reshape(batch, 3, height * width))
    out = lab.new_empty((batch, 1, height, width))
    if out.numel():
        grid = (batch * triton.cdiv(height, TILE_H) * triton.cdiv(width, TILE_W),)
        launch(_color_variance_kernel, grid, lab, out, height, width, kernel_size // 2,
               _bits(sigma), TILE_H=TILE_H, TILE_W=TILE_W)  # fmt: skip
    return (reference.normalize_by_max(out) if normalize else out).to(rgb.dtype)


rgb_to_lab_triton.register_fake(reference.rgb_to_lab_fake)
delta_e2000_triton.register_fake(reference.delta_e2000_fake)
color_variance_triton.register_fake(reference.color_variance_fake)
reference.register_autograd("fastadv::rgb_to_lab_triton", "fastadv::delta_e2000_triton")
