"""From zero to good picks: importing Letterboxd and IMDb ratings, /quickrate, the welcome.

An import is parsed and matched off the event loop (:mod:`bot.imports`), then written in one
transaction: all of it or nothing, with the member's previous ratings kept for ``undo``. When
the file disagrees with ratings the member made here, the caller asks first: keep theirs, or
take the file's. /quickrate asks one film at a time, the one whose answer teaches the model most
(:func:`recommender.questions.next_question`); "haven't seen it" answers are remembered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.db import dismissals as dismissal_store
from bot.db import onboarding as onboarding_store
from bot.db import ratings as rating_store
from bot.db.onboarding import ImportCounts
from bot.errors import UserFacingError
from bot.imports import MAX_BYTES, ParsedImport, parse_export, unmatched_csv
from recommender.catalog import Catalog, Movie
from recommender.questions import next_question

if TYPE_CHECKING:
    from bot.db import Database
    from bot.model_host import ModelHost

QUICKRATE_ANSWERS = 15
WELCOME = (
    "New here? /quickrate asks you about a few films (a minute), and /import brings in your "
    "Letterboxd or IMDb ratings, for picks that fit you from the start."
)


@dataclass(frozen=True)
class ImportResult:
    """What an import did, and what it could not use."""

    format: str
    counts: ImportCounts
    unmatched: int
    unmatched_csv: str | None  # line,title,year,reason for the rows not matched, if any
    skipped: dict[str, int]

    @property
    def skipped_total(self) -> int:
        """Return how many rows were skipped (no rating, TV episodes, bad values)."""
        return sum(self.skipped.values())


@dataclass(frozen=True)
class ImportDecision:
    """An import that disagrees with ratings made here: ``apply(replace)`` finishes it."""

    format: str
    rows: int
    conflicts: int  # films the file rates differently from the member's ratings here
    apply: Callable[[bool], Awaitable[ImportResult]]


class Onboarding:
    """Imports, quick rating and the welcome, over the bot's database and the live model."""

    def __init__(self, db: Database, host: ModelHost, import_cooldown_seconds: int) -> None:
        self.db = db
        self.host = host
        self.import_cooldown_seconds = import_cooldown_seconds

    @property
    def catalog(self) -> Catalog:
        """Return the loaded catalog."""
        return self.host.loaded_catalog()

    # ------------------------------------------------------------------ imports

    async def check_import_allowed(self, user_id: int, size: int) -> None:
        """Refuse a file over the size limit, or a second import within the cooldown."""
        if size > MAX_BYTES:
            raise UserFacingError(
                f"That file is {max(size, MAX_BYTES + 1) / 1e6:.2f} MB; imports take up to "
                f"{MAX_BYTES / 1e6:.0f} MB. Upload the ratings export itself (ratings.csv, or "
                "Letterboxd's zip)."
            )
        last = await onboarding_store.last_import(self.db, user_id)
        if last is not None:
            wait = last.imported_at + self.import_cooldown_seconds - int(time.time())
            if wait > 0:
                raise UserFacingError(
                    f"One import per member per {self.import_cooldown_seconds // 60} minutes: "
                    f"try again in {max(1, round(wait / 60))} min."
                )

    async def import_file(
        self,
        user_id: int,
        data: bytes,
        filename: str,
        *,
        replace: bool | None = None,
        guild_id: int | None = None,
        size: int | None = None,
    ) -> ImportResult | ImportDecision:
        """Import an export file; when it disagrees with ratings made here and ``replace`` is
        None, return the decision to ask the member about instead of writing anything.

        ``size`` is the file's real size when ``data`` was read only up to the limit.
        """
        await self.check_import_allowed(user_id, len(data) if size is None else size)
        parsed = await asyncio.to_thread(parse_export, data, filename, self.catalog)
        if not parsed.ratings:
            raise UserFacingError(
                "I couldn't match any rating in that file to a film I know, so nothing was "
                f"imported ({len(parsed.unmatched)} unmatched, "
                f"{sum(parsed.skipped.values())} skipped)."
            )
        mine = await rating_store.for_user(self.db, user_id)
        conflicts = sum(
            1 for r in parsed.ratings if r.movie_id in mine and mine[r.movie_id] != r.rating
        )

        applied = False

        async def apply(take_file: bool) -> ImportResult:
            nonlocal applied
            if applied:  # a second click, or both buttons: the import happens once
                raise UserFacingError("That import was already applied.")
            applied = True
            await self.check_import_allowed(user_id, len(data))
            return await self._apply(user_id, parsed, take_file, guild_id)

        if conflicts and replace is None:
            return ImportDecision(parsed.format, len(parsed.ratings), conflicts, apply)
        return await apply(bool(replace))

    async def _apply(
        self, user_id: int, parsed: ParsedImport, replace: bool, guild_id: int | None
    ) -> ImportResult:
        counts = await onboarding_store.import_ratings(
            self.db,
            user_id,
            [(r.movie_id, r.rating) for r in parsed.ratings],
            replace=replace,
            source=parsed.format,
            guild_id=guild_id,
        )
        csv_text = unmatched_csv(parsed) if parsed.unmatched else None
        return ImportResult(
            parsed.format, counts, len(parsed.unmatched), csv_text, dict(parsed.skipped)
        )

    async def undo_import(self, user_id: int) -> tuple[int, int]:
        """Take back what the member's last import wrote; return (taken back, left as re-rated)."""
        outcome = await onboarding_store.undo_import(self.db, user_id)
        if outcome is None:
            raise UserFacingError("There is no import to undo.")
        return outcome

    # ------------------------------------------------------------------ /quickrate

    async def next_question(self, user_id: int) -> Movie | None:
        """Return the film to ask the member about next, or None when none is left."""
        ratings = await rating_store.for_user(self.db, user_id)
        asked = await onboarding_store.skipped(self.db, user_id)
        asked |= await dismissal_store.ids_for_users(self.db, [user_id])
        asked |= set(ratings)
        bundle = await self.host.current()
        if bundle is None:  # no model yet: the most rated films, in order
            return next((m for m in self.catalog.popular(1000) if m.movie_id not in asked), None)
        movie_id = await asyncio.to_thread(next_question, bundle.model, ratings, asked)
        return None if movie_id is None else self.catalog.get(movie_id)

    async def haven_t_seen(self, user_id: int, movie_id: int) -> None:
        """Remember that the member hasn't seen a film."""
        await onboarding_store.skip(self.db, user_id, movie_id)

    # ------------------------------------------------------------------ the welcome

    async def welcome(self, user_id: int) -> str | None:
        """Return the one-time welcome line for a member's first private reply, else None.

        Members who already have ratings count as welcomed.
        """
        if not await onboarding_store.welcome_once(self.db, user_id):
            return None
        if await rating_store.count_for_user(self.db, user_id):
            return None
        return WELCOME
