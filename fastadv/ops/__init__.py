"""fastadv's ops. Each takes backend="auto" | "cuda" | "triton" | "cpu" | "torch"."""

from fastadv.ops._backend import BACKENDS, BackendUnavailableError, available
from fastadv.ops.color import color_variance, delta_e2000, rgb_to_lab
from fastadv.ops.nearest_fill import NearestFill, nearest_fill
from fastadv.ops.sign_step import SignStep, sign_step_

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "NearestFill",
    "SignStep",
    "available",
    "color_variance",
    "delta_e2000",
    "nearest_fill",
    "rgb_to_lab",
    "sign_step_",
]
