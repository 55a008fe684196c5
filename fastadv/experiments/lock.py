"""One run at a time on a records folder.

Two runs on one folder would compute the same images twice and write the same lines twice, so
a run holds an exclusive lock on `<folder>/lock` while it works. The lock is an `flock`, which
the operating system drops when the process ends however it ends (killed included), so a dead
run's lock never blocks the next one; the file itself stays, and names the last holder. A run
that wrote nothing (refused before its work, e.g. on a model that would not load) leaves
nothing: the lock file and the folders it created go with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from fastadv.errors import UsageError


@contextlib.contextmanager
def folder_lock(folder):
    """Holds `folder`'s lock for the `with` block; a UsageError naming the holder when another
    live process holds it."""
    folder = Path(folder)
    created = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fresh = not (folder / "lock").exists()
    with open(folder / "lock", "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            raise UsageError(
                f"{folder} is in use by {holder}; wait for that run to end or give another --out"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        try:
            yield
        finally:
            if fresh and [entry.name for entry in folder.iterdir()] == ["lock"]:
                _remove_empty(folder / "lock", created)


def _missing_folders(folder: Path) -> list[Path]:
    """The folders `folder.mkdir(parents=True)` would create, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(lock: Path, folders: list[Path]) -> None:
    """Removes `lock`, then `folders` (deepest first) while they are empty. The lock goes while
    still held, so a run starting meanwhile finds it held (and stops) or gone (and makes its
    own)."""
    lock.unlink()
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # something else was written there meanwhile: it stays
            return
