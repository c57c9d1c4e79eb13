"""Real processes, where the process boundary is the point: hangs, signals, two processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.db import runs as run_store
from tests.fake_discord import ADMIN_PERMISSIONS, GUILD_ID, FakeDiscord
from tests.helpers import (
    alive,
    children,
    gate_refits,
    model_runs,
    tiny_config,
    tiny_service,
    write_tiny_csv,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "fake-token-for-process-tests"
LAUNCH_AGAINST_FAKE = """
import sys, yarl, discord.gateway, discord.http
discord.http.Route.BASE = sys.argv[1]
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
from bot.cli import main
sys.exit(main(["run"]))
"""


async def launch_against_fake(
    fake: FakeDiscord, env: dict[str, str], folder: Path
) -> asyncio.subprocess.Process:
    """Start ``moviebot run`` in a child process, connected to ``fake``; stderr is piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCH_AGAINST_FAKE,
        fake.base_url,
        fake.gateway_url,
        env=env,
        cwd=folder,
        stderr=asyncio.subprocess.PIPE,
    )


def bot_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env.update(
        MOVIELENS_SOURCE=str(write_tiny_csv(folder)),
        DATABASE_PATH=str(folder / "bot.db"),
        MODEL_PATH=str(folder / "models" / "model.joblib"),
        DATA_DIR=str(folder / "data"),
        DISCORD_TOKEN="",
        LOG_LEVEL="WARNING",
        REFIT_INTERVAL_MINUTES="0",
        MODEL_COMPONENTS="3",
        MODEL_ALPHA="0.03",
    )
    env.update(extra)
    return env


def console(folder: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        env=env,
        cwd=folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped_within(process: subprocess.Popen[str], seconds: float) -> tuple[int, float, str]:
    started = time.monotonic()
    _, err = process.communicate(timeout=seconds + 5)
    return process.returncode, time.monotonic() - started, err


@pytest.mark.parametrize("command", [["console"], ["train", "--with-chat"]])
def test_a_corrupt_database_ends_the_process_with_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "bot.db").write_bytes(os.urandom(8192))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bot", *command],
        env=bot_env(tmp_path),
        cwd=tmp_path,
        input="/help\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30, "the process hung after the error"
    assert result.returncode == 1
    assert "Could not open the database" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_console_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    process = console(tmp_path, bot_env(tmp_path))
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("/rate Heat 4\n")
    process.stdin.flush()
    assert process.stdout.readline().startswith("Rated Heat (1995)")  # up and serving
    process.send_signal(sig)  # stdin stays open: the console is waiting for a line
    code, seconds, err = stopped_within(process, 8)
    assert code == 0, err
    assert seconds < 8
    assert "Traceback" not in err
    connection = sqlite3.connect(tmp_path / "bot.db")
    assert connection.execute("SELECT COUNT(*) FROM ratings").fetchone() == (1,)
    connection.close()


def test_ctrl_c_during_the_first_fit_records_it_as_interrupted(tmp_path: Path) -> None:
    process = console(tmp_path, bot_env(tmp_path, LOG_LEVEL="INFO"))
    assert process.stderr is not None
    for line in process.stderr:  # wait until the start-up fit has begun
        if "Fitting the recommendation model" in line:
            break
    process.send_signal(signal.SIGINT)
    code, _, err = stopped_within(process, 8)
    assert code == 0, err
    assert "Traceback" not in err
    runs = model_runs(tmp_path)
    assert runs[0]["trigger"] == "startup"
    assert (runs[0]["status"], runs[0]["error"]) == ("failed", run_store.INTERRUPTED)


async def test_sigterm_stops_the_bot_gracefully_during_a_retrain(tmp_path: Path) -> None:
    async with tiny_service(tmp_path):
        pass  # a saved model, so the bot starts ready
    fake = FakeDiscord()
    await fake.start()
    env = bot_env(tmp_path, DISCORD_TOKEN=TOKEN, LOG_LEVEL="INFO")
    child = await launch_against_fake(fake, env, tmp_path)
    try:
        await asyncio.wait_for(fake.ready.wait(), 30)
        await asyncio.sleep(0.5)  # command sync and the rest of start-up
        retrain = await fake.command("retrain", permissions=ADMIN_PERMISSIONS)
        await asyncio.wait_for(retrain.answered.wait(), 10)
        assert retrain.responses[0]["type"] == 5  # deferred: the refit is running
        workers: set[int] = set()
        for _ in range(100):
            if workers := children(child.pid):
                break
            await asyncio.sleep(0.02)
        assert workers, "no refit worker was started"
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        assert child.stderr is not None
        err = (await asyncio.wait_for(child.stderr.read(), 15)).decode()
        code = await asyncio.wait_for(child.wait(), 15)
        seconds = time.monotonic() - started
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await fake.stop()
    assert code == 0, err
    assert seconds < 8, f"stopping took {seconds:.1f} s"
    assert "Traceback" not in err
    assert "stopped before it finished" in retrain.text()  # the running command was answered
    for _ in range(100):  # the worker (and multiprocessing's resource tracker) are gone
        if not any(alive(w) for w in workers):
            break
        await asyncio.sleep(0.03)
    assert not any(alive(w) for w in workers)
    run = model_runs(tmp_path)[0]
    assert (run["trigger"], run["status"], run["error"]) == (
        "admin",
        "failed",
        run_store.INTERRUPTED,
    )


async def test_a_console_beside_a_refitting_bot_neither_refits_nor_breaks_its_refit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tiny_service(tmp_path) as bot_service:
        gate = gate_refits(monkeypatch)
        refit = asyncio.create_task(bot_service.retrain("admin"))
        await asyncio.sleep(0.1)
        config = tiny_config(tmp_path)
        env = bot_env(tmp_path, MODEL_PATH=str(config.model_path))
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "console",
            env=env,
            cwd=tmp_path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(other.communicate(b"/retrain\n/recommend 2\n"), 60)
        assert other.returncode == 0, err.decode()
        note = f"another moviebot (process {os.getpid()})"
        assert note in err.decode()
        assert (
            f"already running (in another moviebot process (process {os.getpid()})" in out.decode()
        )
        assert "Your top 2 picks" in out.decode() or "Popular picks" in out.decode()
        assert model_runs(tmp_path)[0]["status"] == "running"  # not marked interrupted
        gate.set()
        await refit
        assert model_runs(tmp_path)[0]["status"] == "succeeded"


SLOW_START = """
import runpy, sys, time, types


class Importing(types.ModuleType):  # stands in for bot.cli while its libraries load
    def __getattr__(self, name):
        print("importing", flush=True)
        time.sleep(30)


sys.modules["bot.cli"] = Importing("bot.cli")
runpy.run_module("bot", run_name="__main__")
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_process_is_still_starting_is_a_quiet_exit(
    tmp_path: Path, sig: signal.Signals
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_START],
        env=bot_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "importing"  # python -m bot is importing
    process.send_signal(sig)
    code, seconds, err = stopped_within(process, 8)
    assert code == 0, err
    assert seconds < 5
    assert "Traceback" not in err


OTHER_GUILD = 900_000_000_004_194_405  # on shard 0 of 2; GUILD_ID is on shard 1


@pytest.mark.postgresql
async def test_two_shard_processes_share_one_postgresql_and_one_refit_at_a_time(
    tmp_path: Path, postgres_url: str
) -> None:
    async with tiny_service(tmp_path, database_url=postgres_url):
        pass  # a saved model and its run in the shared database, so both start ready
    fake = FakeDiscord(guilds=(GUILD_ID, OTHER_GUILD))
    await fake.start()
    logs: dict[int, list[str]] = {0: [], 1: []}
    shards: dict[int, asyncio.subprocess.Process] = {}
    readers = []

    async def collect(shard: int, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            logs[shard].append(line.decode())

    try:
        for shard in (0, 1):
            env = bot_env(
                tmp_path,
                DISCORD_TOKEN=TOKEN,
                LOG_LEVEL="INFO",
                DATABASE_URL=postgres_url,
                SHARD_COUNT="2",
                SHARD_IDS=str(shard),
            )
            del env["DATABASE_PATH"]
            shards[shard] = await launch_against_fake(fake, env, tmp_path)
            assert shards[shard].stderr is not None
            readers.append(asyncio.create_task(collect(shard, shards[shard].stderr)))
        for _ in range(300):
            if len(fake.sockets) == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted(fake.sockets) == [0, 1], logs
        assert fake.shard_of(OTHER_GUILD) == 0
        assert fake.shard_of(GUILD_ID) == 1
        await asyncio.sleep(0.5)  # command sync and the rest of start-up

        # A member rates through shard 0's server and is known through shard 1's.
        rated = await fake.settle(
            await fake.command(
                "rate", {"title": "Heat (1995)", "rating": 5}, user_id=77, guild_id=OTHER_GUILD
            )
        )
        assert "Heat (1995)" in rated.text()
        picks = await fake.settle(await fake.command("recommend", {}, user_id=77), within=20)
        assert "Based on your 1 rating" in picks.text()

        # /retrain through shard 1: that process refits; shard 0's process loads the new model.
        retrain = await fake.settle(
            await fake.command("retrain", permissions=ADMIN_PERMISSIONS), within=60
        )
        assert "Retrained in" in retrain.text()
        for _ in range(200):  # shard 0 looks at the model file every few seconds, on use
            await fake.settle(
                await fake.command("recommend", {}, user_id=78, guild_id=OTHER_GUILD), within=20
            )
            if any("Loaded the model the refitting process saved" in line for line in logs[0]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"shard 0 never loaded the new model: {logs[0]}")

        # Shard 0 starts a refit; /retrain on shard 1 meanwhile says it is already running.
        busy = await fake.command("retrain", permissions=ADMIN_PERMISSIONS, guild_id=OTHER_GUILD)
        await asyncio.wait_for(busy.answered.wait(), 10)
        workers: set[int] = set()
        for _ in range(200):
            if workers := children(shards[0].pid):
                break
            await asyncio.sleep(0.02)
        assert workers, "shard 0 started no refit worker"
        second = await fake.settle(
            await fake.command("retrain", permissions=ADMIN_PERMISSIONS), within=20
        )
        assert "already running (in another moviebot process" in second.text()

        # SIGKILL shard 0 in the middle of its refit: shard 1 takes the next refit.
        shards[0].send_signal(signal.SIGKILL)
        await asyncio.wait_for(shards[0].wait(), 10)
        after = await fake.settle(
            await fake.command("retrain", permissions=ADMIN_PERMISSIONS), within=60
        )
        assert "Retrained in" in after.text(), after.text()
    finally:
        for process in shards.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        for reader in readers:
            reader.cancel()
        await fake.stop()
    assert not any("Traceback" in line for line in logs[1]), "".join(logs[1])
