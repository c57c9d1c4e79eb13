"""The bot's SQLite database: connection, migrations and one transaction at a time.

Every SQL statement of the project lives in this package, one small async function per query,
with parameters always bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import aiosqlite

from bot.errors import UserFacingError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000


class StorageError(UserFacingError):
    """The database cannot do what was asked right now; the message is safe to show a member."""


def describe(exc: sqlite3.Error) -> StorageError:
    """Turn an SQLite error into a :class:`StorageError` with a message a member can act on."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StorageError(
            "The ratings database is busy right now. Nothing was changed; "
            "please try again in a moment."
        )
    if "readonly" in text or "read-only" in text:
        return StorageError(
            "The ratings database is read-only, so nothing can be saved. "
            "Please tell a server admin."
        )
    if "disk" in text and "full" in text:
        return StorageError(
            "The server's disk is full, so nothing can be saved. Please tell a server admin."
        )
    return StorageError(
        "The ratings database had a problem and nothing was changed. Please try again."
    )


class Database:
    """One aiosqlite connection, with a lock so that transactions never interleave."""

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the body as one write transaction; roll back on any error.

        SQLite errors, here or in the body, become a :class:`StorageError` a member can read.
        """
        async with self._lock:
            try:
                await self.connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                log.warning("Could not start a transaction on %s: %s", self.path, exc)
                raise describe(exc) from exc
            try:
                yield self.connection
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self.connection.rollback()
                if isinstance(exc, sqlite3.Error):
                    log.warning("Write failed on %s: %s", self.path, exc)
                    raise describe(exc) from exc
                raise
            try:
                await self.connection.commit()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self.connection.rollback()
                log.warning("Commit failed on %s: %s", self.path, exc)
                raise describe(exc) from exc

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run reads without interleaving with a transaction in progress."""
        async with self._lock:
            try:
                yield self.connection
            except sqlite3.Error as exc:
                log.warning("Read failed on %s: %s", self.path, exc)
                raise describe(exc) from exc

    async def close(self) -> None:
        """Close the connection."""
        await self.connection.close()


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("bot.db").joinpath("migrations").iterdir():
        match = re.match(r"^(\d+)_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(db: Database) -> int:
    """Apply the numbered migrations newer than ``PRAGMA user_version``; return the new version."""
    async with db._lock:
        conn = db.connection
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for number, name, sql in _migrations():
            if number <= version:
                continue
            log.info("Applying database migration %s", name)
            try:
                await conn.execute("BEGIN IMMEDIATE")
                for statement in _split_sql(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number:d}")
                await conn.commit()
            except sqlite3.Error as exc:
                await conn.rollback()
                raise describe(exc) from exc
            version = number
        return version


def _split_sql(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def connect(
    path: Path | str, *, migrate_schema: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Database:
    """Open (creating if needed) the database in WAL mode with foreign keys, and migrate it.

    While another process holds a write lock, writes wait up to ``busy_timeout_ms`` before
    failing with a :class:`StorageError` that says to try again.
    """
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = await aiosqlite.connect(path, isolation_level=None)
        await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
        await connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a rating is on disk before the member sees the confirmation.
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StorageError(f"Could not open the database at {path}: {exc}") from exc
    db = Database(connection, path)
    if migrate_schema:
        await migrate(db)
    return db
