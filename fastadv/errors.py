"""Errors a user can fix, and the optional packages of fastadv's extras.

A `UsageError` is a mistake the user can put right (a bad argument, a folder another run is
using, a missing extra): the `fastadv` command prints it as one line and exits with code 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Packages imported only where they are used (figures, statistics, the rendered objects'
# background photographs), and the extra of pyproject.toml that installs each.
EXTRAS = {"matplotlib": "studies", "scipy": "studies", "skimage": "studies"}


class UsageError(Exception):
    """A mistake the user can fix; its message is one line that says what to do."""


class MissingExtra(UsageError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def optional_import(name: str) -> ModuleType:
    """`importlib.import_module(name)` for a module of an optional package (`EXTRAS`); when
    the package is missing, a MissingExtra that names the extra to install."""
    package = name.split(".")[0]
    try:
        return importlib.import_module(name)
    except ImportError as error:
        extra = EXTRAS[package]
        raise MissingExtra(
            f"{package} is not installed; install fastadv's {extra} extra: "
            f"pip install 'fastadv[{extra}]'"
        ) from error


def require_extra(extra: str) -> None:
    """Imports every package of `extra` now, so that a missing one stops a command before it
    starts its work rather than at its end."""
    for package, its_extra in EXTRAS.items():
        if its_extra == extra:
            optional_import(package)
