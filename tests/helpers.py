"""Tiny hand-made MovieLens data for logic tests, written in the real file formats."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import threading
import zipfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.db import Database
from bot.service import MovieService, ServiceConfig

# Two taste groups: action fans and romance fans; each movie belongs to one block.
TINY_MOVIES = [
    (1, "Heat (1995)", "Action|Crime|Thriller", 113277, 949),
    (2, "Die Hard (1988)", "Action|Crime|Thriller", 95016, 562),
    (3, "Terminator, The (1984)", "Action|Sci-Fi|Thriller", 88247, 218),
    (4, "Aliens (1986)", "Action|Adventure|Horror|Sci-Fi", 90605, 679),
    (5, "Speed (1994)", "Action|Romance|Thriller", 111257, 1637),
    (6, "Heat, The (2013)", "Action|Comedy|Crime", 2404463, 136795),
    (7, "Notebook, The (2004)", "Drama|Romance", 332280, 11036),
    (8, "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance", 211915, 194),
    (9, "Casablanca (1942)", "Drama|Romance", 34583, 289),
    (10, "Titanic (1997)", "Drama|Romance", 120338, 597),
    (11, "Pride & Prejudice (2005)", "Drama|Romance", 414387, 4348),
    (12, "Hamlet (1948)", "Drama", 40416, 23383),
    (13, "Hamlet (1996)", "Crime|Drama|Romance", 116477, 10549),
]
ACTION = [1, 2, 3, 4, 5, 6]
ROMANCE = [7, 8, 9, 10, 11]


def tiny_ratings() -> list[tuple[int, int, float, int]]:
    """Return block-structured ratings: users 1-12 love action, users 13-24 love romance."""
    rows = []
    for user in range(1, 25):
        liked, disliked = (ACTION, ROMANCE) if user <= 12 else (ROMANCE, ACTION)
        for i, movie in enumerate(liked):
            if (user + i) % 5 != 0:  # leave gaps so there is something to recommend
                rows.append((user, movie, 5.0 if i % 2 == 0 else 4.5, 1_000_000_000 + user))
        rows.append((user, disliked[user % len(disliked)], 1.0, 1_000_000_000 + user))
        if user % 3 == 0:
            rows.append((user, 12 + user % 2, 3.0, 1_000_000_000 + user))
    return rows


def write_tiny_csv(folder: Path, *, zip_name: str | None = "ml-tiny.zip") -> Path:
    """Write the tiny data set in the ml-latest-small CSV layout; return the zip (or folder)."""
    root = folder / "ml-tiny"
    root.mkdir(parents=True, exist_ok=True)
    with (root / "movies.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["movieId", "title", "genres"])
        for movie_id, title, genres, _, _ in TINY_MOVIES:
            writer.writerow([movie_id, title, genres])
    with (root / "links.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["movieId", "imdbId", "tmdbId"])
        for movie_id, _, _, imdb, tmdb in TINY_MOVIES:
            writer.writerow([movie_id, f"{imdb:07d}", tmdb])
    with (root / "ratings.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        for user, movie, rating, ts in tiny_ratings():
            writer.writerow([user, movie, f"{rating:.1f}", ts])
    if zip_name is None:
        return root
    archive = folder / zip_name
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("movies.csv", "links.csv", "ratings.csv"):
            zf.write(root / name, f"ml-tiny/{name}")
    return archive


ML100K_GENRES = (
    "unknown|0",
    "Action|1",
    "Adventure|2",
    "Animation|3",
    "Children's|4",
    "Comedy|5",
    "Crime|6",
    "Documentary|7",
    "Drama|8",
    "Fantasy|9",
    "Film-Noir|10",
    "Horror|11",
    "Musical|12",
    "Mystery|13",
    "Romance|14",
    "Sci-Fi|15",
    "Thriller|16",
    "War|17",
    "Western|18",
)


def write_100k(folder: Path) -> Path:
    """Write a small data set in the exact ml-100k layout (tab/pipe separated, latin-1)."""
    root = folder / "ml-100k"
    root.mkdir(parents=True, exist_ok=True)
    items = [
        (1, "Toy Story (1995)", "01-Jan-1995", {3, 4, 5}),
        (2, "GoldenEye (1995)", "01-Jan-1995", {1, 2, 16}),
        (3, "Cité des enfants perdus, La (1995)", "01-Jan-1995", {2, 15}),
        (4, "Unknown Release", "01-Jan-1997", set()),
    ]
    lines = []
    for movie_id, title, release, genres in items:
        flags = "|".join("1" if i in genres else "0" for i in range(19))
        url = f"http://us.imdb.com/M/title-exact?{title.replace(' ', '%20')}"
        lines.append(f"{movie_id}|{title}|{release}||{url}|{flags}")
    (root / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    data = [(1, 1, 5, 881250949), (1, 2, 3, 881250950), (2, 1, 4, 891717742), (2, 3, 1, 878887116)]
    (root / "u.data").write_text("".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in data))
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    (root / "u.genre").write_text("\n".join(ML100K_GENRES) + "\n")
    return root


TINY_PARAMS = {"n_components": 3, "max_iter": 60}


def tiny_config(folder: Path, **changes: Any) -> ServiceConfig:
    """Return the settings of a service over the tiny data set in ``folder``."""
    values: dict[str, Any] = {
        "database_path": folder / "bot.db",
        "movielens_source": str(write_tiny_csv(folder)),
        "data_dir": folder / "data",
        "model_path": folder / "models" / "model.joblib",
        "model_params": TINY_PARAMS,
        **changes,
    }
    return ServiceConfig(**values)


@contextlib.asynccontextmanager
async def tiny_service(folder: Path, **changes: Any) -> AsyncIterator[MovieService]:
    """Open a service over the tiny data set with a fitted model; refits run in a thread."""
    service = await MovieService.open(
        tiny_config(folder, **changes), executor=ThreadPoolExecutor(1)
    )
    try:
        await service.wait_until_ready()
        yield service
    finally:
        await service.close()


def model_runs(folder_or_db: Path) -> list[dict[str, Any]]:
    """Return the rows of ``model_runs``, newest first, read straight from the database file."""
    path = folder_or_db / "bot.db" if folder_or_db.is_dir() else folder_or_db
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute("SELECT * FROM model_runs ORDER BY id DESC").fetchall()
    finally:
        connection.close()
    return [dict(row) for row in rows]


async def use_every_table(service: MovieService, member: int) -> None:
    """Write something about ``member`` into every table, the way members and admins do.

    Ends with a rating no fit has seen yet; the member has two ratings then (films 1 and 3).
    """
    await service.rate(member, 1, 4.5, guild_id=77)
    await service.rate(member, 9, 2.0, guild_id=77)
    await service.unrate(member, 9)
    await service.rate(5, 2, 3.0)
    await service.dismiss(member, 10)
    night = await service.nights.start(guild_id=77, channel_id=1, invoker=member, voice_members=[5])
    await service.nights.vote(night.night.id, member, 1)
    await service.nights.close(night.night.id, member)  # watched list, fairness record
    await service.nights.add_watched(77, 11, member)
    await service.nights.start(guild_id=77, channel_id=2, invoker=member, voice_members=None)
    await service.retrain("admin", requested_by=member)
    await service.onboarding.welcome(member)
    question = await service.onboarding.next_question(member)
    assert question is not None
    await service.onboarding.haven_t_seen(member, question.movie_id)
    csv = "Date,Name,Year,Letterboxd URI,Rating\n2024-01-01,Heat,1995,https://boxd.it/x,4\n"
    await service.onboarding.import_file(
        member, csv.encode(), "ratings.csv", replace=True, guild_id=77
    )  # Heat is film 1: the import replaces that rating and keeps a backup of it
    await service.rate(member, 3, 5.0)  # a change no fit has seen yet


async def table_columns(db: Database) -> dict[str, list[str]]:
    """Return every table of the bot's schema with its columns, on either store."""
    async with db.read() as conn:
        if db.kind == "sqlite":
            tables = [
                name
                for (name,) in await conn.fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {
                table: [row[1] for row in await conn.fetchall(f"PRAGMA table_info({table})")]
                for table in tables
            }
        rows = await conn.fetchall(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'schema_version'"
            " ORDER BY table_name, ordinal_position"
        )
    schema: dict[str, list[str]] = {}
    for table, column in rows:
        schema.setdefault(table, []).append(column)
    return schema


async def service_runs(service: MovieService) -> list[dict[str, Any]]:
    """Return the rows of ``model_runs``, newest first, through the service's own store."""
    from dataclasses import fields

    from bot.db.runs import ModelRun

    names = [f.name for f in fields(ModelRun)]
    async with service.db.read() as conn:
        rows = await conn.fetchall(f"SELECT {', '.join(names)} FROM model_runs ORDER BY id DESC")
    return [dict(zip(names, row, strict=True)) for row in rows]


def gate_refits(
    monkeypatch: pytest.MonkeyPatch, *, seconds: float | None = None
) -> threading.Event:
    """Hold every refit in its worker until the returned event is set (or ``seconds`` pass)."""
    import bot.refit_worker as worker_module

    gate = threading.Event()
    real = worker_module.fit_and_save

    def held(*args: Any, **kwargs: Any) -> Any:
        gate.wait(seconds if seconds is not None else 30)
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "fit_and_save", held)
    return gate


def children(pid: int) -> set[int]:
    """Return the process ids of a process's children (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
