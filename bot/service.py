"""What the bot does, without Discord: rate, recommend, retrain and the rest.

The Discord cogs and the local console both call this; neither writes SQL nor touches the model
directly. Everything slow (loading data, fitting, scoring) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.db import Database
from bot.db import ratings as rating_store
from bot.db import runs as run_store
from bot.errors import (
    AmbiguousTitleError,
    ModelUnavailableError,
    RetrainRunningError,
    TitleNotFoundError,
    UserFacingError,
)
from bot.ratings import parse_rating
from bot.text import escape
from recommender import (
    Catalog,
    Dataset,
    ModelBundle,
    ModelFileError,
    ModelNotFoundError,
    Movie,
    load_bundle,
    load_dataset,
    single_threaded_blas,
)
from recommender.baselines import PopularityRecommender
from recommender.catalog import MAX_QUERY_CHARS
from recommender.persistence import remove_stale_temp_files
from recommender.training import fit_and_save

log = logging.getLogger(__name__)

MAX_RECOMMENDATIONS = 25
RATINGS_PAGE_SIZE = 10
POPULAR_DAMPING = 50.0
STATS_MIN_RATINGS = 3


@dataclass(frozen=True)
class ServiceConfig:
    """What the service needs to know about files and fitting."""

    movielens_source: str = "ml-latest-small"
    data_dir: Path = Path("data")
    model_path: Path = Path("models/model.joblib")
    refit_min_new_ratings: int = 1
    model_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RateResult:
    """A saved rating, with the member's previous rating of the movie if there was one."""

    movie: Movie
    rating: float
    previous: float | None


@dataclass(frozen=True)
class Pick:
    """One recommended movie."""

    movie: Movie
    score: float


@dataclass(frozen=True)
class Picks:
    """A recommendation list and what it is based on."""

    picks: tuple[Pick, ...]
    based_on: int  # the member's ratings that the model used
    personalized: bool  # False: popular picks (no ratings yet, or no model yet)
    warming_up: bool  # True while the first model is being fitted
    genre: str | None = None


@dataclass(frozen=True)
class RatedMovie:
    """A movie on a member's ratings page."""

    movie: Movie
    rating: float
    updated_at: int


@dataclass(frozen=True)
class RatingsPage:
    """One page of a member's ratings."""

    items: tuple[RatedMovie, ...]
    page: int  # 0-based
    pages: int
    total: int


@dataclass(frozen=True)
class RetrainResult:
    """The outcome of a refit that finished and is now live."""

    seconds: float
    n_ratings: int
    n_chat_ratings: int
    n_chat_users: int
    n_movies: int
    quality: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerStatsView:
    """A server's numbers, ready to show."""

    members: int
    ratings: int
    most_rated: tuple[tuple[Movie, int, float], ...]
    best_rated: tuple[tuple[Movie, int, float], ...]
    chart_png: bytes | None


def _process_pool() -> Executor:
    # spawn: a forked child would inherit the event loop's and aiosqlite's threads.
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


class MovieService:
    """The bot's behaviour over a database, a data set and the live model.

    Parameters
    ----------
    db : Database
        The open, migrated database.
    config : ServiceConfig
    executor : concurrent.futures.Executor, optional
        Where refits run; by default one spawned worker process.
    """

    def __init__(
        self, db: Database, config: ServiceConfig, executor: Executor | None = None
    ) -> None:
        self.db = db
        self.config = config
        self._executor = executor
        self._owns_executor = executor is None
        self.dataset: Dataset | None = None
        self.catalog: Catalog | None = None
        self.bundle: ModelBundle | None = None
        self._popular_order: np.ndarray = np.empty(0, dtype=np.int64)
        self._refit_started: float | None = None
        self._refit_task: asyncio.Task[RetrainResult | None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, fit_in_background: bool = True) -> None:
        """Load the data set and the saved model; fit a model in the background if none fits.

        Raises :class:`recommender.DataError` when the data set is missing or broken.
        """
        abandoned = await run_store.abandon_running(self.db)
        if abandoned:
            log.warning("Marked %d interrupted model fit(s) as failed", abandoned)
        if await asyncio.to_thread(remove_stale_temp_files, self.config.model_path):
            log.warning("Removed an unfinished model file left by an interrupted save")
        self.dataset = await asyncio.to_thread(
            load_dataset,
            self.config.movielens_source,
            self.config.data_dir,
            progress=sys.stderr.isatty(),  # a download bar for a person at a terminal
        )
        self.catalog = await asyncio.to_thread(Catalog, self.dataset.movies, self.dataset.ratings)
        self._popular_order = await asyncio.to_thread(_popular_order, self.dataset.ratings)
        log.info(
            "Loaded %s: %d movies, %d ratings",
            self.dataset.name,
            len(self.catalog),
            len(self.dataset.ratings),
        )
        self.bundle = await asyncio.to_thread(self._load_matching_model)
        if self.bundle is None and fit_in_background:
            self._refit_task = asyncio.create_task(self._startup_refit(), name="startup-refit")

    def _load_matching_model(self) -> ModelBundle | None:
        assert self.dataset is not None
        try:
            bundle = load_bundle(self.config.model_path)
        except ModelNotFoundError:
            log.info("No saved model at %s; fitting one", self.config.model_path)
            return None
        except ModelFileError as exc:
            log.warning("Ignoring the saved model: %s", exc)
            return None
        if bundle.metadata.data_fingerprint != self.dataset.fingerprint:
            log.info("The saved model was fitted on other data; fitting a new one")
            return None
        log.info(
            "Loaded the saved model (trained %s, %d chat ratings)",
            bundle.metadata.trained_at,
            bundle.metadata.n_chat_ratings,
        )
        return bundle

    async def _startup_refit(self) -> RetrainResult | None:
        try:
            return await self.retrain("startup")
        except UserFacingError as exc:
            log.warning("The start-up fit did not finish: %s", exc)
            return None

    async def wait_until_ready(self) -> None:
        """Wait for a start-up fit, if one is running (for tests and the console)."""
        if self._refit_task is not None:
            await asyncio.shield(self._refit_task)

    async def close(self) -> None:
        """Stop a running start-up fit and the worker process."""
        if self._refit_task is not None and not self._refit_task.done():
            self._refit_task.cancel()
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ------------------------------------------------------------------ catalog

    def _catalog(self) -> Catalog:
        if self.catalog is None:
            raise ModelUnavailableError("I'm still loading the movie list; try again in a moment.")
        return self.catalog

    def complete(self, text: str, limit: int = 25) -> list[Movie]:
        """Return autocomplete suggestions for a typed title."""
        return self._catalog().complete(text[:MAX_QUERY_CHARS], limit)

    def find(self, query: str) -> Movie:
        """Return the one movie ``query`` names, or raise a not-found or ambiguous error.

        A query of the form ``#123`` (as carried by an autocomplete pick) is a movie id.
        """
        catalog = self._catalog()
        text = query.strip()
        if text.startswith("#") and text[1:].isdigit():
            movie = catalog.get(int(text[1:]))
            if movie is not None:
                return movie
        if not text:
            raise UserFacingError("Which movie? Type a title.")
        resolution = catalog.resolve(text[:MAX_QUERY_CHARS])
        if resolution.movie is not None:
            return resolution.movie
        if resolution.candidates:
            raise AmbiguousTitleError(text[:100], resolution.candidates)
        raise TitleNotFoundError(text[:100])

    def movie(self, movie_id: int) -> Movie:
        """Return a catalog movie by id, or raise a friendly error."""
        movie = self._catalog().get(movie_id)
        if movie is None:
            raise UserFacingError("That movie isn't in the catalog any more.")
        return movie

    def find_id(self, movie_id: int) -> Movie | None:
        """Return a catalog movie by id, or None."""
        return self._catalog().get(movie_id)

    def genres(self) -> list[str]:
        """Return the genre names members can filter by."""
        return self._catalog().genres

    def _genre(self, genre: str | None) -> str | None:
        if genre is None or not genre.strip():
            return None
        known = {g.casefold(): g for g in self.genres()}
        match = known.get(genre.strip().casefold())
        if match is None:
            raise UserFacingError(
                f"I don't know the genre “{escape(genre.strip(), 40)}”. "
                f"Try one of: {', '.join(known.values())}."
            )
        return match

    # ------------------------------------------------------------------ ratings

    async def rate(
        self, user_id: int, movie_id: int, rating: str | float, guild_id: int | None = None
    ) -> RateResult:
        """Save a member's rating of a movie; return it with the previous rating, if any."""
        value = parse_rating(rating)
        movie = self.movie(movie_id)
        previous = await rating_store.upsert(self.db, user_id, movie.movie_id, value, guild_id)
        return RateResult(movie, value, previous)

    async def rate_title(
        self, user_id: int, title: str, rating: str | float, guild_id: int | None = None
    ) -> RateResult:
        """Resolve a typed title and rate it (the rating is checked before the title)."""
        parse_rating(rating)
        return await self.rate(user_id, self.find(title).movie_id, rating, guild_id)

    async def unrate(self, user_id: int, movie_id: int) -> tuple[Movie, float]:
        """Remove a member's rating; return the movie and the removed rating."""
        movie = self.movie(movie_id)
        removed = await rating_store.delete(self.db, user_id, movie_id)
        if removed is None:
            raise UserFacingError(f"You haven't rated {movie.label}.")
        return movie, removed

    async def rated_movies(self, user_id: int) -> dict[int, float]:
        """Return a member's ratings as movie id -> stars."""
        return await rating_store.for_user(self.db, user_id)

    async def my_ratings(self, user_id: int, page: int = 0) -> RatingsPage:
        """Return one page of a member's ratings, newest first."""
        total = await rating_store.count_for_user(self.db, user_id)
        pages = max(1, math.ceil(total / RATINGS_PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        rows = await rating_store.page_for_user(
            self.db, user_id, page * RATINGS_PAGE_SIZE, RATINGS_PAGE_SIZE
        )
        catalog = self._catalog()
        items = []
        for row in rows:
            movie = catalog.get(row.movie_id) or Movie(row.movie_id, f"Movie #{row.movie_id}", None)
            items.append(RatedMovie(movie, row.rating, row.updated_at))
        return RatingsPage(tuple(items), page, pages, total)

    async def forget(self, user_id: int) -> int:
        """Delete all of a member's ratings; the live model forgets them at once (fold-in)."""
        return await rating_store.delete_user(self.db, user_id)

    async def export(self, user_id: int) -> str:
        """Return a member's ratings as CSV: movieId, title, rating, timestamp."""
        ratings = await rating_store.page_for_user(self.db, user_id, 0, 1_000_000)
        catalog = self._catalog()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["movieId", "title", "rating", "timestamp"])
        for row in sorted(ratings, key=lambda r: r.updated_at):
            movie = catalog.get(row.movie_id)
            writer.writerow(
                [row.movie_id, movie.label if movie else "", f"{row.rating:g}", row.updated_at]
            )
        return out.getvalue()

    async def stats(self, guild_id: int | None) -> ServerStatsView:
        """Return a server's rating numbers with movie titles and a chart (PNG)."""
        raw = await rating_store.server_stats(self.db, guild_id, min_count=STATS_MIN_RATINGS)
        catalog = self._catalog()

        def named(rows: list[tuple[int, int, float]]) -> tuple[tuple[Movie, int, float], ...]:
            return tuple(
                (movie, n, mean) for m, n, mean in rows if (movie := catalog.get(m)) is not None
            )

        chart = None
        if raw.ratings:
            from recommender.report import stats_chart

            chart = await asyncio.to_thread(stats_chart, raw.by_stars, "Ratings here, by stars")
        return ServerStatsView(
            raw.members, raw.ratings, named(raw.most_rated), named(raw.best_rated), chart
        )

    # ------------------------------------------------------------------ recommendations

    async def recommend(self, user_id: int, count: int = 10, genre: str | None = None) -> Picks:
        """Recommend movies from the member's current ratings (folded into the live model)."""
        if not 1 <= count <= MAX_RECOMMENDATIONS:
            raise UserFacingError(f"I can recommend 1 to {MAX_RECOMMENDATIONS} movies at a time.")
        genre_name = self._genre(genre)
        ratings = await rating_store.for_user(self.db, user_id)
        bundle = self.bundle
        if bundle is None:
            picks = self._popular(count, genre_name, exclude=set(ratings))
            return Picks(picks, len(ratings), False, True, genre_name)
        picks, used = await asyncio.to_thread(
            self._recommend_with_model, bundle, ratings, count, genre_name
        )
        return Picks(picks, used, used > 0, False, genre_name)

    def _recommend_with_model(
        self, bundle: ModelBundle, ratings: dict[int, float], count: int, genre: str | None
    ) -> tuple[tuple[Pick, ...], int]:
        model = bundle.model
        used = len(model.columns(ratings))
        with single_threaded_blas():
            recs = model.recommend(ratings, count, genres=[genre] if genre else None)
        catalog = self._catalog()
        picks = tuple(
            Pick(movie, r.score) for r in recs if (movie := catalog.get(r.movie_id)) is not None
        )
        return picks, used

    def _popular(self, count: int, genre: str | None, exclude: set[int]) -> tuple[Pick, ...]:
        catalog = self._catalog()
        picks: list[Pick] = []
        for rank, movie_id in enumerate(self._popular_order.tolist()):
            if movie_id in exclude:
                continue
            movie = catalog.get(movie_id)
            if movie is None or (genre is not None and genre not in movie.genres):
                continue
            picks.append(Pick(movie, float(-rank)))
            if len(picks) == count:
                break
        return tuple(picks)

    # ------------------------------------------------------------------ retraining

    @property
    def retrain_running_for(self) -> float | None:
        """Return how many seconds the current refit has run, or None if none is running."""
        return None if self._refit_started is None else time.monotonic() - self._refit_started

    async def retrain(self, trigger: str, requested_by: int | None = None) -> RetrainResult:
        """Refit on MovieLens plus every chat rating in a worker, save it, and swap it in.

        Only one refit runs at a time: a second call raises :class:`RetrainRunningError`. A failed
        refit keeps the current model, is recorded with its error, and raises a friendly error.
        """
        if self._refit_started is not None:
            raise RetrainRunningError(time.monotonic() - self._refit_started)
        self._refit_started = time.monotonic()
        try:
            return await self._retrain(trigger, requested_by)
        finally:
            self._refit_started = None

    async def _retrain(self, trigger: str, requested_by: int | None) -> RetrainResult:
        started = time.monotonic()
        event_id = await rating_store.latest_event_id(self.db)
        run_id = await run_store.start(self.db, trigger, requested_by, event_id)
        try:
            rows = await rating_store.all_ratings(self.db)
            chat = ratings_frame(rows)
            if self._executor is None:
                self._executor = _process_pool()
            loop = asyncio.get_running_loop()
            metadata = await loop.run_in_executor(
                self._executor,
                fit_and_save,
                self.config.movielens_source,
                str(self.config.data_dir),
                chat,
                dict(self.config.model_params),
                str(self.config.model_path),
            )
            bundle = await asyncio.to_thread(load_bundle, self.config.model_path)
        except asyncio.CancelledError:
            await run_store.fail(self.db, run_id, "cancelled", time.monotonic() - started)
            raise
        except Exception as exc:
            seconds = time.monotonic() - started
            log.exception("Model refit (%s) failed after %.1fs", trigger, seconds)
            await run_store.fail(self.db, run_id, f"{type(exc).__name__}: {exc}", seconds)
            raise UserFacingError(
                "The retrain failed, so I'm still using the previous model. "
                "The error is in the bot's log; it will be retried on the next cycle."
            ) from exc
        self.bundle = bundle
        seconds = time.monotonic() - started
        await run_store.succeed(
            self.db,
            run_id,
            n_ratings=metadata.n_ratings,
            n_chat_ratings=metadata.n_chat_ratings,
            n_chat_users=metadata.n_chat_users,
            seconds=seconds,
        )
        await rating_store.prune_events(self.db, event_id)
        log.info("Refit (%s) finished in %.1fs and is live", trigger, seconds)
        return RetrainResult(
            seconds,
            metadata.n_ratings,
            metadata.n_chat_ratings,
            metadata.n_chat_users,
            metadata.n_movies,
            dict(metadata.quality),
        )

    async def pending_changes(self) -> int:
        """Return how many ratings changed since the last successful fit."""
        last = await run_store.last_success(self.db)
        return await rating_store.events_since(self.db, last.last_event_id if last else 0)

    async def scheduled_refit(self) -> RetrainResult | None:
        """Refit if enough ratings changed since the last successful fit (or no model is live)."""
        if self._refit_started is not None:
            return None
        if self.bundle is not None:
            pending = await self.pending_changes()
            if pending < max(self.config.refit_min_new_ratings, 1):
                log.debug("Scheduled refit skipped: %d rating change(s)", pending)
                return None
        try:
            return await self.retrain("schedule")
        except RetrainRunningError:
            return None


def _popular_order(ratings: pd.DataFrame) -> np.ndarray:
    """Return movie ids by damped mean rating, best first (the no-model fallback)."""
    popularity = PopularityRecommender("damped_mean", damping=POPULAR_DAMPING).fit(ratings)
    order = np.argsort(-popularity.scores_, kind="stable")
    return popularity.item_ids_[order]


def ratings_frame(rows: Sequence[tuple[int, int, float]]) -> pd.DataFrame:
    """Return chat ratings rows as the frame the recommender fits on."""
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
