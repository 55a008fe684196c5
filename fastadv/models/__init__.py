"""Classifiers the experiments attack."""

from fastadv.models.scene import SceneNet, load_classifier

__all__ = ["SceneNet", "load_classifier"]
