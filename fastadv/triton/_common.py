"""Helpers that several Triton kernels share."""

import triton
import triton.language as tl


@triton.jit
def round_half_even(v):
    """rint(v), exactly: on |v|, |v| - floor(|v|) has no rounding error (Sterbenz)."""
    a = tl.abs(v)
    lower = tl.floor(a)
    frac = a - lower
    odd = (lower - 2.0 * tl.floor(lower * 0.5)) == 1.0
    up = (frac > 0.5) | ((frac == 0.5) & odd)
    r = tl.where(up, lower + 1.0, lower)
    return tl.where(v < 0, -r, r)


@triton.jit
def strided_offset(k0, k1, k2, k3, s0, s1, s2, s3):
    """Offset of a broadcast operand at memory-order coordinates (k0 innermost)."""
    return k0 * s0 + k1 * s1 + k2 * s2 + k3 * s3
