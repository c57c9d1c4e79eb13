"""Onboarding through the service, the console and the fake Discord: import, undo, /quickrate,
the welcome line, and an import killed midway."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.db import ratings as rating_store
from bot.errors import UserFacingError
from bot.onboarding import QUICKRATE_ANSWERS, WELCOME, ImportDecision, ImportResult
from bot.service import MovieService
from tests.fake_discord import components
from tests.harness import Harness, start_harness
from tests.helpers import tiny_service, write_tiny_csv

LETTERBOXD = (
    "Date,Name,Year,Letterboxd URI,Rating\r\n"
    "2024-01-02,Heat,1995,https://boxd.it/a,4.5\r\n"
    '2024-01-03,"Pride & Prejudice",2005,https://boxd.it/b,3\r\n'
    "2024-01-04,Hamlet,1996,https://boxd.it/c,5\r\n"
    "2024-01-05,A Film From The Future,2031,https://boxd.it/d,4\r\n"
)
IMDB = (
    "Const,Your Rating,Date Rated,Title,URL,Title Type,IMDb Rating,Runtime (mins),Year,Genres,"
    "Num Votes,Release Date,Directors\n"
    "tt0113277,9,2024-01-01,Heat,https://www.imdb.com/title/tt0113277/,Movie,8.3,170,1995,"
    "Crime,700000,1995-12-15,Michael Mann\n"
    "tt0034583,10,2024-01-02,Casablanca,https://www.imdb.com/title/tt0034583/,Movie,8.5,102,"
    "1942,Drama,600000,1943-01-23,Michael Curtiz\n"
    "tt0944947,10,2024-01-03,Game of Thrones,https://www.imdb.com/title/tt0944947/,TV Series,"
    "9.2,57,2011,Drama,2000000,2011-04-17,\n"
)


@pytest.fixture
async def service(tmp_path: Path, store: dict[str, Any]) -> AsyncIterator[MovieService]:
    async with tiny_service(tmp_path, import_cooldown_seconds=0, **store) as svc:
        yield svc


async def imported(service: MovieService, data: bytes, name: str, **kw: object) -> ImportResult:
    outcome = await service.onboarding.import_file(1, data, name, **kw)  # type: ignore[arg-type]
    assert isinstance(outcome, ImportResult), outcome
    return outcome


async def test_a_letterboxd_export_is_imported_and_the_rest_explained(
    service: MovieService,
) -> None:
    result = await imported(service, LETTERBOXD.encode(), "ratings.csv")
    assert result.format == "letterboxd"
    assert result.counts.added == 3
    assert result.unmatched == 1  # a film newer than the data set is never guessed
    assert result.unmatched_csv is not None
    assert "A Film From The Future" in result.unmatched_csv
    assert await rating_store.for_user(service.db, 1) == {1: 4.5, 11: 3.0, 13: 5.0}
    assert await service.pending_changes() >= 3  # imports count toward the next refit


async def test_imdb_ids_map_through_links_and_tv_rows_are_skipped(service: MovieService) -> None:
    result = await imported(service, IMDB.encode("utf-8-sig"), "whatever.txt")
    assert result.format == "imdb"
    assert await rating_store.for_user(service.db, 1) == {1: 4.5, 9: 5.0}
    assert result.skipped_total == 1


async def test_conflicts_are_asked_about_then_kept_or_replaced_and_undo_restores(
    service: MovieService,
) -> None:
    await service.rate(1, 1, 2.0)  # Heat, rated here differently from the file
    await service.rate(1, 10, 3.0)
    decision = await service.onboarding.import_file(1, LETTERBOXD.encode(), "ratings.csv")
    assert isinstance(decision, ImportDecision)
    assert decision.conflicts == 1
    assert await rating_store.for_user(service.db, 1) == {1: 2.0, 10: 3.0}  # nothing written yet
    kept = await decision.apply(False)
    assert (kept.counts.added, kept.counts.kept) == (2, 1)
    assert (await rating_store.for_user(service.db, 1))[1] == 2.0
    replaced = await imported(service, LETTERBOXD.encode(), "ratings.csv", replace=True)
    assert (replaced.counts.replaced, replaced.counts.unchanged) == (1, 2)
    assert (await rating_store.for_user(service.db, 1))[1] == 4.5
    assert await service.onboarding.undo_import(1) == (1, 0)  # the last import changed Heat
    assert await rating_store.for_user(service.db, 1) == {1: 2.0, 10: 3.0, 11: 3.0, 13: 5.0}
    with pytest.raises(UserFacingError, match="no import to undo"):
        await service.onboarding.undo_import(1)


async def test_undo_takes_back_only_the_import_and_keeps_later_ratings(
    service: MovieService,
) -> None:
    await service.rate(1, 1, 2.0)
    await imported(service, LETTERBOXD.encode(), "ratings.csv", replace=True)
    await service.rate(1, 11, 1.0)  # re-rated after the import
    await service.rate(1, 9, 4.0)  # rated after the import
    assert await service.onboarding.undo_import(1) == (2, 1)
    assert await rating_store.for_user(service.db, 1) == {1: 2.0, 11: 1.0, 9: 4.0}


async def test_a_decision_applies_once_whatever_is_clicked(service: MovieService) -> None:
    await service.rate(1, 1, 1.0)
    decision = await service.onboarding.import_file(1, LETTERBOXD.encode(), "ratings.csv")
    assert isinstance(decision, ImportDecision)
    first, second = await asyncio.gather(
        decision.apply(True), decision.apply(False), return_exceptions=True
    )
    assert isinstance(first, ImportResult)
    assert isinstance(second, UserFacingError)
    assert "already applied" in str(second)
    assert await service.onboarding.undo_import(1) == (3, 0)
    assert await rating_store.for_user(service.db, 1) == {1: 1.0}


async def test_bad_files_get_one_sentence_and_write_nothing(service: MovieService) -> None:
    await service.rate(1, 9, 4.0)
    for data in (b"", b"\x00\x01\x02" * 100, b"name,score\nHeat,4\n", b"x" * 2_000_001):
        with pytest.raises(UserFacingError) as info:
            await service.onboarding.import_file(1, data, "ratings.csv")
        assert "\n" not in str(info.value)
    assert await rating_store.for_user(service.db, 1) == {9: 4.0}


async def test_one_import_per_member_per_hour(tmp_path: Path) -> None:
    async with tiny_service(tmp_path) as service:  # the default cooldown
        await imported(service, LETTERBOXD.encode(), "ratings.csv")
        with pytest.raises(UserFacingError, match="One import per member per 60 minutes"):
            await service.onboarding.import_file(1, LETTERBOXD.encode(), "ratings.csv")
        await imported_as(service, 2)  # another member may


async def imported_as(service: MovieService, member: int) -> None:
    outcome = await service.onboarding.import_file(member, LETTERBOXD.encode(), "ratings.csv")
    assert isinstance(outcome, ImportResult)


async def test_quickrate_never_asks_a_film_twice(service: MovieService) -> None:
    onboarding = service.onboarding
    seen: list[int] = []
    for step in range(8):
        movie = await onboarding.next_question(5)
        if movie is None:
            break
        assert movie.movie_id not in seen
        seen.append(movie.movie_id)
        if step % 2:
            await onboarding.haven_t_seen(5, movie.movie_id)
        else:
            await service.rate(5, movie.movie_id, 4.0)
    assert len(seen) == 8
    hidden = next(m for m in range(1, 14) if m not in seen)
    await service.dismiss(5, hidden)
    while (movie := await onboarding.next_question(5)) is not None:
        assert movie.movie_id not in {*seen, hidden}
        await onboarding.haven_t_seen(5, movie.movie_id)
        seen.append(movie.movie_id)
    assert len(seen) == 12  # 13 films, one hidden


async def test_the_welcome_comes_once_and_not_to_members_with_ratings(
    service: MovieService,
) -> None:
    assert await service.onboarding.welcome(3) == WELCOME
    assert await service.onboarding.welcome(3) is None
    await service.rate(4, 1, 4.0)
    assert await service.onboarding.welcome(4) is None


async def test_import_and_quickrate_in_the_console(
    service: MovieService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.console import Console

    monkeypatch.chdir(tmp_path)  # the unmatched rows are saved beside the console

    export = tmp_path / "letterboxd-me-2024.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.writestr("ratings.csv", LETTERBOXD)
    out = io.StringIO()
    console = Console(service, out)
    await service.rate(0, 1, 2.0)
    for line in (f"/import {export}", "replace", "/quickrate", "4", "skip", "done"):
        await console.handle(line)
    text = out.getvalue()
    assert "rates 1 film differently" in text
    assert "Imported your Letterboxd ratings: 2 imported, 0 unchanged, 1 replaced" in text
    assert "Question 1 of up to" in text
    assert "Question 2 of up to" in text
    assert "Here are your picks" in text
    assert "A Film From The Future" in (tmp_path / "moviebot-unmatched.csv").read_text()


# ---------------------------------------------------------------------------- Discord


@pytest.fixture
async def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    async for harness in start_harness(
        tmp_path, monkeypatch, config={"import_cooldown_seconds": 0}
    ):
        yield harness


async def test_import_an_attachment_with_the_unmatched_rows_attached(h: Harness) -> None:
    ex = await h.fake.settle(
        await h.fake.command(
            "import", subcommand="file", files={"file": ("ratings.csv", LETTERBOXD.encode())}
        )
    )
    assert "Imported your Letterboxd ratings: 3 imported" in ex.text()
    name, data = ex.files[0]
    assert name == "moviebot-unmatched.csv"
    assert "A Film From The Future" in data.decode()
    undo = await h.fake.settle(await h.fake.command("import", subcommand="undo"))
    assert "Took back your last import: 3 films as before the import." in undo.text()
    assert await rating_store.for_user(h.service.db, 1001) == {}


async def test_an_import_that_disagrees_asks_first(h: Harness) -> None:
    await h.service.rate(1001, 1, 1.0)
    ex = await h.fake.settle(
        await h.fake.command(
            "import", subcommand="file", files={"file": ("export.csv", LETTERBOXD.encode())}
        )
    )
    assert "rates 1 film differently" in ex.text()
    message = h.fake.last_message(ex)
    take = next(c for c in components(message) if c["label"] == "Take the file's")
    done = await h.fake.settle(await h.fake.click(message, take["custom_id"]))
    assert done.responses[0]["type"] == 6  # acknowledged before the rows are written
    assert "1 replaced" in message["content"]
    assert (await rating_store.for_user(h.service.db, 1001))[1] == 4.5


async def test_quickrate_card_saves_each_answer_and_ends_with_picks(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("quickrate"))
    card = h.fake.last_message(ex)
    assert "Question 1 of up to" in card["embeds"][0]["description"]
    select = components(card)[0]
    values = [o["value"] for o in select["options"]]
    assert values == ["5", "4.5", "4", "3.5", "3", "2.5", "2", "1.5", "1", "0.5", "skip", "done"]
    first = card["embeds"][0]["title"]
    await h.fake.settle(
        await h.fake.click(card, select["custom_id"], values=["4.5"], component_type=3)
    )
    assert card["embeds"][0]["title"] != first
    assert "Question 2 of up to" in card["embeds"][0]["description"]
    assert len(await rating_store.for_user(h.service.db, 1001)) == 1
    await h.fake.settle(
        await h.fake.click(card, select["custom_id"], values=["skip"], component_type=3)
    )
    await h.fake.settle(
        await h.fake.click(card, select["custom_id"], values=["done"], component_type=3)
    )
    assert "2 answers saved" in card["content"]
    assert card["components"] == []
    assert QUICKRATE_ANSWERS == 15


async def test_the_first_private_reply_ends_with_the_welcome(h: Harness) -> None:
    first = await h.fake.settle(await h.fake.command("recommend", {"count": 2}))
    for _ in range(100):
        if WELCOME in first.text():
            break
        await asyncio.sleep(0.02)
    assert WELCOME in first.text()
    second = await h.fake.settle(await h.fake.command("recommend", {"count": 2}))
    await asyncio.sleep(0.1)
    assert WELCOME not in second.text()


# ---------------------------------------------------------------------------- SIGKILL

IMPORTER = """
import sys, time
import bot.db.onboarding as store
from bot.cli import main

real = store.import_ratings


class Rows(list):
    def __iter__(self):  # halfway through the rows, inside the transaction: wait to be killed
        for i, row in enumerate(list.__iter__(self)):
            if i == len(self) // 2:
                print("mid-import", flush=True)
                time.sleep(60)
            yield row


async def slow(db, user_id, rows, **kwargs):
    return await real(db, user_id, Rows(rows), **kwargs)


store.import_ratings = slow
sys.exit(main(["import", "--member", "7", "--replace", sys.argv[1]]))
"""


def big_export(folder: Path) -> Path:
    """A moviebot export of 20,000 rows (the limit) over the tiny catalog's films."""
    path = folder / "big.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["movieId", "title", "rating", "timestamp"])
        for i in range(20_000):
            writer.writerow([1 + i % 13, "", f"{0.5 + (i % 10) / 2:g}", 1_700_000_000 + i])
    return path


def test_a_sigkill_during_a_big_import_leaves_the_ratings_as_they_were(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env.update(
        MOVIELENS_SOURCE=str(write_tiny_csv(tmp_path)),
        DATABASE_PATH=str(tmp_path / "bot.db"),
        MODEL_PATH=str(tmp_path / "model.joblib"),
        DATA_DIR=str(tmp_path / "data"),
        DISCORD_TOKEN="",
        LOG_LEVEL="WARNING",
        IMPORT_COOLDOWN_MINUTES="0",
        MODEL_COMPONENTS="3",
        MODEL_ALPHA="0.03",
    )
    setup = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="/as 7\n/rate #1 1\n/rate #2 2\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(big_export(tmp_path))],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "mid-import"  # the transaction is open now
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    connection = sqlite3.connect(tmp_path / "bot.db")
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = dict(connection.execute("SELECT movie_id, rating FROM ratings WHERE user_id = 7"))
    backups = connection.execute("SELECT COUNT(*) FROM import_backups").fetchone()
    connection.close()
    assert rows == {1: 1.0, 2: 2.0}  # exactly as before
    assert backups == (0,)  # nothing of the killed import's transaction survived
