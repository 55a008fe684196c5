"""Datasets the experiments run on."""

from fastadv.data.scenes import SynthScenes

__all__ = ["SynthScenes"]
