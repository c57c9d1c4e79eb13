"""Rating writes through the bot's storage, and model save/load.

Writes: sequential upserts, then 1,000 concurrent upserts (200 members at once), each durable
(WAL, synchronous=FULL) before it returns; p50/p99 per write and writes per second, then a
check that nothing was lost. In the same run: one transaction per rating (the baseline), group
commit (``RatingWriter``, what the bot uses), and synchronous=OFF (not durable) to show what
durability costs. Model: save and load time and file size.

    uv run python benchmarks/bench_storage.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine, movielens_source, ms, table
from bot import db as database
from bot.db import ratings as rating_store
from bot.db.writer import RatingWriter
from recommender import fit_bundle, load_bundle, load_dataset, save_bundle


async def writes(path: Path, durable: bool, grouped: bool) -> dict[str, np.ndarray | float]:
    db = await database.connect(path)
    if not durable:
        await db.connection.execute("PRAGMA synchronous = OFF")
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


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, durable, grouped in (
            ("durable, one transaction per rating", True, False),
            ("durable, group commit (the bot)", True, True),
            ("not durable: synchronous=OFF", False, False),
        ):
            db_path = Path(tmp) / f"bench-{durable}-{grouped}.db"
            result = asyncio.run(writes(db_path, durable, grouped))
            seq, conc = result["sequential"], result["concurrent"]
            assert isinstance(seq, np.ndarray)
            assert isinstance(conc, np.ndarray)
            rows.append(
                [
                    name,
                    ms(seq, 50),
                    ms(seq, 99),
                    f"{len(seq) / seq.sum():,.0f}",
                    ms(conc, 50),
                    ms(conc, 99),
                    f"{1000 / float(result['wall']):,.0f}",
                ]
            )
    print(f"Machine: {machine()}\n")
    print(
        "Rating upserts through bot.db (ms; 500 sequential, then 1,000 concurrent; all present)\n"
    )
    print(
        table(
            [
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
