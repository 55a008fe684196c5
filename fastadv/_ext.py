"""Loads the compiled extension and says what this installation can run."""

from __future__ import annotations

import importlib.util
import os

import torch

try:
    from fastadv import _C
except ImportError as error:  # a source checkout that was never built
    _C = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

BUILD_HINT = "build it with `pip install --no-build-isolation -e .` in the fastadv checkout"


def has_extension() -> bool:
    return _C is not None


def has_cuda_kernels() -> bool:
    return _C is not None and bool(_C.build_info()["cuda"])


def has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    """Triton kernels run on CPU tensors only through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def extension_error() -> str:
    return f"fastadv._C could not be imported ({_IMPORT_ERROR}); {BUILD_HINT}"


def build_info() -> dict:
    """What was compiled (C++, CUDA and for which archs) and what this process can run."""
    compiled = dict(_C.build_info()) if _C is not None else {"error": extension_error()}
    return {
        **compiled,
        "extension": _C is not None,
        "triton": has_triton(),
        "triton_interpreted": triton_interpreted(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
