"""The papers' studies, on a resumable and distributable evaluation harness.

Each study is one module (the protocol is in `study`'s docstring); `fastadv experiment NAME`
runs the study NAME of `STUDIES`.
"""

import importlib
from types import ModuleType

STUDIES = ("hide", "robustness", "protect", "mindseye")


def load_study(name: str) -> ModuleType:
    """The module of the study `name` (one of STUDIES)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; one of {', '.join(STUDIES)}")
    return importlib.import_module(f"fastadv.experiments.{name}")
