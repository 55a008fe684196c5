"""One run at a time on a records folder.

Two runs on one folder would compute the same images twice and write the same lines twice, so
a run holds an exclusive lock on `<folder>/lock` while it works. The lock is an `flock`, which
the operating system drops when the process ends however it ends (killed included), so a dead
run's lock never blocks the next one; the file itself stays, and names the last holder.
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
    folder.mkdir(parents=True, exist_ok=True)
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
        yield
