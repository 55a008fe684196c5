"""Segmentation models: FCN-8s, a DeepLab-style network, multiscale fusion, a dense CRF.

Models map images ``[B, 3, H, W]`` in [0, 1] to logits ``[B, K, H, W]``; normalisation is inside.
Shipped weights load by name: ``fastadv.models.load("fcn8s-synthcity")``.
"""

from fastadv.models import mindseye
from fastadv.models.common import Normalize
from fastadv.models.crf import CRFModel, DenseCRF
from fastadv.models.deeplab import DeepLabLite
from fastadv.models.fcn import FCN8s, compact_fcn8s, fcn8s_vgg16
from fastadv.models.multiscale import MultiScale
from fastadv.models.scene import SceneNet, load_classifier
from fastadv.models.weights import (
    ARCHITECTURES,
    PRETRAINED,
    WeightsError,
    create,
    load,
    load_weights,
    save_weights,
)

__all__ = [
    "ARCHITECTURES",
    "PRETRAINED",
    "CRFModel",
    "DeepLabLite",
    "DenseCRF",
    "FCN8s",
    "MultiScale",
    "Normalize",
    "SceneNet",
    "WeightsError",
    "compact_fcn8s",
    "create",
    "fcn8s_vgg16",
    "load",
    "load_classifier",
    "load_weights",
    "mindseye",
    "save_weights",
]
