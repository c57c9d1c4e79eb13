"""Load: 200 members rating at once while a refit runs, through the service and through Discord."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.db import ratings as rating_store
from bot.service import MovieService
from tests.fake_discord import ADMIN_PERMISSIONS
from tests.harness import Harness, start_harness
from tests.helpers import TINY_MOVIES, gate_refits

MEMBERS = 200
PER_MEMBER = 20
MOVIE_IDS = [m[0] for m in TINY_MOVIES]


def plan(member: int) -> list[tuple[int, float]]:
    """Return a member's 20 (movie, stars) ratings: every movie once, then some re-rated."""
    ratings = []
    for i in range(PER_MEMBER):
        movie = MOVIE_IDS[(member + i) % len(MOVIE_IDS)]  # 13 movies: the last 7 are re-ratings
        ratings.append((movie, 0.5 + ((member * 7 + i) % 10) / 2))
    return ratings


def expected_final() -> dict[tuple[int, int], float]:
    final: dict[tuple[int, int], float] = {}
    for member in range(1, MEMBERS + 1):
        for movie, stars in plan(member):
            final[(member, movie)] = stars
    return final


class LoopLag:
    """Measure how late the event loop wakes a 10 ms ticker (the loop's responsiveness)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - started - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def slow_refits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each refit take 2 s longer (in the worker), so the load overlaps it."""
    gate_refits(monkeypatch, seconds=2.0)


async def test_200_members_rating_at_once_during_a_refit_lose_nothing(
    service: MovieService, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_refits(monkeypatch)
    confirmed: list[tuple[int, int, float]] = []
    during_refit = 0

    async def member(user: int) -> None:
        nonlocal during_refit
        for movie, stars in plan(user):
            result = await service.rate(user, movie, stars, guild_id=1)
            confirmed.append((user, result.movie.movie_id, result.rating))
            during_refit += service.retrain_running_for is not None

    old_model = service.bundle
    with LoopLag() as lag:
        refit = asyncio.create_task(service.retrain("admin"))
        await asyncio.gather(*(member(u) for u in range(1, MEMBERS + 1)))
        result = await refit
    assert len(confirmed) == MEMBERS * PER_MEMBER
    assert during_refit > MEMBERS  # the writes really overlapped the refit
    stored = {(u, m): r for u, m, r in await rating_store.all_ratings(service.db)}
    assert stored == expected_final()  # every confirmed rating, final values, none twice
    assert service.bundle is not old_model
    assert result.n_movies == len(MOVIE_IDS)
    assert lag.worst < 0.5, f"the event loop stalled for {lag.worst:.2f} s"


async def discord_load(h: Harness) -> None:
    """Every member rates through the real client while an admin's refit runs."""
    during_refit = 0

    async def member(user: int) -> list[float]:
        nonlocal during_refit
        seconds = []
        for movie, stars in plan(user):
            exchange = await h.fake.command(
                "rate", {"title": f"#{movie}", "rating": stars}, user_id=user
            )
            await h.fake.settle(exchange, within=60)
            assert "Rated **" in exchange.text(), exchange.text()
            seconds.append(exchange.first_response_seconds)
            during_refit += h.service.retrain_running_for is not None
        return seconds

    refit = await h.fake.command("retrain", permissions=ADMIN_PERMISSIONS, user_id=10_000)
    with LoopLag() as lag:
        timings = await asyncio.gather(*(member(u) for u in range(1, MEMBERS + 1)))
        await h.fake.settle(refit, within=120)
    assert "Retrained in" in refit.text()
    assert during_refit > MEMBERS
    worst = max(max(t) for t in timings)
    assert worst < 3.0, f"an interaction was first answered after {worst:.2f} s"
    stored = {(u, m): r for u, m, r in await rating_store.all_ratings(h.service.db)}
    assert stored == expected_final()
    assert lag.worst < 1.0


async def test_200_members_through_discord_are_all_answered_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_refits(monkeypatch)
    async for h in start_harness(tmp_path, monkeypatch, command_cooldown_burst=PER_MEMBER):
        await discord_load(h)
