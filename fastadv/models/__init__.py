"""Models: the shipped networks, torchvision's, a user's own, and one way to load them all.

Models map images ``[B, 3, H, W]`` in [0, 1] to logits; normalisation (and a photo network's
resize) is inside. ``load`` takes a shipped name, a .safetensors file, ``torchvision:NAME`` or
``package.module:callable`` and attaches a ``ModelInfo`` (``describe(model)``):

>>> model = fastadv.models.load("fcn8s-synthcity")
>>> describe(model).task, describe(model).synthetic
('segmentation', True)
"""

from fastadv.models import mindseye
from fastadv.models.common import Normalize
from fastadv.models.crf import CRFModel, DenseCRF
from fastadv.models.deeplab import DeepLabLite
from fastadv.models.fcn import FCN8s, compact_fcn8s, fcn8s_vgg16
from fastadv.models.info import (
    CLASSIFICATION,
    SCORES,
    SEGMENTATION,
    STAGE,
    ModelError,
    ModelInfo,
    describe,
)
from fastadv.models.multiscale import MultiScale
from fastadv.models.preprocess import Preprocess, Preprocessed
from fastadv.models.registry import SHIPPED, load, shipped_names
from fastadv.models.scene import SceneNet
from fastadv.models.weights import ARCHITECTURES, architectures, create, save_weights

__all__ = [
    "ARCHITECTURES",
    "CLASSIFICATION",
    "SCORES",
    "SEGMENTATION",
    "SHIPPED",
    "STAGE",
    "CRFModel",
    "DeepLabLite",
    "DenseCRF",
    "FCN8s",
    "ModelError",
    "ModelInfo",
    "MultiScale",
    "Normalize",
    "Preprocess",
    "Preprocessed",
    "SceneNet",
    "architectures",
    "compact_fcn8s",
    "create",
    "describe",
    "fcn8s_vgg16",
    "load",
    "mindseye",
    "save_weights",
    "shipped_names",
]
