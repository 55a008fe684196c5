"""fastadv's ops. Each takes backend="auto" | "cuda" | "triton" | "cpu" | "torch"."""

from fastadv.ops._backend import BACKENDS, BackendUnavailableError, available
from fastadv.ops.sign_step import sign_step_

__all__ = ["BACKENDS", "BackendUnavailableError", "available", "sign_step_"]
