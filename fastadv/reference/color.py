"""The colour ops' definitions: sRGB to CIELAB, CIEDE2000 and the CV-PIRE colour-variance map.

``rgb_to_lab`` matches ``skimage.color.rgb2lab`` (D65, 2° observer); ``delta_e2000`` follows
Sharma, Wu and Dalal (2005) and matches ``colour.difference.delta_E_CIE2000``, except that pairs
exactly on the 180° hue boundary take Sharma's published values, and that pairs near it land on
the side that exact arithmetic puts them (colour-science's hue angles can round across it).
``color_variance`` is, per image, with g(d) = exp(-|d|² / 2σ²) / (2πσ²) (not normalised, as in
CV-PIRE)::

    cV(p) = sqrt( Σ_{q ∈ N(p)} (g(q - p) · ΔE00(Lab(p), Lab(q)))² / |N(p)| )

where N(p) is the k×k window around p, p excluded, clipped to the image. Half types compute in
float32. The functions below take the operands of the compiled ops (torch.ops.fastadv.*):
colours along dim 1 ([M, 3, P]), images [B, 3, H, W]. Also here: the gradients every backend
uses (the reference's, recomputed in backward) and the fakes of the compiled ops.
"""

from __future__ import annotations

import math

import torch

from fastadv._tensors import compute_dtype

# skimage.color.colorconv.xyz_from_rgb, and the D65 white of the 2° observer.
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) gradient at 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, 1.0)), 0.0)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    above = t > 0.008856
    root = torch.pow(torch.where(above, t, 1.0), 1.0 / 3.0)  # cbrt; t > 0 in this branch
    return torch.where(above, root, 7.787 * t + 16.0 / 116.0)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """skimage.color.rgb2lab, channels along dim 1; half types compute in float32."""
    x = rgb.to(compute_dtype(rgb.dtype))
    above = x > 0.04045
    companded = torch.pow((torch.where(above, x, 0.0) + 0.055) / 1.055, 2.4)
    r, g, b = torch.where(above, companded, x / 12.92).unbind(1)
    # The matrix product written out: a matmul rounds differently at different positions, and
    # identical pixels must give identical colours (a flat image has zero colour variance).
    fx, fy, fz = (
        _lab_f((m[0] * r + m[1] * g + m[2] * b) / white)
        for m, white in zip(XYZ_FROM_RGB, D65_WHITE, strict=True)
    )
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)
    return lab.to(rgb.dtype)


def _hue_degrees(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The angle of (a, b) in degrees, [0, 360); 0 at the origin (with a finite gradient)."""
    zero = (b == 0) & (a == 0)
    h = torch.rad2deg(torch.atan2(torch.where(zero, 1.0, b), torch.where(zero, 1.0, a)))
    return torch.where(zero, 0.0, torch.where(h < 0, h + 360.0, h))


def _chroma_ratio(c: torch.Tensor) -> torch.Tensor:
    c7 = c**7
    return _safe_sqrt(c7 / (c7 + 25.0**7))


def _hue_weighting(c1: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    """T from (cos h̄', sin h̄'), by the double- and triple-angle identities."""
    c2, s2 = 2 * c1 * c1 - 1, 2 * s1 * c1
    c3, s3 = c1 * c2 - s1 * s2, s1 * c2 + c1 * s2
    c4, s4 = 2 * c2 * c2 - 1, 2 * s2 * c2
    r = math.radians
    return (
        1
        - 0.17 * (c1 * math.cos(r(30)) + s1 * math.sin(r(30)))
        + 0.24 * c2
        + 0.32 * (c3 * math.cos(r(6)) - s3 * math.sin(r(6)))
        - 0.20 * (c4 * math.cos(r(63)) + s4 * math.sin(r(63)))
    )


def _product_error(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """a * b - p exactly, for p = a * b rounded (float64): Dekker's product, exact in float64
    while nothing overflows, as each torch op rounds on its own."""
    split = 134217729.0  # 2^27 + 1
    ca, cb = split * a, split * b
    a_hi, b_hi = ca - (ca - a), cb - (cb - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def cross_sign(a1, b1, a2, b2) -> torch.Tensor:
    """The sign of a1 b2 - b1 a2 (±1, or 0), exactly. Rounding is monotonic, so where the rounded
    products differ their order is the exact one; where they are equal, their rounding errors
    decide. float32 products are exact in float64."""
    if a1.dtype != torch.float64:
        a1, b1, a2, b2 = (v.double() for v in (a1, b1, a2, b2))
        return torch.sign(a1 * b2 - b1 * a2)
    p, q = a1 * b2, b1 * a2
    ties = torch.sign(_product_error(a1, b2, p) - _product_error(b1, a2, q))
    return torch.where(p != q, torch.sign(p - q), ties)


def _hue_turn(a1, b1, a2, b2) -> torch.Tensor:
    """The sign of Δh' (±1), from the unscaled a (a' = (1 + G) a scales both vectors alike): see
    hue_turn in kernels/color_math.h."""
    a1, b1, a2, b2 = (v.detach() for v in (a1, b1, a2, b2))
    first_half = (b1 > 0) | ((b1 == 0) & (a1 > 0))  # h'1 < 180°: Sharma's 180° boundary
    s = cross_sign(a1, b1, a2, b2).to(a1.dtype)
    return torch.where(s != 0, s, torch.where(first_half, 1.0, -1.0))


def _hue_geometry(a1p, b1, c1p, a2p, b2, c2p, dot, grey, turn):
    """The direction (cos, sin) of h̄' and h̄' in degrees, from the chroma vectors as
    kernels/color_math.h's hue_geometry computes them (see there why and how)."""
    c1s, c2s = torch.where(grey, 1.0, c1p), torch.where(grey, 1.0, c2p)
    u1x, u1y, u2x, u2y = a1p / c1s, b1 / c1s, a2p / c2s, b2 / c2s
    near = dot >= 0
    x = torch.where(grey, a1p + a2p, torch.where(near, u1x + u2x, turn * (u2y - u1y)))
    y = torch.where(grey, b1 + b2, torch.where(near, u1y + u2y, turn * (u1x - u2x)))
    norm = _safe_sqrt(x * x + y * y)
    safe_norm = torch.where(norm > 0, norm, 1.0)
    cos_h = torch.where(norm > 0, x / safe_norm, 1.0)
    sin_h = torch.where(norm > 0, y / safe_norm, 0.0)
    return cos_h, sin_h, _hue_degrees(y, x)


def delta_e2000(lab1, lab2, kL=1.0, kC=1.0, kH=1.0) -> torch.Tensor:
    """ΔE00 after Sharma et al. (2005), L, a, b along dim 1 (removed in the result); NaN where a
    component of either colour is NaN or infinite.

    As kernels/color_math.h computes it: the hue terms come from the chroma vectors (a', b) rather
    than from hue angles, which is equivalent and which float32 rounds far less; the side of the
    180° hue discontinuity is decided exactly; identical colours give exactly 0.
    """
    acc = compute_dtype(lab1.dtype)
    L1, a1, b1 = lab1.to(acc).unbind(1)
    L2, a2, b2 = lab2.to(acc).unbind(1)
    c_bar = (_safe_sqrt(a1 * a1 + b1 * b1) + _safe_sqrt(a2 * a2 + b2 * b2)) / 2
    g = 0.5 * (1 - _chroma_ratio(c_bar))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = _safe_sqrt(a1p * a1p + b1 * b1), _safe_sqrt(a2p * a2p + b2 * b2)
    cc, c_sum = c1p * c2p, c1p + c2p
    grey = cc == 0
    dot = a1p * a2p + b1 * b2
    da, db = a2p - a1p, b2 - b1  # differences before products: exact zeros for identical colours
    turn = _hue_turn(a1, b1, a2, b2)
    cos_h, sin_h, mean_h = _hue_geometry(a1p, b1, c1p, a2p, b2, c2p, dot, grey, turn)

    near = (dot >= 0) & ~grey
    cross = a1p * db - b1 * da
    d_h_near = cross * _safe_sqrt(2 / torch.where(near, cc + dot, 1.0))
    d_h = torch.where(grey, 0.0, torch.where(near, d_h_near, turn * _safe_sqrt(2 * (cc - dot))))
    d_l = L2 - L1
    chromatic = c_sum > 0
    d_c_sq = da * (a2p + a1p) + db * (b2 + b1)  # C'2² - C'1²
    d_c = torch.where(chromatic, d_c_sq / torch.where(chromatic, c_sum, 1.0), 0.0)
    l_bar_50_sq = ((L1 + L2) / 2 - 50) ** 2
    c_bar_p = c_sum / 2
    s_l = 1 + 0.015 * l_bar_50_sq / torch.sqrt(20 + l_bar_50_sq)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * _hue_weighting(cos_h, sin_h)
    d_theta = 30 * torch.exp(-(((mean_h - 275) / 25) ** 2))
    r_t = -2 * _chroma_ratio(c_bar_p) * torch.sin(torch.deg2rad(2 * d_theta))
    tl, tc, th = d_l / (kL * s_l), d_c / (kC * s_c), d_h / (kH * s_h)
    de = _safe_sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)
    finite = torch.isfinite(lab1).all(1) & torch.isfinite(lab2).all(1)
    return torch.where(finite, de, torch.nan).to(lab1.dtype)


def forward_offsets(kernel_size: int) -> list[tuple[int, int]]:
    """The offsets (dy, dx) of the forward half of the window: each unordered pair once."""
    r = kernel_size // 2
    return [(dy, dx) for dy in range(r + 1) for dx in range(-r, r + 1) if dy > 0 or dx > 0]


def gaussian_weight(dy: int, dx: int, sigma: float) -> float:
    """g(d) = exp(-|d|² / 2σ²) / (2πσ²), not normalised (CV-PIRE)."""
    return math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma)) / (2 * math.pi * sigma * sigma)


def neighbour_count(height: int, width: int, radius: int, device) -> torch.Tensor:
    """|N(p)| [H, W]: the in-image pixels of each window, the centre excluded."""

    def extent(n):
        i = torch.arange(n, device=device)
        return (i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1

    return extent(height)[:, None] * extent(width)[None, :] - 1


def normalize_by_max(cv: torch.Tensor) -> torch.Tensor:
    """Each image's map over its maximum; all-zero maps (and empty ones) stay as they are."""
    if cv.numel() == 0:
        return cv
    peak = cv.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, cv / torch.where(peak > 0, peak, 1.0), 0.0)


def color_variance(rgb, kernel_size: int, sigma: float, normalize: bool):
    """The map of [B, 3, H, W] images, computed pair by pair over shifted windows."""
    acc = compute_dtype(rgb.dtype)
    batch, _, h, w = rgb.shape
    # Lab once per distinct colour: torch rounds transcendental functions differently in its
    # vectorised loops and their scalar tails, so identical pixels could otherwise get Lab values
    # an ulp apart, and a flat image a non-zero map (which normalisation would blow up to 1).
    colours, index = torch.unique(
        rgb.to(acc).movedim(1, -1).reshape(-1, 3), dim=0, return_inverse=True
    )
    lab = rgb_to_lab(colours[:, :, None])[index, :, 0]
    lab = lab.reshape(batch, h, w, 3).movedim(-1, 1)
    total = torch.zeros(batch, 1, h, w, dtype=acc, device=lab.device)
    for dy, dx in forward_offsets(kernel_size):
        if dy >= h or abs(dx) >= w:
            continue
        rows_p, rows_q = slice(0, h - dy), slice(dy, h)
        cols_p = slice(max(0, -dx), w - max(0, dx))
        cols_q = slice(max(0, dx), w - max(0, -dx))
        e = delta_e2000(lab[:, :, rows_p, cols_p], lab[:, :, rows_q, cols_q])
        e = (gaussian_weight(dy, dx, sigma) * e) ** 2
        total[:, 0, rows_p, cols_p] += e
        total[:, 0, rows_q, cols_q] += e
    count = neighbour_count(h, w, kernel_size // 2, lab.device)
    cv = torch.where(count > 0, _safe_sqrt(total / count.clamp(min=1)), 0.0)
    return (normalize_by_max(cv) if normalize else cv).to(rgb.dtype)


# ---- gradients (of every backend: the reference's, recomputed in backward) and fakes


def _rgb_to_lab_backward(ctx, grad):
    (rgb,) = ctx.saved_tensors
    _, vjp = torch.func.vjp(rgb_to_lab, rgb)
    return vjp(grad)[0]


def _delta_e2000_backward(ctx, grad):
    lab1, lab2 = ctx.saved_tensors
    _, vjp = torch.func.vjp(lambda x, y: delta_e2000(x, y, *ctx.weights), lab1, lab2)
    return (*vjp(grad), None, None, None)


def _save_rgb(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _save_labs(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])
    ctx.weights = inputs[2:]


def register_autograd(rgb_to_lab_op: str, delta_e2000_op: str) -> None:
    """Gradients of a backend's rgb_to_lab and delta_e2000 ops: the reference's."""
    torch.library.register_autograd(rgb_to_lab_op, _rgb_to_lab_backward, setup_context=_save_rgb)
    torch.library.register_autograd(delta_e2000_op, _delta_e2000_backward, setup_context=_save_labs)


def rgb_to_lab_fake(rgb):
    return torch.empty_like(rgb)


def delta_e2000_fake(lab1, lab2, kl, kc, kh):
    return lab1.new_empty((lab1.shape[0], lab1.shape[2]))


def color_variance_fake(rgb, kernel_size, sigma, normalize):
    return rgb.new_empty((rgb.shape[0], 1, rgb.shape[2], rgb.shape[3]))
