"""Segmentation data: SynthCity (procedural, built in) and a Cityscapes reader."""

from fastadv.data.cityscapes import CLASS_NAMES, PAPER_SIZE, Cityscapes, to_train_ids
from fastadv.data.rendered import RenderedObjects
from fastadv.data.scenes import SynthScenes
from fastadv.data.synthcity import IGNORE_INDEX, SYNTHCITY_CLASSES, SynthCity, render_scene

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "PAPER_SIZE",
    "SYNTHCITY_CLASSES",
    "Cityscapes",
    "RenderedObjects",
    "SynthCity",
    "SynthScenes",
    "render_scene",
    "to_train_ids",
]
