"""One refit at a time per database: a process holds the refit lease while its refit runs.

Any process on a database may refit (a scheduled refit, ``/retrain`` on any shard, the start-up
fit); it takes the lease first, and while another process holds it, the answer is "already
running". The others notice the new model file and load it. A lease has four operations
(:class:`RefitLease`). On SQLite it is an OS lock on a file beside the database
(:class:`FileLease`); on PostgreSQL it is an advisory lock held by a session of its own
(``bot.db.postgres.AdvisoryLease``). Either way the lock goes when its holder goes, however it
exits, so a killed bot never leaves a stale lease behind. Each store hands out its own lease:
``Database.refit_lease()``.
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

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; return True when this process holds it."""
        ...

    async def renew(self) -> bool:
        """Confirm the lease is still held (leases that expire extend it); return True if so."""
        ...

    async def release(self) -> None:
        """Give the lease up (a no-op when not held)."""
        ...

    async def holder(self) -> int | None:
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

    async def acquire(self) -> bool:
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

    async def renew(self) -> bool:
        """Return True while held: the lock is on the file still at ``path``.

        An OS lock lasts as long as the process; but if the lock file was deleted or replaced
        (someone tidying ``data/``), another process can lock the new file, so the lease is lost.
        """
        if self._fd is None:
            return False
        try:
            held, current = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            return False
        return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)

    async def release(self) -> None:
        """Unlock and close the lock file."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    async def holder(self) -> int | None:
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

    async def acquire(self) -> bool:
        """Return True: nobody else can hold it."""
        return True

    async def renew(self) -> bool:
        """Return True."""
        return True

    async def release(self) -> None:
        """Do nothing."""

    async def holder(self) -> int | None:
        """Return this process's id."""
        return os.getpid()


def file_lease_for(database_path: Path) -> RefitLease:
    """Return the refit lease of the SQLite database at ``database_path``."""
    if str(database_path) == ":memory:":
        return NoLease()
    return FileLease(database_path.with_name(database_path.name + ".refit.lock"))
