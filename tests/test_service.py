from __future__ import annotations

import asyncio
import csv
import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import bot.refit_worker as worker_module
from bot import db as database
from bot.db import ratings as rating_store
from bot.db import runs as run_store
from bot.errors import RetrainRunningError, TitleNotFoundError, UserFacingError
from bot.results import Choice, RateResult
from bot.service import MovieService
from recommender import load_bundle
from tests.helpers import gate_refits, model_runs, service_runs, tiny_config, tiny_service


async def rate(service: MovieService, user: int, title: str, stars: object) -> RateResult:
    """Rate through the title flow the cogs and the console use; the title must be clear."""
    outcome = await service.rate_title(user, title, stars)  # type: ignore[arg-type]
    assert isinstance(outcome, RateResult), outcome
    return outcome


async def test_startup_fits_a_model_when_none_is_saved(service: MovieService) -> None:
    assert service.bundle is not None
    assert service.config.model_path.is_file()
    last = await run_store.last_success(service.db)
    assert last is not None
    assert last.trigger == "startup"


async def test_a_saved_model_for_the_same_data_is_reused(tmp_path: Path) -> None:
    async with tiny_service(tmp_path) as first:
        trained_at = first.bundle.metadata.trained_at  # type: ignore[union-attr]
    async with tiny_service(tmp_path) as again:
        assert again.bundle is not None
        assert again.bundle.metadata.trained_at == trained_at
    assert [run["trigger"] for run in model_runs(tmp_path)] == ["startup"]  # no second fit


async def test_corrupt_saved_model_is_replaced_by_a_fresh_fit(tmp_path: Path) -> None:
    async with tiny_service(tmp_path) as first:
        model_path = first.config.model_path
    model_path.write_bytes(b"\x80\x04garbage")
    async with tiny_service(tmp_path) as again:
        assert again.bundle is not None  # refitted at start-up
    load_bundle(model_path)  # and the file on disk is good again


async def test_a_model_file_from_before_the_format_change_is_refitted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(tmp_path)
    config.model_path.parent.mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "data" / "model-format-1.joblib", config.model_path)
    with caplog.at_level("WARNING"):
        async with tiny_service(tmp_path) as service:
            assert service.bundle is not None
    assert "has model format 1, this version reads 2; fit a new one" in caplog.text
    assert load_bundle(config.model_path).metadata.format_version == 2


async def test_rate_and_rerate_report_the_previous_value(service: MovieService) -> None:
    first = await service.rate_title(1, "heat", "4.5", guild_id=99)
    assert isinstance(first, RateResult)
    assert first.movie.label == "Heat (1995)"
    assert first.rating == 4.5
    assert first.previous is None
    second = await rate(service, 1, "Heat", 3)
    assert second.previous == 4.5
    assert await rating_store.for_user(service.db, 1) == {1: 3.0}


async def test_ambiguous_and_unknown_titles_are_never_guessed(service: MovieService) -> None:
    choice = await service.rate_title(1, "hamlet", 4)
    assert isinstance(choice, Choice)
    assert "matches several movies" in choice.question
    assert {m.label for m in choice.candidates} == {"Hamlet (1948)", "Hamlet (1996)"}
    with pytest.raises(TitleNotFoundError):
        await service.rate_title(1, "zzzzqqq", 4)
    assert await rating_store.for_user(service.db, 1) == {}  # nothing guessed
    picked = await choice.run(choice.candidates[1])  # the member picks one from the menu
    assert picked.movie == choice.candidates[1]
    assert await rating_store.for_user(service.db, 1) == {picked.movie.movie_id: 4.0}


async def test_odd_movie_ids_are_titles_not_crashes(service: MovieService) -> None:
    assert service.find("#13").label == "Hamlet (1996)"
    for odd in ("#²", "#" + "9" * 5000, "#-1", "#１３"):
        with pytest.raises(UserFacingError):
            service.find(odd)


@pytest.mark.parametrize(
    ("bad", "reply"),
    [
        ("4,5", "use a dot for decimals: 4.5"),
        ("four", "isn't a rating I understand"),
        ("NaN", "has to be a real number"),
        ("inf", "has to be a real number"),
        ("-1", "-1 is out of range"),
        ("0", "0 is out of range"),
        ("5.5", "5.5 is out of range"),
        ("4.25", "did you mean 4 or 4.5?"),
        ("", "isn't a rating I understand"),
    ],
)
async def test_bad_ratings_are_refused_with_an_explanation(
    service: MovieService, bad: str, reply: str
) -> None:
    with pytest.raises(UserFacingError) as info:
        await service.rate_title(1, "hamlet", bad)  # the rating is checked before the title
    assert reply in str(info.value)
    assert await rating_store.for_user(service.db, 1) == {}


async def test_autocomplete_id_picks_the_exact_movie(service: MovieService) -> None:
    assert service.find("#13").label == "Hamlet (1996)"
    assert {m.label for m in service.complete("ham")} == {"Hamlet (1996)", "Hamlet (1948)"}


async def test_recommend_uses_current_ratings_without_a_refit(service: MovieService) -> None:
    before = await service.recommend(5, 3)
    assert not before.personalized
    assert before.based_on == 0
    for title in ("notebook", "casablanca", "titanic"):
        await rate(service, 5, title, 5)
    after = await service.recommend(5, 3)
    assert after.personalized
    assert after.based_on == 3
    labels = [p.movie.label for p in after.picks]
    # The two romance films this member hasn't rated come first; rated ones never come back.
    assert set(labels[:2]) == {
        "Amelie (Le Fabuleux destin d'Amélie Poulain) (2001)",
        "Pride & Prejudice (2005)",
    }
    assert not set(labels) & {"The Notebook (2004)", "Casablanca (1942)", "Titanic (1997)"}


async def test_recommend_filters_by_genre_and_checks_arguments(service: MovieService) -> None:
    picks = await service.recommend(5, 5, "romance")
    assert picks.picks
    assert all("Romance" in p.movie.genres for p in picks.picks)
    with pytest.raises(UserFacingError, match="genre"):
        await service.recommend(5, 5, "Cartoons")
    with pytest.raises(UserFacingError, match="1 to 25"):
        await service.recommend(5, 26)


async def test_popular_picks_while_the_model_warms_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_refits(monkeypatch)
    service = await MovieService.open(tiny_config(tmp_path), executor=ThreadPoolExecutor(1))
    try:
        await service.rate(7, 1, 5.0)
        picks = await service.recommend(7, 4, "romance")
        assert picks.warming_up
        assert not picks.personalized
        assert len(picks.picks) == 4
        assert all("Romance" in p.movie.genres for p in picks.picks)
        assert 1 not in {p.movie.movie_id for p in picks.picks}
    finally:
        gate.set()
        await service.close()


async def test_without_a_model_and_no_fit_running_the_picks_say_so(tmp_path: Path) -> None:
    service = await MovieService.open(tiny_config(tmp_path), fit_in_background=False)
    try:
        picks = await service.recommend(7, 3)
        assert picks.model_missing
        assert not picks.warming_up
        assert len(picks.picks) == 3
    finally:
        await service.close()


async def test_unrate_myratings_forget_and_export(service: MovieService) -> None:
    await rate(service, 3, "heat", 4)
    await rate(service, 3, "casablanca", 2.5)
    page = await service.my_ratings(3)
    assert page.total == 2
    assert page.pages == 1
    removed = await service.unrate_title(3, "heat")
    assert not isinstance(removed, Choice)
    assert removed.movie.label == "Heat (1995)"
    assert removed.removed == 4.0
    with pytest.raises(UserFacingError, match="haven't rated"):
        await service.unrate(3, 1)
    rows = list(csv.DictReader(io.StringIO(await service.export(3))))
    assert rows == [
        {
            "movieId": "9",
            "title": "Casablanca (1942)",
            "rating": "2.5",
            "timestamp": rows[0]["timestamp"],
        }
    ]
    assert await service.forget(3) == 1
    assert (await service.my_ratings(3)).total == 0
    assert (await service.recommend(3, 3)).based_on == 0


async def test_ratings_pages(service: MovieService) -> None:
    for movie_id in range(1, 14):
        await service.rate(4, movie_id, 3)
    first, second = await service.my_ratings(4, 0), await service.my_ratings(4, 1)
    assert (first.pages, len(first.items), len(second.items)) == (2, 10, 3)
    assert (await service.my_ratings(4, 99)).page == 1


async def test_retrain_includes_chat_ratings_and_swaps_the_model(service: MovieService) -> None:
    await rate(service, 11, "heat", 5)
    await rate(service, 12, "titanic", 4)
    old = service.bundle
    result = await service.retrain("admin", requested_by=11)
    assert service.bundle is not old
    assert (result.n_chat_ratings, result.n_chat_users) == (2, 2)
    assert service.bundle.metadata.n_chat_ratings == 2  # type: ignore[union-attr]
    runs = await service_runs(service)
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["requested_by"] == 11


async def test_second_retrain_while_one_runs_is_told_it_is_running(
    service: MovieService, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_refits(monkeypatch)
    first = asyncio.create_task(service.retrain("admin", 1))
    await asyncio.sleep(0.05)
    with pytest.raises(RetrainRunningError, match="already running"):
        await service.retrain("admin", 2)
    # The event loop stays free while the fit runs in the worker.
    started = asyncio.get_running_loop().time()
    await asyncio.sleep(0.01)
    assert asyncio.get_running_loop().time() - started < 0.5
    gate.set()
    await first
    assert service.retrain_running_for is None


async def test_failed_retrain_keeps_the_old_model_and_records_the_error(
    service: MovieService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise MemoryError("out of memory")

    monkeypatch.setattr(worker_module, "fit_and_save", broken)
    old = service.bundle
    with pytest.raises(UserFacingError, match="still using the previous model"):
        await service.retrain("admin")
    assert service.bundle is old
    run = (await service_runs(service))[0]
    assert run["status"] == "failed"
    assert "out of memory" in run["error"]


async def test_scheduler_refits_only_after_enough_changes(service: MovieService) -> None:
    assert await service.scheduled_refit() is None  # nothing changed since start-up
    await rate(service, 21, "heat", 5)
    assert await service.pending_changes() == 1
    assert await service.scheduled_refit() is not None
    assert await service.pending_changes() == 0
    await rate(service, 21, "heat", 5)  # same value again: not a change
    assert await service.scheduled_refit() is None
    await service.forget(21)
    assert await service.pending_changes() == 1


async def test_scheduler_threshold(tmp_path: Path) -> None:
    async with tiny_service(tmp_path, refit_min_new_ratings=3) as strict:
        await rate(strict, 31, "heat", 5)
        await rate(strict, 31, "titanic", 5)
        assert await strict.scheduled_refit() is None
        await rate(strict, 31, "casablanca", 5)
        assert await strict.scheduled_refit() is not None


async def test_interrupted_fit_is_marked_failed_at_start(tmp_path: Path) -> None:
    async with tiny_service(tmp_path) as service:
        await run_store.start(service.db, "admin", 1, 0)  # what a killed process leaves
    async with tiny_service(tmp_path):
        runs = model_runs(tmp_path)
    assert runs[0]["status"] == "failed"
    assert "interrupted" in runs[0]["error"]


async def test_ratings_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = await database.connect(path)
    assert await rating_store.upsert(db, 1, 2, 4.5) is None
    await db.close()
    db = await database.connect(path)
    assert await rating_store.for_user(db, 1) == {2: 4.5}
    await db.close()


async def test_database_refuses_invalid_ratings_itself(tmp_path: Path) -> None:
    db = await database.connect(tmp_path / "r.db")
    with pytest.raises(database.StorageError):
        await rating_store.upsert(db, 1, 2, 4.25)
    with pytest.raises(database.StorageError):
        await rating_store.upsert(db, 1, 2, 6.0)
    assert await rating_store.for_user(db, 1) == {}
    await db.close()


async def test_server_stats_count_only_that_server(service: MovieService) -> None:
    empty = await service.stats(77)
    assert (empty.members, empty.ratings, empty.chart_png) == (0, 0, None)
    for user in (1, 2, 3):
        await service.rate(user, 1, 5.0, guild_id=77)
    await service.rate(1, 9, 2.0, guild_id=77)
    await service.rate(9, 9, 5.0, guild_id=88)  # another server
    stats = await service.stats(77)
    assert (stats.members, stats.ratings) == (3, 4)
    # Casablanca has one member's rating: listing it would show the channel that rating.
    assert [(m.label, n) for m, n, _ in stats.most_rated] == [("Heat (1995)", 3)]
    assert [(m.label, mean) for m, _, mean in stats.best_rated] == [("Heat (1995)", 5.0)]
    assert stats.chart_png is not None
    assert stats.chart_png.startswith(b"\x89PNG")
    everyone = await service.stats(None)
    assert everyone.ratings == 5


async def test_stats_of_a_small_server_reveal_no_ones_rating(service: MovieService) -> None:
    from bot import formatting as fmt

    await service.rate(1, 1, 1.5, guild_id=55)
    await service.rate(2, 1, 4.0, guild_id=55)
    stats = await service.stats(55)
    assert (stats.members, stats.most_rated, stats.best_rated, stats.chart_png) == (2, (), (), None)
    text = "\n".join(fmt.stats_lines(stats))
    assert "once 3 members have rated" in text
    assert "Heat" not in text


async def test_auto_settings_tune_at_a_refit_and_reuse_the_choice(tmp_path: Path) -> None:
    import json

    from bot import formatting as fmt

    source = write_blocks(tmp_path / "blocks")  # enough members to tune on
    start = {"n_components": 3, "alpha": 0.01, "max_iter": 60}
    async with tiny_service(
        tmp_path, tune=True, model_params=start, movielens_source=str(source)
    ) as service:
        first = await service.retrain("admin")
        assert first.tuning["new_members"] >= 1
        assert first.params["n_components"] == first.tuning["params"]["n_components"]
        assert "self-tuned on" in fmt.retrained(first)
        reg = first.params["fold_in_reg"]
        assert reg == first.tuning["params"]["fold_in_reg"]
        assert (f"fold-in regularization x{reg:g}" in fmt.retrained(first)) == (reg != 1.0)
        stored = model_runs(tmp_path)[0]
        assert json.loads(stored["params"])["alpha"] == first.params["alpha"]
        assert json.loads(stored["tuning"])["key"] == first.tuning["key"]
        await service.rate(5, 1, 4.0)  # chat ratings change; the MovieLens data does not
        second = await service.retrain("admin")
        assert second.tuning == first.tuning  # the cached choice, not a new tuning


def write_blocks(folder: Path, users: int = 150, movies: int = 40) -> Path:
    """Write a block-structured data set in the MovieLens CSV layout: four taste groups."""
    import random

    folder.mkdir(parents=True)
    rng = random.Random(0)
    with (folder / "movies.csv").open("w", encoding="utf-8") as fh:
        fh.write("movieId,title,genres\n")
        for movie in range(1, movies + 1):
            fh.write(f"{movie},Film {movie} ({1950 + movie}),Drama\n")
    with (folder / "ratings.csv").open("w", encoding="utf-8") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        for user in range(1, users + 1):
            block = user % 4
            for movie in range(1, movies + 1):
                if rng.random() < 0.45:
                    liked = (movie - 1) % 4 == block
                    stars = rng.choice([4.0, 4.5, 5.0]) if liked else rng.choice([1.0, 2.0, 3.0])
                    fh.write(f"{user},{movie},{stars},{1_000_000_000 + movie}\n")
    return folder


async def test_concurrent_ratings_share_commits_and_a_bad_one_fails_alone(
    service: MovieService,
) -> None:
    from bot.db import StorageError

    writer = service.writer
    results = await asyncio.gather(
        *(writer.upsert(500 + i, 1 + i % 13, 4.0) for i in range(60)),
        writer.upsert(9, 1, 4.25),  # breaks the table's half-star CHECK
        *(writer.upsert(700 + i, 2, 3.0) for i in range(40)),
        writer.upsert(500, 1, 2.0),  # the same member and film twice in one batch
        return_exceptions=True,
    )
    assert [i for i, r in enumerate(results) if isinstance(r, StorageError)] == [60]
    assert results[0] is None
    assert results[-1] == 4.0  # the first rating of the batch is the previous one
    assert await rating_store.for_user(service.db, 500) == {1: 2.0}
    assert await rating_store.for_user(service.db, 739) == {2: 3.0}
    assert await rating_store.for_user(service.db, 9) == {}


async def test_ratings_queued_at_shutdown_are_written_and_later_ones_refused(
    tmp_path: Path,
) -> None:
    async with tiny_service(tmp_path) as service:
        pending = [asyncio.create_task(service.rate(800 + i, 1, 5.0)) for i in range(20)]
        await asyncio.sleep(0)
        await service.writer.close()
        await asyncio.gather(*pending)
        with pytest.raises(UserFacingError, match="shutting down"):
            await service.rate(900, 1, 5.0)
        for i in range(20):
            assert await rating_store.for_user(service.db, 800 + i) == {1: 5.0}


async def test_members_asking_at_once_are_answered_together_as_each_would_be_alone(
    service: MovieService,
) -> None:
    members = list(range(600, 640))
    for i, member in enumerate(members):
        await service.rate(member, 1 + i % 11, 5.0)
        await service.rate(member, 1 + (i * 7) % 13, 2.0)
    await service.dismiss(members[0], 3)
    alone = [await service.recommend(member, 5) for member in members]
    batches = service.recommend_batches
    together = await asyncio.gather(*(service.recommend(member, 5) for member in members))
    assert service.recommend_batches - batches < len(members) / 4  # computed in a few batches
    for a, b in zip(alone, together, strict=True):
        assert [p.movie.movie_id for p in a.picks] == [p.movie.movie_id for p in b.picks]
        assert a.based_on == b.based_on
        assert [p.because for p in a.picks] == [p.because for p in b.picks]
    assert 3 not in [p.movie.movie_id for p in together[0].picks]


async def test_a_member_whose_picks_fail_does_not_fail_the_others_asking_with_them(
    service: MovieService, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = list(range(700, 710))
    for member in members:
        await service.rate(member, 1 + member % 5, 5.0)
    await service.rate(members[3], 12, 4.0)  # only this member rated Hamlet (1948)
    alone = {m: await service.recommend(m, 5) for m in members if m != members[3]}
    model = service.bundle.model  # type: ignore[union-attr]
    real = model.explain

    def explain(ratings: dict[int, float], movie_id: int, top: int = 3) -> Any:
        if 12 in ratings:
            raise RuntimeError("a fault for one member only")
        return real(ratings, movie_id, top=top)

    monkeypatch.setattr(model, "explain", explain)
    answers = await asyncio.gather(
        *(service.recommend(m, 5) for m in members), return_exceptions=True
    )
    assert isinstance(answers[3], RuntimeError)
    for member, answer in zip(members, answers, strict=True):
        if member != members[3]:
            assert not isinstance(answer, BaseException)
            assert [p.movie.movie_id for p in answer.picks] == [
                p.movie.movie_id for p in alone[member].picks
            ]


async def test_requests_waiting_in_a_cancelled_batcher_are_cancelled_not_left_hanging() -> None:
    from bot.batching import Batcher

    async def cancelled(items: list[int]) -> list[int | BaseException]:
        await asyncio.sleep(0.01)
        raise asyncio.CancelledError  # as when the loop shuts the handler's work down

    batcher: Batcher[int, int] = Batcher(cancelled)
    waiting = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 2)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
