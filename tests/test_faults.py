"""Unlucky admins and hostile members: broken files, odd databases, privacy after /forgetme."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import threading
import zipfile
from pathlib import Path

import discord.http
import pytest

from bot import db as database
from bot.db import ratings as rating_store
from bot.db import runs as run_store
from bot.errors import RetrainRunningError
from bot.service import MovieService
from recommender import DataError, load_dataset
from tests.helpers import (
    model_runs,
    table_columns,
    tiny_config,
    tiny_service,
    use_every_table,
    write_tiny_csv,
)

MEMBER = 987_654_321_987_654  # a Discord-sized id no movie id or count can equal


async def test_a_corrupt_database_is_one_clear_error_and_nothing_stays_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    path.write_bytes(os.urandom(8192))
    before = threading.active_count()
    with pytest.raises(database.StorageError, match="Could not open the database"):
        await database.connect(path)
    for _ in range(100):  # the closed connection's worker thread ends (it kept processes alive)
        if threading.active_count() == before:
            break
        await asyncio.sleep(0.02)
    assert threading.active_count() == before


async def test_a_database_from_a_newer_moviebot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    await (await database.connect(path)).close()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(database.StorageError, match="written by a newer moviebot"):
        await database.connect(path)


async def test_the_database_is_private_and_a_loose_one_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.db"
    db = await database.connect(path)
    await rating_store.upsert(db, MEMBER, 1, 4.0)
    for file in (path, path.with_name("bot.db-wal"), path.with_name("bot.db-shm")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    await db.close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        await (await database.connect(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by its owner only" in caplog.text


async def test_forgetme_leaves_the_member_in_no_table(service: MovieService) -> None:
    await use_every_table(service, MEMBER)
    assert await service.forget(MEMBER) == 2
    assert await service.pending_changes() >= 1  # the next refit still drops them
    columns = await table_columns(service.db)
    async with service.db.read() as conn:
        if service.db.kind == "sqlite":
            # Deleted rows are overwritten on disk.
            assert await conn.fetchval("PRAGMA secure_delete") == 1
        assert {
            "ratings",
            "rating_events",
            "model_runs",
            "bot_state",
            "dismissals",
            "movie_nights",
            "night_members",
            "night_votes",
            "night_satisfaction",
            "watched",
            "imports",
            "import_writes",
        } <= set(columns)
        for table, names in columns.items():
            for column in names:
                found = await conn.fetchval(
                    f"SELECT COUNT(*) FROM {table} WHERE CAST({column} AS TEXT) = ?",
                    (str(MEMBER),),
                )
                assert found == 0, f"{table}.{column} still holds the member's id"


async def test_a_damaged_zip_member_is_one_clear_error(tmp_path: Path) -> None:
    source = write_tiny_csv(tmp_path)
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("ml-tiny/ratings.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 5
    for offset in range(start, start + 40):
        data[offset] ^= 0xFF  # flip bytes inside the compressed ratings
    source.write_bytes(bytes(data))
    with pytest.raises(DataError, match="is damaged"):
        load_dataset(source, progress=False)


async def test_a_second_service_on_the_same_database_refits_only_when_the_first_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import gate_refits

    async with tiny_service(tmp_path) as first:
        gate = gate_refits(monkeypatch)
        refit = asyncio.create_task(first.retrain("admin"))
        await asyncio.sleep(0.05)
        running = model_runs(tmp_path)[0]
        assert running["status"] == "running"
        second = await MovieService.open(tiny_config(tmp_path))
        try:
            assert await second.fitting_elsewhere() == os.getpid()
            with pytest.raises(
                RetrainRunningError, match=f"another moviebot process \\(process {os.getpid()}\\)"
            ):
                await second.retrain("console")
            assert await second.scheduled_refit() is None
            assert len((await second.recommend(5, 3)).picks) == 3  # it still serves
            assert model_runs(tmp_path)[0]["status"] == "running"  # the first's run is intact
            gate.set()
            await refit  # the first's refit finishes and is live
            assert model_runs(tmp_path)[0]["status"] == "succeeded"
            assert await second.fitting_elsewhere() is None
            await second.retrain("console")  # the lease is free again: the second may refit
            assert [run["trigger"] for run in model_runs(tmp_path)[:2]] == ["console", "admin"]
            assert all(run["status"] == "succeeded" for run in model_runs(tmp_path)[:2])
        finally:
            gate.set()
            await second.close()


async def test_retrain_failure_without_any_model_says_so(tmp_path: Path) -> None:
    folder_as_model = tmp_path / "models" / "model.joblib"
    folder_as_model.mkdir(parents=True)  # MODEL_PATH is a folder: every save fails
    async with tiny_service(tmp_path) as service:
        picks = await service.recommend(1, 3)
        assert picks.model_missing
        assert not picks.warming_up
        with pytest.raises(Exception, match="there is no model yet"):
            await service.retrain("admin")
    assert all(run["status"] == "failed" for run in model_runs(tmp_path))


async def test_interrupted_refit_at_close_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import gate_refits

    service = await MovieService.open(tiny_config(tmp_path), fit_in_background=False)
    gate = gate_refits(monkeypatch, seconds=1.0)
    refit = asyncio.create_task(service.retrain("admin"))
    await asyncio.sleep(0.05)
    refit.cancel()
    await asyncio.gather(refit, return_exceptions=True)
    await service.close()
    gate.set()
    run = model_runs(tmp_path)[0]
    assert (run["status"], run["error"]) == ("failed", run_store.INTERRUPTED)


def test_run_without_network_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    for key, value in {
        "MOVIELENS_SOURCE": str(write_tiny_csv(tmp_path)),
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "MODEL_PATH": str(tmp_path / "model.joblib"),
        "DATA_DIR": str(tmp_path / "data"),
        "DISCORD_TOKEN": "x" * 30,
        "LOG_LEVEL": "ERROR",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(discord.http.Route, "BASE", "http://127.0.0.1:9/api/v10")  # refused
    gateway = logging.getLogger("discord.gateway")
    saved = (logging.root.handlers[:], logging.root.level, gateway.level)
    try:
        code = main(["run"])
    finally:
        logging.root.handlers[:], logging.root.level, gateway.level = saved
    err = capsys.readouterr().err
    assert code == 1
    assert "could not reach Discord" in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("moviebot:")]) == 1


async def test_a_database_folder_that_cannot_be_made_is_explained() -> None:
    # Tests run as root, for whom read-only folders are writable; /proc refuses even root.
    with pytest.raises(database.StorageError, match="Check DATABASE_PATH"):
        await database.connect(Path("/proc/moviebot-test/bot.db"))
