"""Colour ops: sRGB to CIELAB, CIEDE2000 and the CV-PIRE colour-variance map (Sweere et al.).

What each computes (the formulas, and how they match scikit-image and colour-science) is defined
in fastadv.reference.color; this module checks the arguments, brings any layout to the compiled
ops' operands and picks the backend. rgb_to_lab and delta_e2000 are differentiable on every
backend (the compiled ones differentiate the reference); gradients are finite at grey pixels
(C' = 0).
"""

from __future__ import annotations

import math

import torch

from fastadv import _ext
from fastadv._tensors import check_float, check_like
from fastadv.ops import _backend
from fastadv.reference import color as reference

NORMALIZE = ("max", "none")

_RGB_TO_LAB = _backend.Implementations(
    reference=reference.rgb_to_lab, compiled="rgb_to_lab", triton=("color", "rgb_to_lab_triton")
)
_DELTA_E2000 = _backend.Implementations(
    reference=reference.delta_e2000, compiled="delta_e2000", triton=("color", "delta_e2000_triton")
)
_COLOR_VARIANCE = _backend.Implementations(
    reference=reference.color_variance,
    compiled="color_variance",
    triton=("color", "color_variance_triton"),
)


def rgb_to_lab(
    rgb: torch.Tensor, *, dim: int = -3, validate: bool = True, backend: str = "auto"
) -> torch.Tensor:
    """sRGB in [0, 1] to CIELAB (L in [0, 100]), like skimage.color.rgb2lab.

    Args:
        rgb: float tensor with 3 channels along `dim` ([B, 3, H, W] or [3, H, W] by default;
            [N, 3] with dim=-1), values in [0, 1]. Any layout (copied to a dense one).
        dim: the channel dimension.
        validate: check that every value lies in [0, 1] (one host synchronisation); False
            skips it (in a CUDA graph, or where the values were checked before). Unchecked, a NaN
            gives NaN in its pixel; other values outside [0, 1] give unspecified colours.
        backend: "auto", "cuda", "triton", "cpu" or "torch".

    Returns L, a, b along `dim`, same shape and dtype as `rgb` (empty for an empty `rgb`).
    """
    dim = _channel_dim(rgb, "rgb", dim)
    if validate:
        check_unit_range(rgb, "rgb")
    impl = _backend.resolve(backend, rgb.device)
    (pixels,) = _pixels(dim, rgb)
    return _unfold(_RGB_TO_LAB.pick(impl)(pixels), rgb.shape, dim)


def delta_e2000(
    lab1: torch.Tensor,
    lab2: torch.Tensor,
    kL: float = 1.0,
    kC: float = 1.0,
    kH: float = 1.0,
    *,
    dim: int = -3,
    backend: str = "auto",
) -> torch.Tensor:
    """CIEDE2000 colour difference ΔE00 between Lab colours, elementwise.

    Args:
        lab1, lab2: float tensors of one shape, dtype and device with L, a, b along `dim`
            ([B, 3, H, W] by default; [N, 3] with dim=-1).
        kL, kC, kH: the parametric weights (> 0); (2, 1, 1) for textiles.
        dim: the channel dimension.
        backend: "auto", "cuda", "triton", "cpu" or "torch".

    Returns ΔE00 with `dim` removed, in the inputs' dtype: NaN where a component of either
    colour is NaN or infinite, on every backend.
    """
    dim = _channel_dim(lab1, "lab1", dim)
    check_float(lab2, "lab2")
    check_like(lab2, lab1, "lab2", "lab1")
    weights = tuple(float(k) for k in (kL, kC, kH))
    for name, k in zip(("kL", "kC", "kH"), weights, strict=True):
        if not k > 0:
            raise ValueError(f"{name} must be > 0, got {k}")
    impl = _backend.resolve(backend, lab1.device)
    out = _DELTA_E2000.pick(impl)(*_pixels(dim, lab1, lab2), *weights)
    return _unfold(out, lab1.shape[:dim] + lab1.shape[dim + 1 :], dim)


def color_variance(
    rgb: torch.Tensor,
    kernel_size: int = 3,
    sigma: float = 1.0,
    normalize: str = "max",
    *,
    validate: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """The CV-PIRE colour-variance map (see the module docstring).

    Args:
        rgb: sRGB images [B, 3, H, W] (or one image [3, H, W]) in [0, 1], any float dtype.
        kernel_size: the window's side, odd and >= 3.
        sigma: the Gaussian's standard deviation in pixels, > 0.
        normalize: "max" divides each image's map by its maximum (an all-flat image gives
            zeros); "none" returns it raw.
        validate: check that every value lies in [0, 1] (one host synchronisation); False
            skips it (in a CUDA graph, or where the values were checked before).
        backend: "auto", "cuda", "triton", "cpu" or "torch".

    Returns [B, 1, H, W] (or [1, H, W]) in rgb's dtype: empty where rgb is, 0 for a pixel
    without neighbours (a 1x1 image), exactly 0 wherever the window is one colour. Not
    differentiable.
    """
    check_float(rgb, "rgb")
    if rgb.dim() not in (3, 4) or rgb.shape[-3] != 3:
        raise ValueError(f"rgb must be [B, 3, H, W] or [3, H, W], got shape {tuple(rgb.shape)}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an int, got {type(kernel_size).__name__}")
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
    sigma = float(sigma)
    if not sigma > 0 or math.isinf(sigma):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    if validate:
        check_unit_range(rgb, "rgb")
    batch = rgb if rgb.dim() == 4 else rgb.unsqueeze(0)
    op = _COLOR_VARIANCE.pick(_backend.resolve(backend, rgb.device))
    out = op(batch.contiguous(), kernel_size, sigma, normalize == "max")
    return out if rgb.dim() == 4 else out.squeeze(0)


# ---- argument checks and the [M, 3, P] form the compiled ops take


def check_unit_range(t: torch.Tensor, name: str) -> None:
    """Every value in [0, 1] (NaN fails too). One device sync."""
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
        nan = bool(torch.isnan(t).any())
        raise ValueError(f"{name} contains NaN" if nan else f"{name} has values outside [0, 1]")


def _channel_dim(t, name: str, dim: int) -> int:
    check_float(t, name)
    if t.dim() == 0 or not -t.dim() <= dim < t.dim():
        raise ValueError(f"dim {dim} is out of range for {name} of shape {tuple(t.shape)}")
    dim %= t.dim()
    if t.shape[dim] != 3:
        raise ValueError(f"{name} must have 3 channels along dim {dim}, got shape {tuple(t.shape)}")
    return dim


def _pixels(dim: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Tensors of one shape with 3 channels at `dim` as the [M, 3, P] operands of the ops: views
    where they exist (any strides: the kernels take them), else copies. Where the pixels of every
    operand are evenly spaced across M as well as P ([N, 3] colour lists, channels-last images),
    they are folded into one row [1, 3, M * P], which the kernels run through in long stretches;
    `_unfold` undoes that."""
    shape = tensors[0].shape
    m, p = math.prod(shape[:dim]), math.prod(shape[dim + 1 :])
    xs = [t.reshape(m, 3, p) for t in tensors]
    if m > 1 and p > 0 and all(p == 1 or x.stride(0) == p * x.stride(2) for x in xs):
        return [x.transpose(0, 1).reshape(1, 3, m * p) for x in xs]  # views: strides checked
    return xs


def _unfold(out: torch.Tensor, shape: tuple[int, ...], dim: int) -> torch.Tensor:
    """The result of an op on `_pixels(dim, t, ...)`, [1, 3, M * P] or [1, M * P] where they were
    folded, in `shape`: t's (rgb_to_lab) or t's without `dim` (delta_e2000)."""
    m = math.prod(shape[:dim])
    if out.shape[0] != m:  # folded
        out = out[0].unflatten(-1, (m, -1))
        out = out.transpose(0, 1) if out.dim() == 3 else out
    return out.reshape(shape)


# ---- the fakes and gradients of the compiled ops


if _ext.has_extension():
    torch.library.register_fake("fastadv::rgb_to_lab")(reference.rgb_to_lab_fake)
    torch.library.register_fake("fastadv::delta_e2000")(reference.delta_e2000_fake)
    torch.library.register_fake("fastadv::color_variance")(reference.color_variance_fake)
    reference.register_autograd("fastadv::rgb_to_lab", "fastadv::delta_e2000")
