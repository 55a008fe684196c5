"""fastadv's ops. Each takes backend="auto" | "cuda" | "triton" | "cpu" | "torch"."""

from fastadv.ops._backend import BACKENDS, BackendUnavailableError, available
from fastadv.ops.color import color_variance, delta_e2000, rgb_to_lab
from fastadv.ops.nearest_fill import NearestFill, nearest_fill
from fastadv.ops.permutohedral import Lattice, permutohedral_filter, permutohedral_lattice
from fastadv.ops.sign_step import SignStep, sign_step_

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "Lattice",
    "NearestFill",
    "SignStep",
    "available",
    "color_variance",
    "delta_e2000",
    "nearest_fill",
    "permutohedral_filter",
    "permutohedral_lattice",
    "rgb_to_lab",
    "sign_step_",
]
