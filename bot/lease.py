"""Who refits: one process per database holds the refit lease, every other one only serves.

A lease has four operations (:class:`RefitLease`). On SQLite it is an OS lock on a file beside
the database (:class:`FileLease`): the kernel drops it when the holder exits, however it exits,
so a killed bot never leaves a stale lease behind. A shared database (PostgreSQL) implements the
same interface with a lock held in the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class RefitLease(Protocol):
    """The right to refit the model and write ``MODEL_PATH`` for one database."""

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; return True when this process holds it."""
        ...

    def renew(self) -> bool:
        """Confirm the lease is still held (leases that expire extend it); return True if so."""
        ...

    def release(self) -> None:
        """Give the lease up (a no-op when not held)."""
        ...

    def holder(self) -> int | None:
        """Return the process id of the holder, if known."""
        ...


class FileLease:
    """A :class:`RefitLease` held as an exclusive ``flock`` on ``path`` (created 0600).

    The file holds the holder's process id, for the message other processes show.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Return True while this process holds the lease."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; return True when this process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def renew(self) -> bool:
        """Return True while held: an OS lock lasts as long as the process, nothing to extend."""
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close the lock file."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    def holder(self) -> int | None:
        """Return the holder's process id as written in the lock file, if any."""
        if self._fd is not None:
            return os.getpid()
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None


class NoLease:
    """A lease that is always held: for databases no other process can open (``:memory:``)."""

    def acquire(self) -> bool:
        """Return True: nobody else can hold it."""
        return True

    def renew(self) -> bool:
        """Return True."""
        return True

    def release(self) -> None:
        """Do nothing."""

    def holder(self) -> int | None:
        """Return this process's id."""
        return os.getpid()


def lease_for(database_path: Path) -> RefitLease:
    """Return the refit lease of the database at ``database_path``."""
    if str(database_path) == ":memory:":
        return NoLease()
    return FileLease(database_path.with_name(database_path.name + ".refit.lock"))
