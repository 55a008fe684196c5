"""fastadv's ops. Each takes backend="auto" | "cuda" | "triton" | "cpu" | "torch"."""

from fastadv.ops._backend import BACKENDS, BackendUnavailableError, available
<<<<<<< HEAD
from fastadv.ops.nearest_fill import NearestFill, nearest_fill
=======
from fastadv.ops.color import color_variance, delta_e2000, rgb_to_lab
>>>>>>> color
from fastadv.ops.sign_step import sign_step_

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
<<<<<<< HEAD
    "NearestFill",
    "available",
    "nearest_fill",
=======
    "available",
    "color_variance",
    "delta_e2000",
    "rgb_to_lab",
>>>>>>> color
    "sign_step_",
]
