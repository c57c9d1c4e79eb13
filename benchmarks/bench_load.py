"""Rate and recommend latency under load: 200 members at once while a real refit runs.

Through the service (the layer both Discord and the console use), on ml-latest-small, with the
refit in its worker process as in production. In the same run, one after the other on the same
data: each /recommend answered on its own (``recommend_batch=1``, the old path), and members
asking at once answered together (the bot: one pair of reads and one fold-in per batch). The
baseline for both: the same operations by one member on an idle bot.

    uv run python -m benchmarks.bench_load
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine, movielens_source, ms, table
from bot.service import MovieService, ServiceConfig

MEMBERS, PER_MEMBER = 200, 20


async def run(batch: int, tmp: str) -> list[list[str]]:
    service = await MovieService.open(
        ServiceConfig(
            database_path=Path(tmp) / f"bot-{batch}.db",
            movielens_source=movielens_source(),
            data_dir=Path(tmp),
            model_path=Path(tmp) / "m.joblib",
            recommend_batch=batch,
        )
    )
    await service.wait_until_ready()
    movies = [m.movie_id for m in service.catalog.popular(400)]
    rng = np.random.default_rng(0)

    async def member(user: int, rate_t: list[float], rec_t: list[float]) -> None:
        for i, movie in enumerate(rng.choice(movies, PER_MEMBER, replace=False).tolist()):
            started = time.perf_counter()
            await service.rate(user, movie, float(rng.choice(np.arange(1, 11) / 2)))
            rate_t.append(time.perf_counter() - started)
            if i % 5 == 4:
                started = time.perf_counter()
                await service.recommend(user, 10)
                rec_t.append(time.perf_counter() - started)

    idle_rate: list[float] = []
    idle_rec: list[float] = []
    for user in range(10):
        await member(100_000 + user, idle_rate, idle_rec)
    load_rate: list[float] = []
    load_rec: list[float] = []
    refit = asyncio.create_task(service.retrain("admin"))
    await asyncio.sleep(0.5)  # the worker has started fitting
    started = time.perf_counter()
    await asyncio.gather(*(member(u, load_rate, load_rec) for u in range(1, MEMBERS + 1)))
    wall = time.perf_counter() - started
    running = service.retrain_running_for is not None
    result = await refit
    await service.close()
    mode = "one at a time" if batch == 1 else f"together (up to {batch})"
    print(
        f"{mode}: {MEMBERS * PER_MEMBER:,} ratings and {len(load_rec):,} recommends in "
        f"{wall:.1f} s; refit still running when the load ended: {running}; refit took "
        f"{result.seconds:.1f} s; {service.recommend_batches:,} recommend batches"
    )
    rows = []
    for name, idle, loaded in (("rate", idle_rate, load_rate), ("recommend", idle_rec, load_rec)):
        a, b = np.array(idle), np.array(loaded)
        rows.append(
            [
                mode,
                name,
                ms(a, 50),
                ms(a, 99),
                ms(b, 50),
                ms(b, 99),
                f"{np.median(b) / np.median(a):.0f}x",
            ]
        )
    return rows


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 256):  # the old path first, then the bot's
            rows += asyncio.run(run(batch, tmp))
    print(f"Machine: {machine()}\n")
    print("Per-operation latency as a member sees it (ms), idle vs 200 members at once + refit\n")
    print(
        table(
            [
                "/recommend answered",
                "operation",
                "idle p50",
                "idle p99",
                "under load p50",
                "under load p99",
                "median ratio",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
