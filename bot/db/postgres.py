"""The PostgreSQL store: a small asyncpg pool, for several bot processes sharing one database.

Queries are written once for both stores with ``?`` placeholders; here they become ``$1``,
``$2``… before they reach the server, and the parameters stay bound. Write transactions are one
at a time per process (as on SQLite, so a process behaves the same on either store); reads use
the pool alongside. A connection the server dropped is replaced: the failed command gets a clear
error, the next one reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from urllib.parse import parse_qs, urlsplit

import asyncpg

from bot.db import (
    SECRET_KEYS,
    Connection,
    Database,
    Row,
    StorageError,
    busy,
    disk_full,
    failed,
    migrations,
    read_only,
    redact,
    too_new,
    unreachable,
)
from bot.lease import RefitLease

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
MIGRATION_LOCK = 0x6D6F7669  # advisory lock key: one process migrates at a time
REFIT_LOCK = 0x6D6F7670  # advisory lock key: one process refits at a time
LEASE_TIMEOUT_SECONDS = 5.0  # an answer slower than this counts as a lost lease
COMMAND_TIMEOUT_SECONDS = 30.0  # no statement waits longer (a silently dead connection)

_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionFailureError,
)
_BUSY: tuple[type[BaseException], ...] = (
    asyncpg.LockNotAvailableError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.QueryCanceledError,
    asyncpg.TooManyConnectionsError,
)
_ERRORS = (asyncpg.PostgresError, *_UNREACHABLE)


def describe(exc: BaseException) -> StorageError:
    """Turn a PostgreSQL or connection error into a :class:`StorageError` a member can act on."""
    if isinstance(exc, asyncpg.exceptions._base.DataError):  # a value the driver refused
        return failed()
    if isinstance(exc, _BUSY):
        return busy()
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return read_only()
    if isinstance(exc, asyncpg.DiskFullError):
        return disk_full()
    if isinstance(exc, _UNREACHABLE):
        return unreachable()
    return failed()


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """Return ``sql`` with each ``?`` placeholder (outside quotes) written ``$1``, ``$2``…"""
    out: list[str] = []
    number = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


def _changed(status: str) -> int:
    """Return the row count in a command status such as ``UPDATE 3`` or ``INSERT 0 5``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresConnection(Connection):
    """The :class:`Connection` over one pooled asyncpg connection."""

    def __init__(self, connection: asyncpg.Connection, location: str) -> None:
        self.connection = connection
        self.location = location

    def _fail(self, exc: BaseException) -> StorageError:
        log.warning("Statement failed on %s: %s", self.location, exc)
        return describe(exc)

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        try:
            status = await self.connection.execute(numbered(sql), *parameters)
        except _ERRORS as exc:
            raise self._fail(exc) from exc
        return _changed(str(status))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        batch = [tuple(row) for row in rows]
        if not batch:
            return
        try:
            await self.connection.executemany(numbered(sql), batch)
        except _ERRORS as exc:
            raise self._fail(exc) from exc

    async def fetchall(self, sql: str, parameters: Sequence[object] = ()) -> list[Row]:
        try:
            records = await self.connection.fetch(numbered(sql), *parameters)
        except _ERRORS as exc:
            raise self._fail(exc) from exc
        return [tuple(record) for record in records]

    async def script(self, sql: str) -> None:
        """Run several statements without parameters (a migration)."""
        try:
            await self.connection.execute(sql)
        except _ERRORS as exc:
            raise self._fail(exc) from exc


class PostgresDatabase(Database):
    """An asyncpg pool; write transactions one at a time in this process, reads alongside."""

    kind = "postgresql"
    path = None

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.location = redact(url)
        self._lock = asyncio.Lock()

    async def _acquire(self, probe: str) -> asyncpg.Connection:
        """Borrow a connection and run ``probe`` on it; replace a dropped one once.

        The probe (``BEGIN`` for a transaction, ``SELECT 1`` for reads) costs one round trip
        and finds a connection the server dropped before any of the caller's work runs on it.
        """
        retried = False
        while True:
            try:
                conn = await self.pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS)
            except _ERRORS as exc:
                log.warning("Could not reach %s: %s", self.location, exc)
                raise describe(exc) from exc
            try:
                await conn.execute(probe)
            except _ERRORS as exc:
                await self._release(conn)
                if retried or not isinstance(exc, _UNREACHABLE):
                    log.warning("Could not use %s: %s", self.location, exc)
                    raise describe(exc) from exc
                retried = True  # the server dropped this connection: try a fresh one
                continue
            return conn

    async def _release(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(*_ERRORS):
            await self.pool.release(conn, timeout=CONNECT_TIMEOUT_SECONDS)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """Run the body as one transaction; roll back on any error."""
        async with self._lock:
            conn = await self._acquire("BEGIN")
            try:
                try:
                    yield PostgresConnection(conn, self.location)
                except BaseException:
                    with contextlib.suppress(*_ERRORS):
                        await conn.execute("ROLLBACK")
                    raise
                try:
                    await conn.execute("COMMIT")
                except _ERRORS as exc:
                    with contextlib.suppress(*_ERRORS):
                        await conn.execute("ROLLBACK")
                    log.warning("Commit failed on %s: %s", self.location, exc)
                    raise describe(exc) from exc
            finally:
                await self._release(conn)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        """A read-only REPEATABLE READ transaction: one snapshot for every statement."""
        conn = await self._acquire("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield PostgresConnection(conn, self.location)
        finally:
            with contextlib.suppress(*_ERRORS):
                await conn.execute("ROLLBACK")
            await self._release(conn)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        """Lend a pooled connection for reads."""
        conn = await self._acquire("SELECT 1")
        try:
            yield PostgresConnection(conn, self.location)
        finally:
            await self._release(conn)

    async def id_counter(self, conn: Connection, table: str) -> int:
        """Return the last value of ``table``'s identity sequence (0 if never used)."""
        value = await conn.fetchval(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence(?, 'id')::regclass)", (table,)
        )
        return int(value or 0)

    async def continue_ids(self, conn: Connection, table: str, used: int) -> None:
        """Set ``table``'s identity sequence so that the next id is ``used + 1``."""
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence(?, 'id'), ?, false)", (table, used + 1)
        )

    async def schema_version(self) -> int:
        """Return the ``schema_version`` row: the newest migration applied (0 if none)."""
        async with self.read() as conn:
            if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
                return 0
            return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    def refit_lease(self) -> RefitLease:
        """Return the advisory lock that one process at a time holds while it refits."""
        return AdvisoryLease(self.url)

    async def close(self) -> None:
        """Close the pool (waiting briefly for borrowed connections)."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout=5)
        except (TimeoutError, *_ERRORS):
            self.pool.terminate()


class AdvisoryLease:
    """The refit lease on PostgreSQL: a session advisory lock on a connection of its own.

    The server drops the lock when that session ends, however the holder's process ends (a
    SIGKILL closes its socket), so another process can take the next refit. The session's
    ``application_name`` carries the holder's process id for :meth:`holder`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: asyncpg.Connection | None = None

    async def _connect(self, name: str) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self.url,
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings={
                    "application_name": name,
                    # The server notices a holder that vanished without closing its socket
                    # (a crashed machine, a cut network) within about 25 s, and drops its lock.
                    "tcp_keepalives_idle": "10",
                    "tcp_keepalives_interval": "5",
                    "tcp_keepalives_count": "3",
                },
            )
        except (*_ERRORS, ValueError) as exc:
            log.warning("Could not reach %s for the refit lease: %s", redact(self.url), exc)
            raise describe(exc) from exc

    async def acquire(self) -> bool:
        """Take the lock if no session holds it; return True when this process holds it."""
        if self._conn is not None and await self.renew():
            return True
        conn = await self._connect(f"moviebot-refit-{os.getpid()}")
        try:
            taken = bool(
                await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", REFIT_LOCK, timeout=LEASE_TIMEOUT_SECONDS
                )
            )
        except _ERRORS as exc:
            await _close_quietly(conn)
            raise describe(exc) from exc
        if not taken:
            await _close_quietly(conn)
            return False
        self._conn = conn
        return True

    async def renew(self) -> bool:
        """Return True while the lock's session is alive (a lost session lost the lock)."""
        if self._conn is None:
            return False
        try:  # a cut network must not hang here: the server may have dropped the lock already
            await self._conn.execute("SELECT 1", timeout=LEASE_TIMEOUT_SECONDS)
        except Exception as exc:  # whatever went wrong, the lock can no longer be vouched for
            log.warning("The refit lease's session is gone: %s", exc)
            conn, self._conn = self._conn, None
            await _close_quietly(conn)
            return False
        return True

    async def release(self) -> None:
        """Unlock and end the session."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(*_ERRORS):
            await conn.execute("SELECT pg_advisory_unlock($1)", REFIT_LOCK)
        await _close_quietly(conn)

    async def holder(self) -> int | None:
        """Return the process id in the holding session's name, if any session holds it."""
        if self._conn is not None:
            return os.getpid()
        try:
            conn = await self._connect(f"moviebot-{os.getpid()}")
        except StorageError:
            return None
        try:
            name = await conn.fetchval(
                "SELECT a.application_name FROM pg_locks AS l"
                " JOIN pg_stat_activity AS a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " LIMIT 1",
                REFIT_LOCK,
            )
        except _ERRORS:
            return None
        finally:
            await _close_quietly(conn)
        prefix = "moviebot-refit-"
        if isinstance(name, str) and name.startswith(prefix) and name[len(prefix) :].isdigit():
            return int(name[len(prefix) :])
        return None


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except Exception:  # a broken session: just drop it
        conn.terminate()


async def migrate(db: PostgresDatabase) -> int:
    """Apply the numbered migrations newer than the ``schema_version`` row; return the version.

    One process migrates at a time (an advisory lock); all of it is one transaction.
    """
    known = migrations("postgresql")
    newest = known[-1][0] if known else 0
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
        if version > newest:
            raise too_new(db.location, version, newest)
        assert isinstance(conn, PostgresConnection)
        for number, name, sql in known:
            if number <= version:
                continue
            log.info("Applying database migration %s", name)
            await conn.script(sql)
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            version = number
    return version


async def connect_postgresql(
    url: str, *, migrate_schema: bool = True, busy_timeout_ms: int = 5_000
) -> PostgresDatabase:
    """Open a pool on the PostgreSQL database at ``url`` and migrate it.

    A lock another process holds makes a statement wait up to ``busy_timeout_ms`` before it
    fails with a :class:`StorageError` that says to try again.
    """
    location = redact(url)
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=4,
            timeout=CONNECT_TIMEOUT_SECONDS,
            command_timeout=COMMAND_TIMEOUT_SECONDS,
            server_settings={
                "application_name": f"moviebot-{os.getpid()}",
                "lock_timeout": f"{int(busy_timeout_ms):d}ms",
            },
        )
    except ValueError as exc:  # its text may quote the URL, password and all
        raise StorageError(
            f"Could not read the PostgreSQL URL {location}. Check DATABASE_URL; special "
            "characters in the password (/ # ? @ :) must be percent-encoded (%2F %23 %3F %40 %3A)."
        ) from exc
    except _ERRORS as exc:
        raise StorageError(
            f"Could not open the PostgreSQL database at {location}: {_reason(exc, url)}. "
            "Check DATABASE_URL and that the server is running."
        ) from exc
    db = PostgresDatabase(pool, url)
    try:
        if migrate_schema:
            await migrate(db)
    except BaseException:
        await db.close()
        raise
    return db


def _reason(exc: BaseException, url: str) -> str:
    """Return the driver's reason, with the URL's password blanked should it appear in it."""
    text = str(exc).strip() or type(exc).__name__
    query = parse_qs(urlsplit(url).query)
    secrets = [value for key in SECRET_KEYS for value in query.get(key, [])]
    with contextlib.suppress(ValueError):
        secrets.append(urlsplit(url).password or "")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
