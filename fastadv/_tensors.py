"""Argument checks and layout helpers shared by the ops."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half types compute in float32; float64 stays float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_tensor(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_float(t, name: str) -> torch.Tensor:
    check_tensor(t, name)
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
    return t


def check_like(t: torch.Tensor, ref: torch.Tensor, name: str, ref_name: str) -> None:
    """`t` must match `ref` in shape, dtype and device."""
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {ref_name} has {ref.dtype}")
    if t.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but {ref_name} has {tuple(ref.shape)}")


def check_images(x, name: str) -> torch.Tensor:
    """A float image batch [B, C, H, W]."""
    check_float(x, name)
    if x.dim() != 4:
        raise ValueError(f"{name} must be 4-d [B, C, H, W], got shape {tuple(x.shape)}")
    return x


def is_dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: some permutation of the dims is contiguous."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda p: p[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def with_layout_of(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`t` with the strides of `ref` (a copy only when they differ)."""
    if t.stride() == ref.stride():
        return t
    return torch.empty_strided(ref.shape, ref.stride(), dtype=t.dtype, device=t.device).copy_(t)


def memory_order(t: torch.Tensor) -> list[int]:
    """Dims of a dense tensor from innermost to outermost (ties: the later logical dim inner)."""
    return sorted(reversed(range(t.dim())), key=lambda d: t.stride(d))


def check_dtype(t, name: str, dtypes: tuple[torch.dtype, ...]) -> torch.Tensor:
    """`t` must be a tensor of one of `dtypes`; the error names the argument and the choices."""
    check_tensor(t, name)
    if t.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype {names}; got {t.dtype}")
    return t
