"""fastadv: fast, faithful adversarial attacks on image classifiers and segmentation networks."""

from fastadv import ops
from fastadv._ext import build_info
from fastadv._version import __version__

__all__ = ["__version__", "build_info", "ops"]
