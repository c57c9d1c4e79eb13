"""The live model's life: loading at start, the first fit, refits in a worker, their history.

:class:`ModelHost` owns the data set, the catalog and the model the bot serves. It loads a saved
model that matches the data set, fits one in the background when none does, refits on demand
and on schedule in a worker process, records every fit in ``model_runs``, and swaps a finished
model in without stopping the bot. Only the process holding the database's refit lease
(:mod:`bot.lease`) fits or writes ``MODEL_PATH``; any other one serves the saved model and picks
up the new file when the owner replaces it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from bot.db import Database
from bot.db import ratings as rating_store
from bot.db import runs as run_store
from bot.errors import (
    ModelUnavailableError,
    RetrainRunningError,
    UserFacingError,
)
from bot.lease import RefitLease
from bot.night_config import NightConfig
from bot.refit_worker import RefitStopped, RefitWorker
from bot.results import RetrainResult
from recommender import (
    Catalog,
    Dataset,
    ModelBundle,
    ModelFileError,
    ModelNotFoundError,
    load_bundle,
    load_dataset,
)
from recommender.baselines import PopularityRecommender
from recommender.persistence import remove_stale_temp_files, staging_path

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 5.0
LEASE_CHECK_SECONDS = 5.0
LEASE_LOST = "interrupted: this process lost the refit lease (its database connection dropped)"
T = TypeVar("T")


class LeaseLostError(Exception):
    """The refit lease was lost while this process was refitting."""


CLOSE_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class ServiceConfig:
    """Where the bot keeps its files, and how it fits."""

    database_path: Path = Path("data/moviebot.db")
    database_url: str | None = None  # a PostgreSQL URL; overrides database_path
    movielens_source: str = "ml-latest-small"
    data_dir: Path = Path("data")
    model_path: Path = Path("models/model.joblib")
    refit_min_new_ratings: int = 1
    model_params: dict[str, Any] = field(default_factory=dict)
    tune: bool = False  # choose n_components and alpha on held-out members at each refit
    busy_timeout_ms: int = 5_000
    stats_min_members: int = 3
    nights: NightConfig = field(default_factory=NightConfig)
    import_cooldown_seconds: int = 3600
    recommend_batch: int = 256  # members answered together at most (1: one at a time)

    @property
    def database(self) -> str | Path:
        """Return where the database is: the PostgreSQL URL if set, else the SQLite file."""
        return self.database_url or self.database_path


class ModelHost:
    """The data set, catalog and live model, and everything that fits or replaces the model.

    Parameters
    ----------
    db : Database
        The open, migrated database (runs and chat ratings).
    config : ServiceConfig
    worker : RefitWorker, optional
        Where fits run; by default a spawned process per fit.
    lease : RefitLease, optional
        Who may refit right now; by default the store's own (``Database.refit_lease``).
    """

    def __init__(
        self,
        db: Database,
        config: ServiceConfig,
        worker: RefitWorker | None = None,
        lease: RefitLease | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.worker = worker or RefitWorker()
        self.lease = lease or db.refit_lease()
        self.dataset: Dataset | None = None
        self.catalog: Catalog | None = None
        self.bundle: ModelBundle | None = None
        self.popular: PopularityRecommender | None = None
        self._refit_started: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._startup: asyncio.Task[RetrainResult | None] | None = None
        self._model_mtime: float | None = None
        self._next_reload_check = 0.0
        self.lease_check_seconds = LEASE_CHECK_SECONDS

    # ------------------------------------------------------------------ start and stop

    async def start(self, *, fit_in_background: bool = True) -> None:
        """Load the data set and the saved model; fit one in the background if there is none.

        Raises :class:`recommender.DataError` when the data set is missing or broken.
        """
        if await self.lease.acquire():  # nobody refits: tidy what a killed refit left
            try:
                await self._clean_up_after_others()
            finally:
                await self.lease.release()
        self.dataset = await asyncio.to_thread(
            load_dataset,
            self.config.movielens_source,
            self.config.data_dir,
            progress=sys.stderr.isatty(),  # a download bar for a person at a terminal
        )
        self.catalog = await asyncio.to_thread(Catalog, self.dataset.movies, self.dataset.ratings)
        self.popular = await asyncio.to_thread(
            PopularityRecommender("damped_mean").fit, self.dataset.ratings
        )
        log.info(
            "Loaded %s: %d movies, %d ratings",
            self.dataset.name,
            len(self.catalog),
            len(self.dataset.ratings),
        )
        self.bundle = await asyncio.to_thread(self._load_matching_model)
        if self.config.model_path.is_dir():
            log.error(
                "MODEL_PATH %s is a folder, not a file: no model can be saved there. Set "
                "MODEL_PATH to a file path (e.g. models/model.joblib); until then members get "
                "popular picks.",
                self.config.model_path,
            )
            return
        if self.bundle is None and fit_in_background:
            self._startup = asyncio.create_task(self._startup_fit(), name="startup-fit")

    def _load_matching_model(self) -> ModelBundle | None:
        assert self.dataset is not None
        path = self.config.model_path
        try:
            self._model_mtime = path.stat().st_mtime
            bundle = load_bundle(path)
        except (ModelNotFoundError, FileNotFoundError):
            log.info("No saved model at %s", path)
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

    async def _startup_fit(self) -> RetrainResult | None:
        try:
            return await self.retrain("startup")
        except RetrainRunningError as exc:
            log.info(
                "Another moviebot process (%s) is fitting the model; this one serves popular "
                "picks until that model is saved, then loads it",
                f"pid {exc.holder}" if exc.holder else "pid unknown",
            )
            return None
        except UserFacingError as exc:
            log.warning("The start-up fit did not finish: %s", exc)
            return None

    async def wait_until_ready(self) -> None:
        """Wait for the start-up fit, if one is running."""
        if self._startup is not None:
            await asyncio.shield(self._startup)

    @property
    def fitting(self) -> bool:
        """Return True while a fit runs in this process."""
        return self._refit_started is not None

    async def fit_running(self) -> bool:
        """Return True while a fit runs here or in another process on the same database."""
        return self.fitting or await run_store.running(self.db)

    async def fitting_elsewhere(self) -> int | None:
        """Return the process id of another process refitting right now (0 if unknown)."""
        if self.fitting:
            return None
        holder = await self.lease.holder()
        if holder is None and not await run_store.running(self.db):
            return None
        return holder or 0

    async def close(self) -> None:
        """Stop a running fit (its run is recorded as interrupted) and give the lease up."""
        self.worker.stop()
        try:
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                await self._idle.wait()
        except TimeoutError:
            log.warning("A refit did not stop within %.0f s", CLOSE_WAIT_SECONDS)
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            await asyncio.gather(self._startup, return_exceptions=True)
        self.worker.close()
        await self.lease.release()

    # ------------------------------------------------------------------ the served model

    def loaded_catalog(self) -> Catalog:
        """Return the data set's catalog, or a friendly error while it is still loading."""
        if self.catalog is None:
            raise ModelUnavailableError("I'm still loading the movie list; try again in a moment.")
        return self.catalog

    async def current(self) -> ModelBundle | None:
        """Return the live model, after loading a newer one another process saved (if any)."""
        await self.refresh()
        return self.bundle

    async def refresh(self) -> None:
        """Load the model file again if another process replaced it (checked every few s)."""
        if self.fitting or self.dataset is None:
            return
        now = time.monotonic()
        if now < self._next_reload_check:
            return
        self._next_reload_check = now + RELOAD_CHECK_SECONDS
        try:
            mtime = self.config.model_path.stat().st_mtime
        except OSError:
            return
        if mtime != self._model_mtime:
            bundle = await asyncio.to_thread(self._load_matching_model)
            if bundle is not None:
                self.bundle = bundle
                log.info("Loaded the model the refitting process saved")

    # ------------------------------------------------------------------ refits

    @property
    def retrain_running_for(self) -> float | None:
        """Return how many seconds the current refit has run, or None if none is running."""
        return None if self._refit_started is None else time.monotonic() - self._refit_started

    async def retrain(self, trigger: str, requested_by: int | None = None) -> RetrainResult:
        """Refit on MovieLens plus every chat rating in the worker, save it, and swap it in.

        One refit runs at a time per database: while one runs here or in another process (which
        holds the refit lease), a call raises :class:`RetrainRunningError`. A failed refit keeps
        the current model, is recorded with its error, and raises a friendly error.
        """
        if self._refit_started is not None:
            raise RetrainRunningError(time.monotonic() - self._refit_started)
        self._refit_started = time.monotonic()
        self._idle.clear()
        try:
            if not await self.lease.acquire():
                raise RetrainRunningError(
                    await run_store.running_for(self.db), holder=await self.lease.holder() or 0
                )
            try:
                await self._clean_up_after_others()
                return await self._retrain(trigger, requested_by)
            finally:
                await self.lease.release()
        finally:
            self._refit_started = None
            self._idle.set()

    async def _clean_up_after_others(self) -> None:
        """With the lease held, nobody else fits: tidy what a killed refit left behind."""
        abandoned = await run_store.abandon_running(self.db)
        if abandoned:
            log.warning("Marked %d interrupted model fit(s) as failed", abandoned)
        if await asyncio.to_thread(remove_stale_temp_files, self.config.model_path):
            log.warning("Removed an unfinished model file left by an interrupted save")

    async def _retrain(self, trigger: str, requested_by: int | None) -> RetrainResult:
        started = time.monotonic()
        event_id = await rating_store.latest_event_id(self.db)
        run_id = await run_store.start(self.db, trigger, requested_by, event_id)
        staged = staging_path(self.config.model_path, f"run{run_id}")
        try:
            chat = ratings_frame(await rating_store.all_ratings(self.db))
            metadata = await self._while_leased(
                self.worker.run(
                    self.config.movielens_source,
                    str(self.config.data_dir),
                    chat,
                    dict(self.config.model_params),
                    str(staged),
                    tune=self.config.tune,
                    previous_path=str(self.config.model_path),
                )
            )
            bundle = await asyncio.to_thread(load_bundle, staged)
            if not await self.lease.renew():
                raise LeaseLostError
            run = await run_store.get(self.db, run_id)
            if run is None or run.status != "running":
                raise RefitStopped("the run was closed while the fit ran")
            self._model_mtime = await asyncio.to_thread(
                _put_in_place, staged, self.config.model_path
            )
        except LeaseLostError as exc:
            await asyncio.to_thread(staged.unlink, missing_ok=True)
            log.warning("Stopped a refit: this process lost the refit lease")
            await run_store.fail(self.db, run_id, LEASE_LOST, time.monotonic() - started)
            raise UserFacingError(
                "The retrain was stopped before it finished: this bot process lost its hold on "
                "the refit (its connection to the database dropped), so another process may "
                "refit now. Nothing changed; try /retrain again in a moment."
            ) from exc
        except (asyncio.CancelledError, RefitStopped) as exc:
            await asyncio.to_thread(staged.unlink, missing_ok=True)
            await run_store.fail(self.db, run_id, run_store.INTERRUPTED, time.monotonic() - started)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise UserFacingError(
                "The retrain was stopped before it finished (the bot is shutting down). "
                "Nothing changed; the next start or cycle fits again."
            ) from exc
        except Exception as exc:
            await asyncio.to_thread(staged.unlink, missing_ok=True)
            seconds = time.monotonic() - started
            log.exception("Model refit (%s) failed after %.1fs", trigger, seconds)
            await run_store.fail(self.db, run_id, f"{type(exc).__name__}: {exc}", seconds)
            kept = (
                "so I'm still using the previous model"
                if self.bundle is not None
                else "and there is no model yet, so members get popular picks"
            )
            raise UserFacingError(
                f"The retrain failed, {kept}. "
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
            params=dict(metadata.params),
            tuning=dict(metadata.tuning),
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
            dict(metadata.params),
            dict(metadata.tuning),
        )

    async def _while_leased(self, work: Awaitable[T]) -> T:
        """Await ``work`` while confirming the refit lease every ``lease_check_seconds``.

        A lease lost meanwhile (on PostgreSQL: the lock's session dropped, so another process
        may take it) stops the work and raises :class:`LeaseLostError`: two refits never run
        at once.
        """
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.lease_check_seconds)
                if done:
                    return task.result()
                if not await self.lease.renew():
                    raise LeaseLostError
        finally:
            if not task.done():
                task.cancel()  # the worker process is terminated and reaped
                await asyncio.gather(task, return_exceptions=True)

    async def pending_changes(self) -> int:
        """Return how many ratings changed since the last successful fit."""
        last = await run_store.last_success(self.db)
        return await rating_store.events_since(self.db, last.last_event_id if last else 0)

    async def scheduled_refit(self) -> RetrainResult | None:
        """Refit if enough ratings changed since the last successful fit (or no model is live).

        Every process on a database runs this; the first takes the lease and refits, the
        others find the refit running (or, after it, nothing new) and load its model.
        """
        await self.refresh()
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


def _put_in_place(staged: Path, path: Path) -> float:
    """Replace the live model file with a staged one, durably; return its modification time."""
    os.replace(staged, path)
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path.stat().st_mtime


def ratings_frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    """Return chat ratings rows as the frame the recommender fits on."""
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
