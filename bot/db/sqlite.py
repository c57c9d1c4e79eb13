"""The SQLite store (the default): one aiosqlite connection in WAL mode, one file on disk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import aiosqlite

from bot.db import (
    Connection,
    Database,
    Row,
    StorageError,
    busy,
    disk_full,
    failed,
    migrations,
    read_only,
    split_sql,
    too_new,
)
from bot.lease import RefitLease, file_lease_for

log = logging.getLogger(__name__)

PRIVATE = 0o600  # members' ids and ratings: readable by the bot's user only


def describe(exc: sqlite3.Error | OverflowError) -> StorageError:
    """Turn an SQLite error into a :class:`StorageError` with a message a member can act on."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return busy()
    if "readonly" in text or "read-only" in text:
        return read_only()
    if "disk" in text and "full" in text:
        return disk_full()
    return failed()


class SQLiteConnection(Connection):
    """The :class:`Connection` over the store's one aiosqlite connection."""

    def __init__(self, connection: aiosqlite.Connection, location: str) -> None:
        self.connection = connection
        self.location = location

    def _fail(self, exc: sqlite3.Error | OverflowError) -> StorageError:
        log.warning("Statement failed on %s: %s", self.location, exc)
        return describe(exc)

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        try:
            cursor = await self.connection.execute(sql, tuple(parameters))
            changed = cursor.rowcount
            await cursor.close()
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an id above 2^63
            raise self._fail(exc) from exc
        return max(int(changed), 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        try:
            await self.connection.executemany(sql, [tuple(row) for row in rows])
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an id above 2^63
            raise self._fail(exc) from exc

    async def fetchall(self, sql: str, parameters: Sequence[object] = ()) -> list[Row]:
        try:
            async with self.connection.execute(sql, tuple(parameters)) as cursor:
                return [tuple(row) async for row in cursor]
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an id above 2^63
            raise self._fail(exc) from exc


class SQLiteDatabase(Database):
    """One aiosqlite connection, with a lock so that transactions never interleave."""

    kind = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path
        self.location = str(path)
        self._conn = SQLiteConnection(connection, self.location)
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """Run the body as one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
        async with self._lock:
            try:
                await self.connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                log.warning("Could not start a transaction on %s: %s", self.path, exc)
                raise describe(exc) from exc
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self.connection.rollback()
                raise
            try:
                await self.connection.commit()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    await self.connection.rollback()
                log.warning("Commit failed on %s: %s", self.path, exc)
                raise describe(exc) from exc

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        """Run reads without interleaving with a transaction in progress."""
        async with self._lock:
            yield self._conn

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        """A deferred read transaction: in WAL mode, writers go on while it reads."""
        async with self._lock:
            try:
                await self.connection.execute("BEGIN")
            except sqlite3.Error as exc:
                raise describe(exc) from exc
            try:
                yield self._conn
            finally:
                with contextlib.suppress(sqlite3.Error):
                    await self.connection.rollback()

    async def id_counter(self, conn: Connection, table: str) -> int:
        """Return ``sqlite_sequence``'s value for ``table`` (AUTOINCREMENT never reuses ids)."""
        value = await conn.fetchval("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
        return int(value or 0)

    async def continue_ids(self, conn: Connection, table: str, used: int) -> None:
        """Raise ``sqlite_sequence`` for ``table`` to at least ``used``."""
        await conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, 0"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
            (table, table),
        )
        await conn.execute(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (used, table)
        )

    async def schema_version(self) -> int:
        """Return ``PRAGMA user_version``: the newest migration applied."""
        async with self.read() as conn:
            return int(await conn.fetchval("PRAGMA user_version") or 0)

    def refit_lease(self) -> RefitLease:
        """Return the lock file beside the database (none for ``:memory:``)."""
        assert self.path is not None
        return file_lease_for(self.path)

    async def close(self) -> None:
        """Close the connection."""
        await self.connection.close()


async def migrate(db: SQLiteDatabase) -> int:
    """Apply the numbered migrations newer than ``PRAGMA user_version``; return the new version.

    A database written by a newer moviebot (a version above the newest migration here) is
    refused with a :class:`StorageError`: this code would not know its tables.
    """
    async with db._lock:
        conn = db.connection
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        known = migrations("sqlite")
        newest = known[-1][0] if known else 0
        if version > newest:
            raise too_new(db.location, version, newest)
        for number, name, sql in known:
            if number <= version:
                continue
            log.info("Applying database migration %s", name)
            try:
                await conn.execute("BEGIN IMMEDIATE")
                for statement in split_sql(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number:d}")
                await conn.commit()
            except sqlite3.Error as exc:
                await conn.rollback()
                raise describe(exc) from exc
            version = number
        return version


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


async def connect_sqlite(
    path: Path,
    *,
    migrate_schema: bool = True,
    busy_timeout_ms: int = 5_000,
    read_only: bool = False,
) -> SQLiteDatabase:
    """Open (creating if needed) the database in WAL mode with foreign keys, and migrate it.

    The file (and its ``-wal``/``-shm`` companions) are private to the bot's user. While another
    process holds a write lock, writes wait up to ``busy_timeout_ms`` before failing with a
    :class:`StorageError` that says to try again. If the database cannot be opened or migrated,
    the connection is closed again and a :class:`StorageError` says why.
    """
    memory = str(path) == ":memory:"
    if read_only:
        return await _open_read_only(path, busy_timeout_ms)
    try:
        if not memory:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A new file is private from the start; an old one is tightened once it opens.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE))
    except OSError as exc:
        raise StorageError(
            f"Could not open the database at {path}: {exc.strerror or exc}. "
            "Check DATABASE_PATH and the folder's permissions."
        ) from exc
    try:
        connection = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"Could not open the database at {path}: {exc}") from exc
    db = SQLiteDatabase(connection, path)
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


async def _open_read_only(path: Path, busy_timeout_ms: int) -> SQLiteDatabase:
    """Open an existing database to read only: nothing about the file changes."""
    try:
        connection = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"Could not open the database at {path}: {exc}") from exc
    try:
        await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
        await connection.execute("PRAGMA schema_version")  # fails here if it is no database
    except BaseException as exc:
        await connection.close()
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"Could not open the database at {path}: {exc}") from exc
        raise
    return SQLiteDatabase(connection, path)
