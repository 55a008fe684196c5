"""Backend choice for every op: "auto", "cuda", "triton", "cpu" (C++) or "torch" (reference),
and the one way each op finds its implementation on the chosen backend."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fastadv import _ext

BACKENDS = ("cuda", "triton", "cpu", "torch")


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says what is missing."""


def _why_unavailable(backend: str, device: torch.device) -> str | None:
    if backend == "torch":
        return None
    if backend == "cpu":
        if device.type != "cpu":
            return f"backend 'cpu' runs on CPU tensors, got a {device.type} tensor"
        return None if _ext.has_extension() else _ext.extension_error()
    if backend == "cuda":
        if device.type != "cuda":
            return f"backend 'cuda' runs on CUDA tensors, got a {device.type} tensor"
        if not _ext.has_cuda_kernels():
            return "fastadv._C was built without CUDA kernels (see fastadv.build_info())"
        return None
    if backend == "triton":
        if not _ext.has_triton():
            return "backend 'triton' needs the triton package (pip install triton)"
        if device.type == "cuda":
            return None
        if device.type == "cpu" and _ext.triton_interpreted():
            return None
        return (
            f"backend 'triton' runs on CUDA tensors, or on CPU tensors with TRITON_INTERPRET=1 set "
            f"before fastadv is imported; got a {device.type} tensor"
        )
    raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")


def available(device: torch.device) -> list[str]:
    """The backends that can run on `device`, fastest first."""
    return [b for b in BACKENDS if _why_unavailable(b, device) is None]


def resolve(backend: str, device: torch.device) -> str:
    """The backend to run: the fastest available for "auto", else the one named, if it can run.

    "auto" never picks the interpreted Triton on the CPU, nor the reference when a compiled
    backend exists.
    """
    if backend == "auto":
        choices = [b for b in available(device) if not (b == "triton" and device.type == "cpu")]
        return choices[0]
    why = _why_unavailable(backend, device)
    if why is not None:
        raise BackendUnavailableError(why)
    return backend


@dataclass(frozen=True)
class Implementations:
    """One op on every backend, each taking the same operands: its reference (the "torch"
    backend), the name of its C++ and CUDA op in torch.ops.fastadv ("cpu" and "cuda"), and its
    Triton op as (module of fastadv.triton, function)."""

    reference: Callable
    compiled: str
    triton: tuple[str, str]

    def pick(self, backend: str) -> Callable:
        """The implementation on `backend`, a resolved backend name (see `resolve`). The Triton
        module is imported on first use: `import fastadv` does not import triton."""
        if backend == "torch":
            return self.reference
        if backend == "triton":
            module, name = self.triton
            qualified = f"fastadv.triton.{module}"
            # Once imported, from sys.modules: torch.compile traces that, not import_module.
            loaded = sys.modules.get(qualified) or importlib.import_module(qualified)
            return getattr(loaded, name)
        return getattr(torch.ops.fastadv, self.compiled)
