"""Faults: locked and read-only databases, and the process killed at the worst moments."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiosqlite
import pytest

from bot import db as database
from bot.db import ratings as rating_store
from bot.db.sqlite import SQLiteDatabase
from bot.errors import UserFacingError
from bot.service import MovieService
from recommender import fit_bundle, load_bundle, load_dataset, save_bundle
from tests.helpers import alive, children, model_runs, tiny_config, tiny_service, write_tiny_csv

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MovieService]:
    async with tiny_service(tmp_path, busy_timeout_ms=300) as svc:
        yield svc


async def test_locked_database_is_a_clear_error_and_nothing_is_lost(
    service: MovieService, tmp_path: Path
) -> None:
    await service.rate(1, 1, 4.0)
    other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        started = time.monotonic()
        with pytest.raises(UserFacingError, match=r"busy right now\. Nothing was changed"):
            await service.rate(1, 9, 5.0)
        assert time.monotonic() - started >= 0.25  # it waited (retried) before giving up
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The lock is gone: the same write now works, and the earlier rating is intact.
    await service.rate(1, 9, 5.0)
    assert await rating_store.for_user(service.db, 1) == {1: 4.0, 9: 5.0}


async def test_read_only_database_says_so(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    await (await database.connect(path)).close()  # create and migrate
    writable = await database.connect(path)
    await rating_store.upsert(writable, 1, 1, 3.0)
    await writable.close()
    connection = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    read_only = SQLiteDatabase(connection, path)
    with pytest.raises(UserFacingError, match="read-only"):
        await rating_store.upsert(read_only, 1, 2, 4.0)
    assert await rating_store.for_user(read_only, 1) == {1: 3.0}
    await read_only.close()


WRITER = """
import asyncio, sys
from bot import db as database
from bot.db import ratings as rating_store
from bot.db.writer import RatingWriter

async def main(path, grouped):
    db = await database.connect(path)
    writer = RatingWriter(db)

    async def one(i):
        user, movie, stars = i % 50, i, 0.5 + (i % 10) / 2
        if grouped:
            await writer.upsert(user, movie, stars)
        else:
            await rating_store.upsert(db, user, movie, stars)
        print(f"{user} {movie} {stars}", flush=True)  # the member sees the confirmation now

    i = 0
    while True:  # 40 members at a time, so group commit batches them
        await asyncio.gather(*(one(i + j) for j in range(40)))
        i += 40

asyncio.run(main(sys.argv[1], sys.argv[2] == "grouped"))
"""


@pytest.mark.parametrize("mode", ["one-by-one", "grouped"])
@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_sigkill_during_a_burst_of_writes_loses_no_confirmed_rating(
    tmp_path: Path, mode: str, store: str, request: pytest.FixtureRequest
) -> None:
    target = (
        str(tmp_path / "burst.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    )
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, target, mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    confirmed = []
    for line in child.stdout:
        confirmed.append(tuple(line.split()))
        if len(confirmed) == 300:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(10)
    if store == "sqlite":
        connection = sqlite3.connect(target)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.close()

    async def stored_ratings() -> list[tuple[int, int, float]]:
        db = await database.connect(target)
        try:
            return await rating_store.all_ratings(db)
        finally:
            await db.close()

    rows = asyncio.run(stored_ratings())
    stored = {(str(u), str(m)): r for u, m, r in rows}
    assert len(stored) == len(rows)  # one row per member and movie
    assert len(stored) >= len(confirmed)
    for user, movie, stars in confirmed:
        assert stored[(user, movie)] == float(stars)


SAVER = """
import sys
from pathlib import Path
from recommender import fit_bundle, load_dataset, save_bundle

bundle = fit_bundle(load_dataset(sys.argv[1], progress=False), n_components=3, max_iter=30)
print("ready", flush=True)
while True:
    save_bundle(bundle, Path(sys.argv[2]))
"""


def test_sigkill_during_model_saves_never_leaves_a_broken_model(tmp_path: Path) -> None:
    source = write_tiny_csv(tmp_path)
    model_path = tmp_path / "models" / "model.joblib"
    old = fit_bundle(load_dataset(source, progress=False), n_components=2, max_iter=20)
    save_bundle(old, model_path)
    for delay in (0.05, 0.13, 0.31):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(source), str(model_path)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        bundle = load_bundle(model_path)  # the old model or a new one, never a broken file
        assert bundle.model.components_.shape[0] in {2, 3}


async def test_restart_after_a_killed_refit_cleans_up_and_answers(tmp_path: Path) -> None:
    from bot.db import runs as run_store

    async with tiny_service(tmp_path) as service:
        # What a SIGKILL mid-refit leaves: a run marked running and a half-written temp file.
        await run_store.start(service.db, "admin", 1, 0)
        model_path = service.config.model_path
    stale = model_path.with_name(f".{model_path.name}.abc.tmp")
    stale.write_bytes(b"half a model")
    staged = model_path.with_name(f".{model_path.name}.run7.tmp")
    staged.write_bytes(b"a finished fit nobody put in place")
    async with tiny_service(tmp_path) as restarted:
        assert not stale.exists()
        assert not staged.exists()
        assert restarted.bundle is not None  # the last good model is used right away
        assert model_runs(tmp_path)[0]["status"] == "failed"
        picks = await restarted.recommend(1, 3)
        assert len(picks.picks) == 3


async def test_corrupt_model_at_startup_is_logged_refitted_and_the_bot_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import gate_refits

    config = tiny_config(tmp_path)
    config.model_path.parent.mkdir(parents=True)
    config.model_path.write_bytes(os.urandom(4096))
    gate = gate_refits(monkeypatch)
    with caplog.at_level("WARNING"):
        restarted = await MovieService.open(config, executor=ThreadPoolExecutor(1))
    try:
        assert "Ignoring the saved model" in caplog.text
        warming = await restarted.recommend(1, 2)  # answers while the fit runs
        assert warming.warming_up
        assert len(warming.picks) == 2
        gate.set()
        await restarted.wait_until_ready()
        assert restarted.bundle is not None
    finally:
        gate.set()
        await restarted.close()


async def test_missing_data_without_network_says_how_to_fix_it(tmp_path: Path) -> None:
    from recommender import DataError

    config = tiny_config(tmp_path, movielens_source=str(tmp_path / "gone.zip"))
    with pytest.raises(DataError, match="MOVIELENS_SOURCE"):
        await MovieService.open(config)
    # Nothing stays open: the database can be opened again and its lock file is free.
    async with tiny_service(tmp_path) as service:
        assert await service.fitting_elsewhere() is None
        assert (await service.retrain("admin")).n_chat_ratings == 0


def test_refit_worker_process_survives_the_spawn_context(tmp_path: Path) -> None:
    """The default worker is a spawned process: run one real refit through it."""

    async def scenario() -> None:
        config = tiny_config(tmp_path, model_params={"n_components": 2, "max_iter": 20})
        svc = await MovieService.open(config)
        try:
            await svc.wait_until_ready()
            await svc.rate(5, 1, 4.5)
            result = await svc.retrain("admin", 5)
            assert result.n_chat_ratings == 1
        finally:
            await svc.close()

    asyncio.run(scenario())


def refit_workers(pid: int) -> set[int]:
    """Return the bot's refit worker processes (not multiprocessing's resource tracker)."""
    found = set()
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command and b"resource_tracker" not in command:
            found.add(child)
    return found


@pytest.mark.movielens
def test_sigkill_during_a_refit_then_restart(movielens_source: str, tmp_path: Path) -> None:
    """Kill the bot with SIGKILL mid-refit: its orphaned worker exits by itself without
    touching the live model, and the restart is healthy."""
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env.update(
        MOVIELENS_SOURCE=movielens_source,
        DATABASE_PATH=str(tmp_path / "bot.db"),
        MODEL_PATH=str(tmp_path / "model.joblib"),
        DATA_DIR=str(tmp_path / "data"),
        DISCORD_TOKEN="",
        LOG_LEVEL="WARNING",
        MODEL_COMPONENTS="100",  # the defaults, pinned: this test is not about tuning
        MODEL_ALPHA="0.03",
    )
    train = subprocess.run(
        [sys.executable, "-m", "bot", "train"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 0, train.stderr
    before = (tmp_path / "model.joblib").read_bytes()
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert bot.stdin is not None
    assert bot.stdout is not None
    bot.stdin.write("/rate Heat 4.5\n/retrain\n")
    bot.stdin.flush()
    assert bot.stdout.readline().startswith("Rated Heat (1995)")
    assert bot.stdout.readline().startswith("Retraining the model")
    deadline = time.monotonic() + 20
    while not (workers := refit_workers(bot.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers, "no refit worker was started"
    time.sleep(0.5)  # the worker is fitting now
    os.kill(bot.pid, signal.SIGKILL)  # the bot alone: its worker is orphaned
    bot.wait(10)
    deadline = time.monotonic() + 3  # it checks its parent every 0.5 s; a fit takes longer
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "the orphaned refit worker kept running"
    assert not list(tmp_path.glob(".model.joblib.run*")), "the orphan saved its fit"

    connection = sqlite3.connect(tmp_path / "bot.db")
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    connection.close()
    assert (tmp_path / "model.joblib").read_bytes() == before  # only the bot puts a model live
    restart = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        env=env,
        cwd=tmp_path,
        input="/myratings\n/recommend 3\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restart.returncode == 0, restart.stderr
    assert "★★★★½ (4.5) Heat (1995)" in restart.stdout
    assert "Your top 3 picks" in restart.stdout
    connection = sqlite3.connect(tmp_path / "bot.db")
    status, error = connection.execute(
        "SELECT status, error FROM model_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    connection.close()
    assert status == "failed"
    assert "interrupted" in error
