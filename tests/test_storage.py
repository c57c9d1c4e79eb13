"""The two stores: the same schema and queries on SQLite and PostgreSQL, copying one into the
other, and PostgreSQL's own failures (a stopped server, a dropped connection, a killed holder of
the refit lease), each against a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot import db as database
from bot.db import StorageError
from bot.db import ratings as rating_store
from bot.db.copy import TABLES
from bot.service import MovieService
from tests.conftest import PostgresServer
from tests.helpers import table_columns, tiny_service, use_every_table

MEMBER = 4242
ROOT = Path(__file__).resolve().parent.parent


async def test_both_stores_have_the_same_tables_and_the_copy_covers_them(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite = await database.connect(tmp_path / "bot.db")
    postgres = await database.connect(postgres_url)
    try:
        on_sqlite, on_postgres = await table_columns(sqlite), await table_columns(postgres)
    finally:
        await sqlite.close()
        await postgres.close()
    assert {t: sorted(c) for t, c in on_sqlite.items()} == {
        t: sorted(c) for t, c in on_postgres.items()
    }
    assert {t: sorted(c) for t, c in on_sqlite.items()} == {
        t: sorted(c) for t, c in TABLES.items()
    }  # a table or column a migration adds must be copied by `moviebot db copy`


async def _counts(db: database.Database) -> dict[str, int]:
    async with db.read() as conn:
        return {t: int(await conn.fetchval(f"SELECT COUNT(*) FROM {t}")) for t in TABLES}


@pytest.mark.postgresql
def test_db_copy_moves_every_table_to_postgresql(
    tmp_path: Path, postgres_url: str, cli: Any
) -> None:
    async def fill() -> tuple[dict[str, int], dict[int, float]]:
        async with tiny_service(tmp_path) as service:
            await use_every_table(service, MEMBER)
            return await _counts(service.db), await rating_store.for_user(service.db, MEMBER)

    before, ratings = asyncio.run(fill())
    assert all(before[t] for t in ("ratings", "model_runs", "movie_nights", "imports"))
    env = {"DATABASE_PATH": str(tmp_path / "bot.db"), "MOVIELENS_SOURCE": "unused"}
    result = cli(["db", "copy", "--to", postgres_url], env)
    assert result.returncode == 0, result.stderr
    assert "ratings" in result.stdout
    assert "Point DATABASE_URL at the new database" in result.stdout

    async def use_the_copy() -> None:
        async with tiny_service(tmp_path, database_url=postgres_url) as moved:
            assert await _counts(moved.db) == before
            assert await rating_store.for_user(moved.db, MEMBER) == ratings
            await moved.retrain("admin")  # new ids continue after the copied ones
            assert await moved.pending_changes() == 0
            assert (await _counts(moved.db))["model_runs"] == before["model_runs"] + 1
            night = await moved.nights.start(
                guild_id=78, channel_id=9, invoker=1, voice_members=[2]
            )
            assert night.night.id > before["movie_nights"]

    asyncio.run(use_the_copy())
    again = cli(["db", "copy", "--to", postgres_url], env)
    assert again.returncode == 1
    assert "already holds data" in again.stderr  # never overwrites


def test_database_url_and_a_different_database_path_is_a_start_up_error(cli: Any) -> None:
    result = cli(
        ["search", "heat"],
        {"DATABASE_URL": "postgresql://bot:hunter2@db.example/moviebot", "DATABASE_PATH": "x.db"},
    )
    assert result.returncode == 2
    assert "DATABASE_URL and DATABASE_PATH name different databases" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    same = cli(
        ["db", "copy", "--to", "sqlite:///x.db"],
        {"DATABASE_URL": "sqlite:///x.db", "DATABASE_PATH": "x.db"},
    )
    assert "configuration error" not in same.stderr  # the same database named twice is fine
    assert "already uses" in same.stderr


def test_a_database_url_that_is_neither_store_is_refused(cli: Any) -> None:
    result = cli(["search", "heat"], {"DATABASE_URL": "mysql://bot@db/moviebot"})
    assert result.returncode == 2
    assert "sqlite:/// or postgresql://" in result.stderr


# ---------------------------------------------------------------------- PostgreSQL's own failures


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    """A PostgreSQL server of this test's own, so the test may stop and start it."""
    server = PostgresServer(tmp_path / "pg")
    yield server
    server.stop()


@pytest.mark.postgresql
async def test_a_stopped_server_is_a_clear_error_and_the_bot_reconnects(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    db = await database.connect(own_server.url)
    try:
        await rating_store.upsert(db, MEMBER, 1, 4.0)
        own_server.stop()
        with pytest.raises(StorageError, match="can't reach the ratings database"):
            await rating_store.upsert(db, MEMBER, 2, 3.0)
        with pytest.raises(StorageError, match="can't reach the ratings database"):
            await rating_store.for_user(db, MEMBER)
        restarted = PostgresServer(tmp_path / "pg")  # the same data folder and socket
        try:
            assert restarted.url == own_server.url
            assert await rating_store.for_user(db, MEMBER) == {1: 4.0}  # nothing confirmed lost
            await rating_store.upsert(db, MEMBER, 2, 3.0)  # and writes work again
            assert await rating_store.for_user(db, MEMBER) == {1: 4.0, 2: 3.0}
        finally:
            restarted.stop()
    finally:
        await db.close()


@pytest.mark.postgresql
async def test_a_dropped_connection_is_replaced_without_an_error(postgres_url: str) -> None:
    db = await database.connect(postgres_url)
    admin = await database.connect(postgres_url, migrate_schema=False)
    try:
        await rating_store.upsert(db, MEMBER, 1, 4.0)
        async with admin.read() as conn:  # the server (or a proxy) drops the bot's sessions
            dropped = await conn.fetchall(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = ? AND pid <> pg_backend_pid()",
                (f"moviebot-{os.getpid()}",),
            )
        assert dropped
        await asyncio.sleep(0.1)
        await rating_store.upsert(db, MEMBER, 2, 3.0)
        assert await rating_store.for_user(db, MEMBER) == {1: 4.0, 2: 3.0}
    finally:
        await admin.close()
        await db.close()


@pytest.mark.postgresql
async def test_a_bad_url_or_an_absent_server_says_so_without_the_password() -> None:
    with pytest.raises(StorageError, match="Could not open the PostgreSQL database") as caught:
        await database.connect("postgresql://bot:s3cret@127.0.0.1:1/moviebot")
    assert "s3cret" not in str(caught.value)
    assert "bot:***@127.0.0.1:1" in str(caught.value)


HOLD_LEASE = """
import asyncio, sys, time
from bot import db as database

async def main():
    db = await database.connect(sys.argv[1])
    lease = db.refit_lease()
    assert await lease.acquire()
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.postgresql
async def test_the_refit_lease_is_one_process_at_a_time_and_dies_with_its_holder(
    postgres_url: str,
) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LEASE, postgres_url, cwd=ROOT, stdout=subprocess.PIPE
    )
    db = await database.connect(postgres_url)
    lease = db.refit_lease()
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        assert not await lease.acquire()
        assert await lease.holder() == holder.pid
        holder.send_signal(signal.SIGKILL)  # no clean-up code runs
        await asyncio.wait_for(holder.wait(), 10)
        deadline = time.monotonic() + 10
        while not await lease.acquire():
            assert time.monotonic() < deadline, "the killed holder's lease never expired"
            await asyncio.sleep(0.1)
        assert await lease.renew()
        assert await lease.holder() == os.getpid()
        other = db.refit_lease()
        assert not await other.acquire()  # one holder at a time, also within a process
        await lease.release()
        assert await other.acquire()
        await other.release()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await lease.release()
        await db.close()


@pytest.mark.postgresql
async def test_a_table_locked_by_another_session_is_busy_and_loses_nothing(
    postgres_url: str,
) -> None:
    db = await database.connect(postgres_url, busy_timeout_ms=300)
    other = await database.connect(postgres_url, migrate_schema=False)
    try:
        await rating_store.upsert(db, MEMBER, 1, 4.0)
        async with other.transaction() as conn:  # an admin's long migration, say
            await conn.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StorageError, match=r"busy right now\. Nothing was changed"):
                await rating_store.upsert(db, MEMBER, 2, 3.0)
            assert time.monotonic() - started < 3
        await rating_store.upsert(db, MEMBER, 2, 3.0)  # free again: it goes through
        assert await rating_store.for_user(db, MEMBER) == {1: 4.0, 2: 3.0}
    finally:
        await other.close()
        await db.close()


@pytest.mark.parametrize("to", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
async def test_after_a_copy_new_changes_still_count_for_the_next_refit(
    tmp_path: Path, to: str, request: pytest.FixtureRequest
) -> None:
    async with tiny_service(tmp_path) as service:
        for member in range(30):
            await service.rate(100 + member, 1 + member % 10, 4.0)
        await service.retrain("admin")  # the change log is emptied up to this fit
        assert await service.pending_changes() == 0
        source = service.db
        target_url = (
            f"sqlite:///{tmp_path / 'copy.db'}"
            if to == "sqlite"
            else request.getfixturevalue("postgres_url")
        )
        target = await database.connect(target_url)
        try:
            from bot.db.copy import copy_database

            await copy_database(source, target)
        finally:
            await target.close()
    async with tiny_service(tmp_path, database_url=target_url) as moved:
        assert await moved.pending_changes() == 0
        await moved.rate(999, 2, 3.0)
        assert await moved.pending_changes() == 1  # a new change after the copy is seen


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://bot:hunter2@db.example:5432/moviebot", "hunter2"),
        ("postgresql://bot@db.example/moviebot?sslmode=require&password=hunter2", "hunter2"),
        ("postgresql://bot:se/cret@db.example:5432/moviebot", "se/cret"),
        ("postgresql://bot:se#cret@db.example/moviebot", "se#cret"),
        ("postgresql://bot:12/34@db.example/moviebot", "12/34"),
        ("postgresql+asyncpg://bot:hunter2@db.example/moviebot", "hunter2"),
        ("postgresql://u@127.0.0.1:1/db?pass%77ord=hunter2", "hunter2"),
        ("postgresql://u@db.example/db?sslmode=require&sslpassword=hunter2", "hunter2"),
        ("postgresql:///db?host=/tmp&password=hunter2", "hunter2"),
    ],
)
def test_no_form_of_a_password_in_a_url_is_ever_shown(url: str, secret: str) -> None:
    from bot.db import redact

    shown = redact(url)
    for piece in {secret, *secret.split("/"), *secret.split("#")} - {""}:
        assert piece not in shown, shown
    assert shown.startswith(url.split("://", 1)[0] + "://")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("postgresql://u@127.0.0.1:1,127.0.0.1:2/db", "postgresql://u@127.0.0.1:1,127.0.0.1:2/db"),
        ("postgresql:///db?host=/tmp&password=x", "postgresql:///db?host=/tmp&password=***"),
        ("postgresql://u:secret@Host.Example.COM/DB", "postgresql://u:***@Host.Example.COM/DB"),
    ],
)
def test_a_url_is_shown_as_written_but_for_its_password(url: str, shown: str) -> None:
    from bot.db import redact

    assert redact(url) == shown


def test_db_copy_refuses_what_it_cannot_do_and_leaves_the_source_alone(
    tmp_path: Path, cli: Any
) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "missing.db"), "MOVIELENS_SOURCE": "unused"}
    target = f"sqlite:///{tmp_path / 'new.db'}"
    missing = cli(["db", "copy", "--to", target], env)
    assert missing.returncode == 2
    assert "There is no database at" in missing.stderr
    assert not (tmp_path / "missing.db").exists()  # not created by the attempt
    assert not (tmp_path / "new.db").exists()

    old = tmp_path / "old.db"
    asyncio.run(_oldtable_columns(old))
    env["DATABASE_PATH"] = str(old)
    outdated = cli(["db", "copy", "--to", target], env)
    assert outdated.returncode == 2
    assert "is at schema 5" in outdated.stderr
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone() == (5,)  # untouched

    memory = cli(["db", "copy", "--to", "sqlite:///:memory:"], {**env, "DATABASE_PATH": str(old)})
    assert memory.returncode == 2
    assert "keeps nothing" in memory.stderr

    wrong = cli(["db", "copy", "--to", "postgresql+asyncpg://bot:hunter2@dbhost/movies"], env)
    assert wrong.returncode == 2
    assert "is not a database URL moviebot knows" in wrong.stderr
    assert "hunter2" not in wrong.stderr + wrong.stdout
    assert not (tmp_path / "postgresql+asyncpg:").exists()


async def _oldtable_columns(path: Path) -> None:
    """A database as moviebot left it before migration 006."""
    db = await database.connect(path, migrate_schema=False)
    try:
        for number, _, sql in database.migrations("sqlite"):
            if number > 5:
                break
            async with db.transaction() as conn:
                for statement in database.split_sql(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")
    finally:
        await db.close()


@pytest.mark.postgresql
async def test_a_refit_that_loses_its_lease_stops_so_two_never_run_at_once(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.errors import UserFacingError
    from bot.model_host import LEASE_LOST
    from tests.helpers import gate_refits, service_runs, tiny_config

    async with tiny_service(tmp_path, database_url=postgres_url) as first:
        first.host.lease_check_seconds = 0.1
        gate = gate_refits(monkeypatch)
        refit = asyncio.create_task(first.retrain("admin"))
        await asyncio.sleep(0.3)
        admin = await database.connect(postgres_url, migrate_schema=False)
        try:  # the lock's session drops (a server restart, a proxy, a failover)
            async with admin.read() as conn:
                dropped = await conn.fetchall(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = ?",
                    (f"moviebot-refit-{os.getpid()}",),
                )
        finally:
            await admin.close()
        assert dropped
        with pytest.raises(UserFacingError, match="lost its hold on the refit"):
            await asyncio.wait_for(refit, 10)
        runs = await service_runs(first)
        assert (runs[0]["status"], runs[0]["error"]) == ("failed", LEASE_LOST)
        gate.set()
        second = await MovieService.open(tiny_config(tmp_path, database_url=postgres_url))
        try:
            await second.retrain("console")  # the lease is free: another process refits
        finally:
            await second.close()
        assert [r["status"] for r in (await service_runs(first))[:2]] == ["succeeded", "failed"]


@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
async def test_a_value_the_store_cannot_hold_is_a_plain_failure(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    target = (
        str(tmp_path / "bot.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    )
    db = await database.connect(target)
    try:
        with pytest.raises(StorageError, match="had a problem and nothing was changed"):
            await rating_store.upsert(db, 2**64, 1, 4.0)  # no Discord id is that large
        await rating_store.upsert(db, 1, 1, 4.0)  # and the store goes on working
        assert await rating_store.for_user(db, 1) == {1: 4.0}
    finally:
        await db.close()


class FreezableProxy:
    """A TCP proxy to the server's socket that can go silent, as a cut network does."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.open = asyncio.Event()
        self.open.set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.open.wait()  # while frozen nothing gets through, and nothing is closed
            writer.write(data)
            await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_unix_connection(self.socket_path)
        await asyncio.gather(
            self._pipe(reader, server_writer),
            self._pipe(server_reader, writer),
            return_exceptions=True,
        )

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.postgresql
async def test_a_lease_whose_network_goes_silent_counts_as_lost_in_seconds(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import parse_qs, urlsplit

    import bot.db.postgres as postgres

    monkeypatch.setattr(postgres, "LEASE_TIMEOUT_SECONDS", 0.5)
    parts = urlsplit(postgres_url)
    socket_path = f"{parse_qs(parts.query)['host'][0]}/.s.PGSQL.{parts.port or 5432}"
    proxy = FreezableProxy(socket_path)
    port = await proxy.start()
    lease = postgres.AdvisoryLease(f"postgresql://postgres@127.0.0.1:{port}{parts.path}")
    try:
        assert await lease.acquire()
        assert await lease.renew()
        proxy.open.clear()  # the server will drop the silent session (keepalives) and its lock
        started = time.monotonic()
        assert not await lease.renew()  # so this process must stop refitting, and soon
        assert time.monotonic() - started < 3
    finally:
        proxy.open.set()
        await lease.release()
        proxy.close()


def test_a_deleted_lock_file_counts_as_a_lost_lease(tmp_path: Path) -> None:
    from bot.lease import FileLease

    async def scenario() -> None:
        first, second = (
            FileLease(tmp_path / "bot.db.refit.lock"),
            FileLease(tmp_path / "bot.db.refit.lock"),
        )
        assert await first.acquire()
        assert not await second.acquire()
        (tmp_path / "bot.db.refit.lock").unlink()  # someone tidies data/
        assert await second.acquire()  # a new file, a new lock
        assert not await first.renew()  # so the first must stop refitting
        await first.release()
        await second.release()

    asyncio.run(scenario())


def test_db_copy_changes_nothing_about_the_source_file(tmp_path: Path, cli: Any) -> None:
    source = tmp_path / "shared.db"

    async def make() -> None:
        db = await database.connect(source)
        await rating_store.upsert(db, MEMBER, 1, 4.0)
        await db.close()

    asyncio.run(make())
    connection = sqlite3.connect(source)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.close()
    source.chmod(0o640)  # say, group-readable for a backup job
    env = {"DATABASE_PATH": str(source), "MOVIELENS_SOURCE": "unused"}
    result = cli(["db", "copy", "--to", f"sqlite:///{tmp_path / 'copy.db'}"], env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(source.stat().st_mode) == 0o640
    connection = sqlite3.connect(source)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    notes.chmod(0o644)
    wrong = cli(["db", "copy", "--to", str(notes)], env)
    assert wrong.returncode == 1
    assert stat.S_IMODE(notes.stat().st_mode) == 0o644  # a file that is no database is left be
