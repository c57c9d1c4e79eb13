"""The bot's SQLite database: connection, migrations and one transaction at a time.

Every SQL statement of the project lives in this package, one small async function per query,
with parameters always bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import stat
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

    async def write(self, sql: str, parameters: tuple[object, ...] = ()) -> int:
        """Run one write statement in its own transaction; return how many rows it changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, parameters)
            changed = cursor.rowcount
            await cursor.close()
        return int(changed)

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
    """Apply the numbered migrations newer than ``PRAGMA user_version``; return the new version.

    A database written by a newer moviebot (a version above the newest migration here) is
    refused with a :class:`StorageError`: this code would not know its tables.
    """
    async with db._lock:
        conn = db.connection
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        migrations = _migrations()
        newest = migrations[-1][0] if migrations else 0
        if version > newest:
            raise StorageError(
                f"The database at {db.path} was written by a newer moviebot (schema {version}; "
                f"this version knows up to {newest}). Upgrade moviebot, or point DATABASE_PATH "
                "at another file."
            )
        for number, name, sql in migrations:
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
    # Comments go first (they may hold semicolons); the migrations have no "--" in strings.
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


PRIVATE = 0o600  # members' ids and ratings: readable by the bot's user only


def _private_files(path: Path) -> None:
    """Create the database file 0600 if new; tighten it and its WAL files if wider."""
    if not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                file.chmod(PRIVATE)
            except OSError as exc:
                log.warning("Could not make %s private (mode %o): %s", file, mode, exc)
            else:
                log.warning("Made %s readable by its owner only (it was mode %o)", file, mode)


async def connect(
    path: Path | str, *, migrate_schema: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Database:
    """Open (creating if needed) the database in WAL mode with foreign keys, and migrate it.

    The file (and its ``-wal``/``-shm`` companions) are private to the bot's user. While another
    process holds a write lock, writes wait up to ``busy_timeout_ms`` before failing with a
    :class:`StorageError` that says to try again. If the database cannot be opened or migrated,
    the connection is closed again and a :class:`StorageError` says why.
    """
    path = Path(path)
    memory = str(path) == ":memory:"
    try:
        if not memory:
            path.parent.mkdir(parents=True, exist_ok=True)
            _private_files(path)
    except OSError as exc:
        raise StorageError(
            f"Could not open the database at {path}: {exc.strerror or exc}. "
            "Check DATABASE_PATH and the folder's permissions."
        ) from exc
    try:
        connection = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"Could not open the database at {path}: {exc}") from exc
    db = Database(connection, path)
    old_umask = os.umask(0o077)  # SQLite creates -wal and -shm with the process umask
    try:
        await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
        await connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a rating is on disk before the member sees the confirmation.
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA foreign_keys = ON")
        # Deleted rows (a member's /forgetme) are overwritten, not left in free pages.
        await connection.execute("PRAGMA secure_delete = ON")
        if migrate_schema:
            await migrate(db)
        if not memory:
            _private_files(path)
    except BaseException as exc:
        await connection.close()  # else its worker thread keeps the process alive
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"Could not open the database at {path}: {exc}") from exc
        raise
    finally:
        os.umask(old_umask)
    return db
