"""Disk space held on the cache's disk for the answers in flight, given back when the disk fills.

Why: an answer is paid for the moment the provider sends it, so it must be able to land in the
cache. A free-space reading before each call cannot promise that: between the reading and the
commit, the WAL checkpoint, another stage's output or another process can take the room (CI lost
two paid answers that way on a 2 MB disk). So the guard holds the room itself, in a file on the
cache's disk sized for every answer in flight. When a commit finds the disk full, the guard stops
paying and lets the file go, and the answers in flight land in the room it held. The file has no
name (`tempfile.TemporaryFile`), so the kernel frees it when the process ends, even on kill -9.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO


class NoRoom(OSError):
    """The disk cannot give the room asked for (or the directory takes no files)."""


class Room:
    def __init__(self, directory: Path):
        self.directory = directory
        self.held = 0
        self._file: IO[bytes] | None = None

    def hold(self, nbytes: int) -> None:
        """Hold at least `nbytes` on the disk (the holding only grows: one syscall per new maximum)."""
        if nbytes <= self.held:
            return
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.directory, prefix=".distillery-room-")
            os.posix_fallocate(self._file.fileno(), 0, nbytes)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise NoRoom(e.errno, f"disk nearly full: cannot set aside {nbytes / 1e6:.1f} MB for the "
                                      f"answers in flight ({self.held / 1e6:.1f} MB held)") from None
            raise NoRoom(e.errno, f"{e.strerror or e}") from None
        self.held = nbytes

    def release(self) -> int:
        """Give the held space back to the disk; returns how many bytes were held."""
        freed, self.held = self.held, 0
        if self._file is not None:
            self._file.close()
            self._file = None
        return freed
