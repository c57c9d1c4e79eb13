"""Shared fixtures: the real MovieLens data (found without the network where possible)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.service import MovieService
from recommender import Catalog, Dataset, NMFRecommender, fetch_dataset, load_dataset
from tests.harness import Harness, start_harness
from tests.helpers import tiny_service

ROOT = Path(__file__).resolve().parent.parent


def find_movielens() -> str:
    """Return where the real ml-latest-small is: MOVIELENS_SOURCE, ../shared, data/, or download."""
    configured = os.environ.get("MOVIELENS_SOURCE")
    if configured:
        return configured
    shared = ROOT.parent / "shared" / "movielens" / "ml-latest-small.zip"
    if shared.is_file():
        return str(shared)
    cached = ROOT / "data" / "ml-latest-small.zip"
    if cached.is_file():
        return str(cached)
    return str(fetch_dataset("ml-latest-small", ROOT / "data"))


REAL_DATA_FIXTURES = frozenset({"movielens_source", "movielens", "catalog", "fitted"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real data set ``movielens``, so it can be deselected."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.movielens)


@pytest.fixture(scope="session")
def movielens_source() -> str:
    return find_movielens()


@pytest.fixture(scope="session")
def movielens(movielens_source: str) -> Dataset:
    return load_dataset(movielens_source, progress=False)


@pytest.fixture(scope="session")
def catalog(movielens: Dataset) -> Catalog:
    return Catalog(movielens.movies, movielens.ratings)


@pytest.fixture(scope="session")
def fitted(movielens: Dataset) -> NMFRecommender:
    return NMFRecommender(n_components=40, max_iter=60).fit(movielens.ratings)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MovieService]:
    """A service over the tiny data set with a fitted model (refits in a thread)."""
    async with tiny_service(tmp_path) as svc:
        yield svc


@pytest.fixture
async def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The real bot against the fake Discord API, over the tiny data set."""
    async for harness in start_harness(tmp_path, monkeypatch):
        yield harness
