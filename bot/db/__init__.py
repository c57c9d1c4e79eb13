"""The bot's database: one interface, two stores.

SQLite (:mod:`bot.db.sqlite`) is the default and needs nothing installed; PostgreSQL
(:mod:`bot.db.postgres`) is for several bot processes sharing one store. Every SQL statement of
the project lives in this package, one small async function per query, written once for both
stores: ``?`` placeholders with the parameters always bound, and only SQL both understand. Each
store has the same numbered migrations (``migrations/sqlite`` and ``migrations/postgresql``).
Nothing above this package knows which store is in use.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from bot.errors import UserFacingError
from bot.lease import RefitLease

BUSY_TIMEOUT_MS = 5_000

Row = tuple[Any, ...]


class StorageError(UserFacingError):
    """The database cannot do what was asked right now; the message is safe to show a member."""


def busy() -> StorageError:
    """Return the error a member sees when the database is busy (nothing was changed)."""
    return StorageError(
        "The ratings database is busy right now. Nothing was changed; please try again in a moment."
    )


def read_only() -> StorageError:
    """Return the error a member sees when the database refuses every write."""
    return StorageError(
        "The ratings database is read-only, so nothing can be saved. Please tell a server admin."
    )


def disk_full() -> StorageError:
    """Return the error a member sees when the database's disk is full."""
    return StorageError(
        "The server's disk is full, so nothing can be saved. Please tell a server admin."
    )


def unreachable() -> StorageError:
    """Return the error a member sees when the database server cannot be reached."""
    return StorageError(
        "I can't reach the ratings database right now, so nothing was changed. "
        "Please try again in a moment; if it keeps happening, tell a server admin."
    )


def failed() -> StorageError:
    """Return the error a member sees for any other database failure."""
    return StorageError(
        "The ratings database had a problem and nothing was changed. Please try again."
    )


class Connection(abc.ABC):
    """A connection lent for one transaction or one read: the only way queries reach a store.

    Driver errors leave every method as a :class:`StorageError` whose message a member can read.
    """

    @abc.abstractmethod
    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        """Run one statement; return how many rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one statement once per row of parameters."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, parameters: Sequence[object] = ()) -> list[Row]:
        """Run a query; return every row as a tuple."""

    async def fetchone(self, sql: str, parameters: Sequence[object] = ()) -> Row | None:
        """Run a query; return its first row, or None."""
        rows = await self.fetchall(sql, parameters)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, parameters: Sequence[object] = ()) -> Any:
        """Run a query; return the first column of its first row, or None."""
        row = await self.fetchone(sql, parameters)
        return None if row is None else row[0]

    async def fetch_for_ids(self, sql: str, ids: Iterable[int], *, chunk: int = 500) -> list[Row]:
        """Run ``sql`` for many ids, ``chunk`` at a time; return every row.

        ``sql`` holds ``{marks}`` where the list of placeholders goes (the ids stay bound).
        """
        unique = list(dict.fromkeys(ids))
        rows: list[Row] = []
        for start in range(0, len(unique), chunk):
            part = unique[start : start + chunk]
            rows += await self.fetchall(sql.format(marks=",".join("?" * len(part))), part)
        return rows

    @contextlib.asynccontextmanager
    async def savepoint(self, name: str = "item") -> AsyncIterator[None]:
        """Run the body inside a savepoint: on any error only the body's changes are undone."""
        if not name.isidentifier():
            raise ValueError(f"bad savepoint name {name!r}")
        await self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            await self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        await self.execute(f"RELEASE SAVEPOINT {name}")


class Database(abc.ABC):
    """A store: transactions one at a time per process, reads alongside.

    ``kind`` is ``"sqlite"`` or ``"postgresql"``; ``location`` names the store for messages
    and logs (a file path, or a URL without its password); ``path`` is the SQLite file, or None.
    """

    kind: str
    location: str
    path: Path | None

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """Run the body as one write transaction; roll back on any error."""

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """Lend a connection for reads."""

    @abc.abstractmethod
    def snapshot(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """Lend a connection that sees the store as it was at its first read, and only reads.

        Other connections may write meanwhile (for a copy of a database in use).
        """

    async def write(self, sql: str, parameters: Sequence[object] = ()) -> int:
        """Run one write statement in its own transaction; return how many rows it changed."""
        async with self.transaction() as conn:
            return await conn.execute(sql, parameters)

    @abc.abstractmethod
    async def id_counter(self, conn: Connection, table: str) -> int:
        """Return the last id the store handed out for ``table`` (deleted rows included)."""

    @abc.abstractmethod
    async def continue_ids(self, conn: Connection, table: str, used: int) -> None:
        """Make the store hand out ids above ``used`` for ``table`` from now on."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """Return the number of the newest migration applied (0 for a new database)."""

    @abc.abstractmethod
    def refit_lease(self) -> RefitLease:
        """Return the lease that lets one process at a time refit the model for this store."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the store's connections."""


# ---------------------------------------------------------------------- where the store is


def is_postgresql(target: str | Path) -> bool:
    """Return True when ``target`` is a PostgreSQL URL."""
    return str(target).split(":", 1)[0].lower() in {"postgresql", "postgres"}


def sqlite_path(target: str | Path) -> Path:
    """Return the SQLite file a path or ``sqlite:///`` URL names.

    ``sqlite:///data/bot.db`` is relative to the working folder, ``sqlite:////srv/bot.db`` is
    absolute, and ``sqlite:///:memory:`` is an in-memory database.
    """
    text = str(target)
    if text.lower().startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        if not rest.startswith("///") or len(rest) == 3:
            raise StorageError(
                f"Could not understand the database URL {text!r}: write sqlite:///relative/path.db "
                "or sqlite:////absolute/path.db."
            )
        return Path(rest[3:])
    return Path(text)


SECRET_KEYS = ("password", "sslpassword")  # query parameters that hold a secret


def redact(target: str | Path) -> str:
    """Return ``target`` without any password in it: safe for logs and messages.

    A URL's password (``user:password@``, ``?password=``, ``?sslpassword=``, however their
    names are encoded) becomes ``***``; the rest stays as written (hosts, ports, IPv6
    brackets, several hosts). A URL whose host part a password cut short (an unencoded ``/``,
    ``#`` or ``?`` in it) is not shown at all.
    """
    text = str(target)
    if "://" not in text or text.lower().startswith("sqlite:"):
        return text
    scheme, rest = text.split("://", 1)
    slash = "/" if "/" in rest else ""
    netloc, _, path = rest.partition("/")
    netloc, _, query_in_netloc = netloc.partition("?")
    if any("@" in part for part in (path, query_in_netloc)) or "#" in netloc:
        return f"{scheme}://(address hidden: it could not be read without showing a password)"
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    path, _, query = path.partition("?")
    query = query or query_in_netloc
    query, _, _ = query.partition("#")
    shown = "&".join(
        f"{item.split('=', 1)[0]}=***"
        if unquote_plus(item.split("=", 1)[0]).lower() in SECRET_KEYS
        else item
        for item in query.split("&")
        if item
    )
    return f"{scheme}://{netloc}{slash}{path}" + (f"?{shown}" if shown else "")


def exists(target: str | Path) -> bool:
    """Return False for a SQLite file that is not there (a server is assumed to exist)."""
    if is_postgresql(target):
        return True
    path = sqlite_path(target)
    return str(path) == ":memory:" or path.is_file()


def check_copy_target(target: str) -> None:
    """Refuse a copy target that is neither a SQLite nor a PostgreSQL database (without echoing
    a password), or that keeps nothing (in memory). A plain path is a SQLite file."""
    if is_postgresql(target):
        return
    if target.lower().startswith("sqlite:") and str(sqlite_path(target)) == ":memory:":
        raise StorageError("An in-memory database keeps nothing: give --to a file or a server.")
    if target.lower().startswith("sqlite:"):
        return
    if "://" in target or ":" in target.split("/", 1)[0]:
        raise StorageError(
            f"{redact(target)} is not a database URL moviebot knows: use "
            "postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db."
        )


async def connect(
    target: str | Path,
    *,
    migrate_schema: bool = True,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    read_only: bool = False,
) -> Database:
    """Open the store ``target`` names (a SQLite path or URL, or a PostgreSQL URL) and migrate it.

    ``read_only`` opens it only to read, changing nothing (no migration either; a SQLite file
    keeps its journal mode and permissions). If the store cannot be opened or migrated, what was
    opened is closed again and a :class:`StorageError` says why.
    """
    if is_postgresql(target):
        from bot.db.postgres import connect_postgresql

        return await connect_postgresql(
            str(target),
            migrate_schema=migrate_schema and not read_only,
            busy_timeout_ms=busy_timeout_ms,
        )
    from bot.db.sqlite import connect_sqlite

    return await connect_sqlite(
        sqlite_path(target),
        migrate_schema=migrate_schema,
        busy_timeout_ms=busy_timeout_ms,
        read_only=read_only,
    )


# ---------------------------------------------------------------------- migrations


def migrations(kind: str) -> list[tuple[int, str, str]]:
    """Return a store's numbered migrations as (number, file name, SQL), oldest first."""
    found = []
    for entry in resources.files("bot.db").joinpath("migrations", kind).iterdir():
        match = re.match(r"^(\d+)_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def newest_schema(kind: str) -> int:
    """Return the number of a store's newest migration."""
    known = migrations(kind)
    return known[-1][0] if known else 0


def split_sql(script: str) -> list[str]:
    """Split a migration into statements (the migrations have no ``--`` or ``;`` in strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def too_new(location: str, version: int, newest: int) -> StorageError:
    """Return the error for a database written by a newer moviebot."""
    return StorageError(
        f"The database at {location} was written by a newer moviebot (schema {version}; "
        f"this version knows up to {newest}). Upgrade moviebot, or point DATABASE_URL "
        "at another database."
    )
