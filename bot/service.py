"""What the bot does, without Discord: rate, recommend, retrain and the rest.

The Discord cogs and the local console both call this; neither writes SQL nor touches the model
directly. Everything slow (loading data, fitting, scoring) runs off the event loop. The model's
life cycle (loading, fitting, the refit worker, run history) is :class:`~bot.model_host.ModelHost`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from bot import db as database
from bot.batching import Batcher
from bot.db import dismissals as dismissal_store
from bot.db import ratings as rating_store
from bot.db import state as state_store
from bot.db.writer import RatingWriter
from bot.errors import AmbiguousTitleError, ModelUnavailableError, UserFacingError
from bot.lookup import find_genre, find_movie, movie_by_id
from bot.model_host import ModelHost, ServiceConfig
from bot.nights import MovieNights
from bot.onboarding import Onboarding
from bot.refit_worker import RefitWorker
from bot.results import (
    Choice,
    DismissedMovie,
    Pick,
    RatedMovie,
    RateResult,
    RatingsPage,
    Recommendations,
    RetrainResult,
    ServerStatsView,
    SimilarMovies,
    UnrateResult,
)
from bot.stars import parse_rating
from recommender import Catalog, ModelBundle, Movie, Picks, single_threaded_blas
from recommender.base import DISCOVER, Recommender, RecommendRequest
from recommender.catalog import MAX_QUERY_CHARS

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RECOMMENDATIONS = 25
RATINGS_PAGE_SIZE = 10
REASON_SHARE = 0.25  # a second "because you rated" title must explain at least this share
COMMAND_HASH_KEY = "global_commands_sha1"

__all__ = ["MovieService", "ServiceConfig"]


@dataclass(frozen=True)
class _Ask:
    """One member's /recommend, waiting for its batch."""

    user_id: int
    count: int
    genre: str | None
    discover: bool


class MovieService:
    """The bot's behaviour over a database and the live model.

    Open one with :meth:`open` (it connects the database, loads the data and the model) and
    close it with :meth:`close`, or use it as an async context manager.
    """

    def __init__(self, db: database.Database, host: ModelHost) -> None:
        self.db = db
        self.host = host
        self.writer = RatingWriter(db)  # group commit for members' ratings
        # Members asking for picks at once are answered together (one fold-in for all).
        self._asks: Batcher[_Ask, Recommendations] = Batcher(
            self._recommend_batch, max_batch=host.config.recommend_batch, name="recommend-batch"
        )
        self.nights = MovieNights(db, host, host.config.nights)
        self.onboarding = Onboarding(db, host, host.config.import_cooldown_seconds)

    @classmethod
    async def open(
        cls,
        config: ServiceConfig,
        *,
        executor: Executor | None = None,
        fit_in_background: bool = True,
    ) -> MovieService:
        """Connect and migrate the database, load the data set and model, and return a service.

        ``executor`` runs refits instead of a spawned worker process (tests use a thread).
        Raises :class:`~bot.db.StorageError` or :class:`recommender.DataError` with a message
        that says what to fix; nothing is left open then.
        """
        db = await database.connect(config.database, busy_timeout_ms=config.busy_timeout_ms)
        host = ModelHost(db, config, RefitWorker(executor))
        try:
            await host.start(fit_in_background=fit_in_background)
        except BaseException:
            await host.close()
            await db.close()
            raise
        return cls(db, host)

    async def close(self) -> None:
        """Write queued ratings, stop a running refit, give up the refit lease, close the db."""
        try:
            try:
                await self.writer.close()
                await self._asks.close()
            finally:  # also when cancelled meanwhile (a second Ctrl-C)
                await self.host.close()
        finally:
            await self.db.close()

    async def __aenter__(self) -> MovieService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ the model

    @property
    def config(self) -> ServiceConfig:
        """Return the files and settings the service runs with."""
        return self.host.config

    @property
    def bundle(self) -> ModelBundle | None:
        """Return the live model with its catalog, or None before the first fit."""
        return self.host.bundle

    @property
    def recommend_batches(self) -> int:
        """Return how many batches of /recommend answers were computed (members asking at once
        share one)."""
        return self._asks.batches

    async def fitting_elsewhere(self) -> int | None:
        """Return the process id of another process refitting right now (0 if unknown)."""
        return await self.host.fitting_elsewhere()

    async def wait_until_ready(self) -> None:
        """Wait for the start-up fit, if one is running."""
        await self.host.wait_until_ready()

    @property
    def retrain_running_for(self) -> float | None:
        """Return how many seconds the current refit has run, or None if none is running."""
        return self.host.retrain_running_for

    def stop_refit(self) -> None:
        """Stop a running refit now (shutting down); its run is recorded as interrupted."""
        self.host.worker.stop()

    async def retrain(self, trigger: str, requested_by: int | None = None) -> RetrainResult:
        """Refit now on MovieLens plus every chat rating; see :meth:`ModelHost.retrain`."""
        return await self.host.retrain(trigger, requested_by)

    async def scheduled_refit(self) -> RetrainResult | None:
        """Refit if enough ratings changed since the last fit; None when nothing ran."""
        return await self.host.scheduled_refit()

    async def pending_changes(self) -> int:
        """Return how many ratings changed since the last successful fit."""
        return await self.host.pending_changes()

    # ------------------------------------------------------------------ bot state

    async def commands_synced(self, digest: str) -> bool:
        """Return True when the slash commands with this hash were published already."""
        return await state_store.get(self.db, COMMAND_HASH_KEY) == digest

    async def remember_commands_synced(self, digest: str) -> None:
        """Record that the slash commands with this hash were published."""
        await state_store.put(self.db, COMMAND_HASH_KEY, digest)

    # ------------------------------------------------------------------ catalog

    @property
    def catalog(self) -> Catalog:
        """Return the catalog of the loaded data set."""
        return self.host.loaded_catalog()

    def complete(self, text: str, limit: int = 25) -> list[Movie]:
        """Return autocomplete suggestions for a typed title."""
        return self.catalog.complete(text[:MAX_QUERY_CHARS], limit)

    def find(self, query: str) -> Movie:
        """Return the one movie ``query`` names (see :func:`find_movie`)."""
        return find_movie(self.catalog, query)

    def movie(self, movie_id: int) -> Movie:
        """Return a catalog movie by id, or raise a friendly error."""
        return movie_by_id(self.catalog, movie_id)

    def find_id(self, movie_id: int) -> Movie | None:
        """Return a catalog movie by id, or None."""
        return self.catalog.get(movie_id)

    def genres(self) -> list[str]:
        """Return the genre names members can filter by."""
        return self.catalog.genres

    async def on_title(self, title: str, run: Callable[[Movie], Awaitable[T]]) -> T | Choice[T]:
        """Run ``run`` on the movie ``title`` names, or return the choice the member must make."""
        try:
            movie = self.find(title)
        except AmbiguousTitleError as exc:
            return Choice(str(exc), exc.candidates, run)
        return await run(movie)

    # ------------------------------------------------------------------ ratings

    async def rate(
        self, user_id: int, movie_id: int, rating: str | float, guild_id: int | None = None
    ) -> RateResult:
        """Save a member's rating of a movie; return it with the previous rating, if any."""
        value = parse_rating(rating)
        movie = self.movie(movie_id)
        previous = await self.writer.upsert(user_id, movie.movie_id, value, guild_id)
        return RateResult(movie, value, previous)

    async def rate_title(
        self, user_id: int, title: str, rating: str | float, guild_id: int | None = None
    ) -> RateResult | Choice[RateResult]:
        """Rate the movie a typed title names, or return the menu of candidates to pick from.

        The rating is checked before the title, so a bad rating never leads to a menu.
        """
        value = parse_rating(rating)

        async def save(movie: Movie) -> RateResult:
            return await self.rate(user_id, movie.movie_id, value, guild_id)

        return await self.on_title(title, save)

    async def unrate(self, user_id: int, movie_id: int) -> UnrateResult:
        """Remove a member's rating; return the movie and the removed rating."""
        movie = self.movie(movie_id)
        removed = await rating_store.delete(self.db, user_id, movie_id)
        if removed is None:
            raise UserFacingError(f"You haven't rated {movie.label}.")
        return UnrateResult(movie, removed)

    async def unrate_title(self, user_id: int, title: str) -> UnrateResult | Choice[UnrateResult]:
        """Remove the rating of the movie a typed title names, or return the menu to pick from."""

        async def remove(movie: Movie) -> UnrateResult:
            return await self.unrate(user_id, movie.movie_id)

        return await self.on_title(title, remove)

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
        items = []
        for row in rows:
            movie = self.catalog.get(row.movie_id) or _unknown(row.movie_id)
            items.append(RatedMovie(movie, row.rating, row.updated_at))
        return RatingsPage(tuple(items), page, pages, total)

    async def forget(self, user_id: int) -> int:
        """Delete all of a member's ratings; the live model forgets them at once (fold-in)."""
        return await rating_store.delete_user(self.db, user_id)

    async def export(self, user_id: int) -> str:
        """Return a member's ratings as CSV: movieId, title, rating, timestamp."""
        ratings = await rating_store.page_for_user(self.db, user_id, 0, 1_000_000)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["movieId", "title", "rating", "timestamp"])
        for row in sorted(ratings, key=lambda r: r.updated_at):
            movie = self.catalog.get(row.movie_id)
            writer.writerow(
                [row.movie_id, movie.label if movie else "", f"{row.rating:g}", row.updated_at]
            )
        return out.getvalue()

    async def stats(self, guild_id: int | None) -> ServerStatsView:
        """Return a server's rating numbers with movie titles and a chart (PNG).

        A film is listed only once ``stats_min_members`` members rated it, so the channel never
        learns one member's rating.
        """
        minimum = max(self.config.stats_min_members, 1)
        raw = await rating_store.server_stats(self.db, guild_id, min_count=minimum)
        catalog = self.catalog

        def named(rows: list[tuple[int, int, float]]) -> tuple[tuple[Movie, int, float], ...]:
            return tuple(
                (movie, n, mean) for m, n, mean in rows if (movie := catalog.get(m)) is not None
            )

        chart = None
        if raw.members >= minimum:
            from recommender.report import stats_chart

            chart = await asyncio.to_thread(stats_chart, raw.by_stars, "Ratings here, by stars")
        return ServerStatsView(
            raw.members, raw.ratings, named(raw.most_rated), named(raw.best_rated), chart, minimum
        )

    # ------------------------------------------------------------------ recommendations

    async def recommend(
        self, user_id: int, count: int = 10, genre: str | None = None, *, discover: bool = False
    ) -> Recommendations:
        """Recommend movies from the member's current ratings (folded into the live model).

        Films the member dismissed are left out; each pick names the rated films behind it.
        With ``discover``, popular films are pushed down for less obvious picks.
        """
        if not 1 <= count <= MAX_RECOMMENDATIONS:
            raise UserFacingError(f"I can recommend 1 to {MAX_RECOMMENDATIONS} movies at a time.")
        genre_name = find_genre(self.catalog, genre)
        return await self._asks.submit(_Ask(user_id, count, genre_name, discover))

    async def _recommend_batch(self, asks: list[_Ask]) -> list[Recommendations | BaseException]:
        """Answer every member waiting for picks: two reads and one fold-in for all of them."""
        members = [ask.user_id for ask in asks]
        ratings = await rating_store.for_users(self.db, members)
        hidden = await dismissal_store.ids_by_user(self.db, members)
        bundle = await self.host.current()
        if bundle is None:
            fitting = await self.host.fit_running()
            return [
                self._popular_picks(ask, ratings[ask.user_id], hidden[ask.user_id], fitting)
                for ask in asks
            ]
        answers = await asyncio.to_thread(self._recommend_many, bundle, asks, ratings, hidden)
        return [
            answer
            if isinstance(answer, Exception)
            else Recommendations(
                answer[0], answer[1], answer[1] > 0, False, ask.genre, discover=ask.discover
            )
            for ask, answer in zip(asks, answers, strict=True)
        ]

    def _popular_picks(
        self, ask: _Ask, ratings: dict[int, float], hidden: set[int], fitting: bool
    ) -> Recommendations:
        popular = self.host.popular
        assert popular is not None
        allowed = self._allowed(popular.item_ids_, ask.genre)
        picks = popular.recommend({}, ask.count, exclude=[*ratings, *hidden], allowed=allowed)
        return Recommendations(
            self._picks(picks),
            len(ratings),
            personalized=False,
            warming_up=fitting,
            genre=ask.genre,
            model_missing=not fitting,
        )

    def _allowed(self, item_ids: np.ndarray, genre: str | None) -> np.ndarray | None:
        return self.catalog.allowed(item_ids, genres=[genre]) if genre else None

    def _recommend_many(
        self,
        bundle: ModelBundle,
        asks: list[_Ask],
        ratings: dict[int, dict[int, float]],
        hidden: dict[int, set[int]],
    ) -> list[tuple[tuple[Pick, ...], int] | Exception]:
        """Score every ask together; whatever goes wrong for one member fails only theirs."""
        model = bundle.model
        out: list[tuple[tuple[Pick, ...], int] | Exception | None] = [None] * len(asks)
        prepared: list[tuple[int, RecommendRequest]] = []
        for i, ask in enumerate(asks):
            try:
                prepared.append(
                    (
                        i,
                        RecommendRequest(
                            ratings[ask.user_id],
                            ask.count,
                            exclude=hidden[ask.user_id],
                            allowed=self._allowed(model.item_ids_, ask.genre),
                            discover=DISCOVER if ask.discover else 0.0,
                        ),
                    )
                )
            except Exception as exc:
                log.exception("Could not prepare the picks of member %s", ask.user_id)
                out[i] = exc
        with single_threaded_blas():
            together: list[Picks] | None
            try:
                together = model.recommend_many([request for _, request in prepared])
            except Exception:
                log.exception("Scoring %d members together failed; scoring each alone", len(asks))
                together = None
            for n, (i, request) in enumerate(prepared):
                try:
                    picks = together[n] if together else model.recommend_many([request])[0]
                    out[i] = self._with_reasons(model, request.ratings, picks)
                except Exception as exc:
                    log.exception("Could not recommend for member %s", asks[i].user_id)
                    out[i] = exc
        return [answer for answer in out if answer is not None]

    def _with_reasons(
        self, model: Recommender, ratings: Mapping[int, float], picks: Picks
    ) -> tuple[tuple[Pick, ...], int]:
        """Return the picks as movies, each with the member's rated films behind it."""
        if picks.n_used == 0:
            return self._picks(picks), 0
        found = []
        for rec in picks:
            movie = self.catalog.get(rec.movie_id)
            if movie is None:
                continue
            reasons = model.explain(ratings, rec.movie_id, top=2).because
            because = tuple(
                rated
                for i, (movie_id, share) in enumerate(reasons)
                if (i == 0 or share >= REASON_SHARE)
                and (rated := self.catalog.get(movie_id)) is not None
            )
            found.append(Pick(movie, rec.score, because))
        return tuple(found), picks.n_used

    async def similar(self, title: str, count: int = 10) -> SimilarMovies | Choice[SimilarMovies]:
        """Return the movies closest to the one a typed title names (or the menu to pick it)."""
        if not 1 <= count <= MAX_RECOMMENDATIONS:
            raise UserFacingError(f"I can list 1 to {MAX_RECOMMENDATIONS} movies at a time.")

        async def close_to(movie: Movie) -> SimilarMovies:
            bundle = await self.host.current()
            if bundle is None:
                if await self.host.fit_running():
                    raise ModelUnavailableError(
                        "The recommendation model is warming up; try /similar again in a minute."
                    )
                raise ModelUnavailableError(
                    "The recommendation model isn't available right now (its last fit did not "
                    "finish; an admin can check the bot's log and run /retrain)."
                )
            picks = await asyncio.to_thread(bundle.model.similar, movie.movie_id, count)
            return SimilarMovies(movie, self._picks(picks))

        return await self.on_title(title, close_to)

    # ------------------------------------------------------------------ dismissals

    async def dismiss(self, user_id: int, movie_id: int) -> Movie:
        """Mark a film "Not interested": future picks and movie nights leave it out."""
        movie = self.movie(movie_id)
        await dismissal_store.add(self.db, user_id, movie_id)
        return movie

    async def undismiss(self, user_id: int, movie_id: int) -> Movie:
        """Undo "Not interested" for a film."""
        movie = self.movie(movie_id)
        if not await dismissal_store.remove(self.db, user_id, movie_id):
            raise UserFacingError(f"{movie.label} isn't on your “Not interested” list.")
        return movie

    async def dismissed(self, user_id: int) -> tuple[DismissedMovie, ...]:
        """Return a member's "Not interested" films, newest first."""
        rows = await dismissal_store.for_user(self.db, user_id)
        return tuple(
            DismissedMovie(self.catalog.get(r.movie_id) or _unknown(r.movie_id), r.dismissed_at)
            for r in rows
        )

    async def export_dismissals(self, user_id: int) -> str:
        """Return a member's "Not interested" films as CSV: movieId, title, dismissed_at."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["movieId", "title", "dismissed_at"])
        for item in reversed(await self.dismissed(user_id)):
            writer.writerow([item.movie.movie_id, item.movie.label, item.dismissed_at])
        return out.getvalue()

    def _picks(self, picks: Picks) -> tuple[Pick, ...]:
        catalog = self.catalog
        return tuple(
            Pick(movie, r.score) for r in picks if (movie := catalog.get(r.movie_id)) is not None
        )


def _unknown(movie_id: int) -> Movie:
    """Return a stand-in for a movie the catalog no longer has."""
    return Movie(movie_id, f"Movie #{movie_id}", None)
