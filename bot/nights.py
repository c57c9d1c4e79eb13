"""Movie night, without Discord: a group's picks, the vote, the watched list, fairness.

A night starts from the members in a voice channel (voting opens at once) or from a lobby that
members join with a button; either way the picks exclude every film a member rated or hid and
every film on the server's watched list. Members vote (one vote each, changeable); the starter
or an admin closes the vote, or it closes by itself. The winner goes on the watched list, and
how well it suited each member is recorded, so the next night leans toward whoever was served
worst lately (see :mod:`recommender.group` and ``docs/movienight.md``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.db import StorageError
from bot.db import dismissals as dismissal_store
from bot.db import nights as night_store
from bot.db import ratings as rating_store
from bot.db.nights import Night, NightPick
from bot.errors import UserFacingError
from bot.lookup import find_genre, movie_by_id
from bot.night_config import NightConfig
from recommender import group
from recommender.base import Recommender
from recommender.catalog import Catalog, Movie

if TYPE_CHECKING:
    from bot.db import Database
    from bot.model_host import ModelHost

log = logging.getLogger(__name__)

MAX_GROUP = 25
MAX_PICKS = 5
WATCHED_PAGE_SIZE = 10


@dataclass(frozen=True)
class NightChoice:
    """One film offered at a night, as shown."""

    position: int
    movie: Movie
    votes: int
    best_rank: int
    worst_rank: int


@dataclass(frozen=True)
class NightView:
    """Everything a night's message shows."""

    night: Night
    members: tuple[int, ...]
    newcomers: tuple[int, ...]  # members without ratings: they count as "anyone"
    choices: tuple[NightChoice, ...]
    candidates: int
    winner: Movie | None
    left_out: tuple[int, ...] = ()  # beyond the group size limit (named only when it starts)

    @property
    def open(self) -> bool:
        """Return True while the lobby or the vote is open."""
        return self.night.state in night_store.OPEN


@dataclass(frozen=True)
class WatchedEntry:
    """A film on the watched list, with who was there."""

    movie: Movie
    watched_at: int
    members: tuple[int, ...]
    by_hand: bool


@dataclass(frozen=True)
class WatchedPage:
    """One page of a server's watched list."""

    items: tuple[WatchedEntry, ...]
    page: int
    pages: int
    total: int


class MovieNights:
    """Movie nights over the bot's database and the host's catalog and live model."""

    def __init__(self, db: Database, host: ModelHost, config: NightConfig | None = None) -> None:
        self.db = db
        self.host = host
        self.config = config or NightConfig()

    @property
    def catalog(self) -> Catalog:
        """Return the loaded catalog."""
        return self.host.loaded_catalog()

    # ------------------------------------------------------------------ starting

    async def start(
        self,
        *,
        guild_id: int,
        channel_id: int,
        invoker: int,
        voice_members: list[int] | None,
        count: int = MAX_PICKS,
        genre: str | None = None,
        source: str | None = None,
    ) -> NightView:
        """Start a night: from voice-channel members (voting at once), or as a lobby (None).

        Raises a friendly error for a night already open in the channel, a voice channel with
        only the invoker, or a bad count or genre; nothing is written then.
        """
        if not 1 <= count <= MAX_PICKS:
            raise UserFacingError(f"A movie night offers 1 to {MAX_PICKS} films to vote on.")
        genre_name = find_genre(self.catalog, genre)
        db = self.db
        if await night_store.open_in_channel(db, channel_id) is not None:
            raise UserFacingError(
                "A movie night is already open in this channel. Vote there, or close it first."
            )
        now = int(time.time())
        left_out: list[int] = []
        if voice_members is None:  # a lobby: members join, then the vote opens
            members, state, closes_at = [invoker], "lobby", now + self.config.lobby_seconds
            picks: list[NightPick] = []
            candidates = 0
        else:
            present = list(dict.fromkeys([invoker, *voice_members]))
            if len(present) < 2:
                raise UserFacingError(
                    "You're the only one in your voice channel. /recommend picks for one; "
                    "a movie night needs two or more (or start one outside voice for a lobby)."
                )
            members, left_out = await self._limit(present)
            picks, candidates = await self._picks(guild_id, members, count, genre_name)
            state, closes_at = "voting", now + self.config.vote_seconds
        night = await night_store.create(
            db,
            guild_id=guild_id,
            channel_id=channel_id,
            started_by=invoker,
            source=source or ("lobby" if voice_members is None else "voice"),
            state=state,
            closes_at=closes_at,
            count=count,
            genre=genre_name,
            members=members,
            left_out=len(left_out),
            candidates=candidates,
            picks=picks,
        )
        if night is None:  # another night opened in the channel meanwhile
            raise UserFacingError("A movie night is already open in this channel.")
        return await self.view(night.id, left_out=tuple(left_out))

    async def _limit(self, members: list[int]) -> tuple[list[int], list[int]]:
        """Keep the ``MAX_GROUP`` members with the most ratings; return (kept, left out)."""
        if len(members) <= MAX_GROUP:
            return members, []
        counts = await rating_store.counts_for_users(self.db, members)
        ranked = sorted(members, key=lambda m: (-counts[m], members.index(m)))
        kept = set(ranked[:MAX_GROUP])
        return [m for m in members if m in kept], [m for m in members if m not in kept]

    async def _exclude(self, guild_id: int, members: list[int]) -> set[int]:
        """Return the films a night of these members must not offer: hidden or watched."""
        db = self.db
        exclude = await dismissal_store.ids_for_users(db, members)
        return exclude | {w.movie_id for w in await night_store.watched(db, guild_id)}

    def _allowed(self, model: Recommender, genre: str | None) -> np.ndarray | None:
        return self.catalog.allowed(model.item_ids_, genres=[genre]) if genre else None

    async def _picks(
        self, guild_id: int, members: list[int], count: int, genre: str | None
    ) -> tuple[list[NightPick], int]:
        db = self.db
        by_member = await rating_store.for_users(db, members)
        ratings = [by_member[m] for m in members]
        history = await night_store.satisfaction_history(
            db, guild_id, members, self.config.fairness_nights
        )
        model = await self._model()
        found = await asyncio.to_thread(
            group.recommend_for_group,
            model,
            ratings,
            count,
            weights=group.fairness_weights(history, n_members=len(members)),
            exclude=await self._exclude(guild_id, members),
            allowed=self._allowed(model, genre),
        )
        picks = [
            NightPick(i, p.movie_id, p.score, p.best_rank, p.worst_rank)
            for i, p in enumerate(found.picks, 1)
        ]
        if not picks:
            raise UserFacingError(
                "I found no film that nobody here has rated, hidden or watched"
                + (f" in {genre}" if genre else "")
                + ". Try another genre."
            )
        return picks, found.candidates

    async def _model(self) -> Recommender:
        bundle = await self.host.current()
        if bundle is not None:
            return bundle.model
        popular = self.host.popular
        assert popular is not None
        return popular

    # ------------------------------------------------------------------ the lobby

    async def join(self, night_id: int, user_id: int) -> NightView:
        """Add a member to a night's lobby."""
        night = await self._night(night_id)
        if night.state != "lobby":
            raise UserFacingError("This lobby has closed; the vote is for the members who joined.")
        if not await night_store.join(self.db, night_id, user_id):
            members = await night_store.members(self.db, night_id)
            if user_id in members:
                raise UserFacingError("You're already in. The vote starts when the lobby closes.")
            raise UserFacingError("This lobby has closed.")
        return await self.view(night_id)

    async def begin_vote(self, night_id: int, by: int | None, admin: bool = False) -> NightView:
        """Close a lobby and open the vote (the starter or an admin; ``by`` None: the timer)."""
        night = await self._night(night_id)
        if by is not None:
            self._check_may_close(night, by, admin)
        if night.state != "lobby":
            return await self.view(night_id)
        members = await night_store.members(self.db, night_id)
        if len(members) < 2:
            if by is not None:
                raise UserFacingError(
                    "Nobody has joined yet: a movie night needs two or more. "
                    "/recommend picks for one."
                )
            # The lobby's time ran out with nobody else in (or its members left).
            await night_store.close(self.db, night, None, {}, cancelled=True)
            return await self.view(night_id)
        kept, left_out = await self._limit(members)
        picks, candidates = await self._picks(night.guild_id, kept, night.count, night.genre)
        closes_at = int(time.time()) + self.config.vote_seconds
        await night_store.start_voting(
            self.db, night_id, picks, closes_at, left_out=len(left_out), candidates=candidates
        )
        return await self.view(night_id, left_out=tuple(left_out))

    # ------------------------------------------------------------------ the vote

    async def vote(
        self, night_id: int, user_id: int, position: int
    ) -> tuple[NightView, int | None]:
        """Record a member's vote (changeable); return the night and their previous choice."""
        night = await self._night(night_id)
        if night.state != "voting":
            raise UserFacingError(
                "This vote is closed."
                if night.state != "lobby"
                else "The vote hasn't started yet: join the lobby first."
            )
        members = await night_store.members(self.db, night_id)
        if user_id not in members:
            if night.source == "lobby":
                raise UserFacingError(
                    "This vote is for the members who joined the lobby, and it has closed. "
                    "Start your own night with /movienight."
                )
            raise UserFacingError(
                "This vote is for the members who were in the voice channel when it started."
            )
        picks = await night_store.picks(self.db, night_id)
        if not any(p.position == position for p in picks):
            raise UserFacingError("That film isn't on this night's list.")
        previous = await night_store.vote(self.db, night_id, user_id, position)
        return await self.view(night_id), previous

    async def close(self, night_id: int, by: int | None, admin: bool = False) -> NightView:
        """Close the vote (the starter or an admin; ``by`` None: the timer); pick the winner.

        The most votes win; ties go to the higher group score (the order shown). A lobby that
        closes with nobody voting yet opens its vote instead.
        """
        night = await self._night(night_id)
        if by is not None:
            self._check_may_close(night, by, admin)
        if night.state == "lobby":
            return await self.begin_vote(night_id, None)
        if night.state != "voting":
            return await self.view(night_id)
        db = self.db
        picks = await night_store.picks(db, night_id)
        tally = await night_store.tally(db, night_id)
        winner = max(picks, key=lambda p: (tally.get(p.position, 0), p.score, -p.position))
        members = await night_store.members(db, night_id)
        satisfaction = await self._satisfaction(night, members, winner.movie_id)
        await night_store.close(db, night, winner.movie_id, satisfaction)
        return await self.view(night_id)

    async def _satisfaction(
        self, night: Night, members: list[int], movie_id: int
    ) -> dict[int, float]:
        """Return how well the winner suited each member, on the night's own candidates."""
        if not members:  # everyone there has since used /forgetme
            return {}
        db = self.db
        model = await self._model()
        by_member = await rating_store.for_users(db, members)
        ratings = [by_member[m] for m in members]
        values = await asyncio.to_thread(
            group.group_satisfaction,
            model,
            ratings,
            movie_id,
            exclude=await self._exclude(night.guild_id, members),
            allowed=self._allowed(model, night.genre),
        )
        return dict(zip(members, values, strict=True))

    @staticmethod
    def _check_may_close(night: Night, by: int, admin: bool) -> None:
        if by != night.started_by and not admin:
            raise UserFacingError(
                "Only the member who started this night, or someone with Manage Server, "
                "can close it."
            )

    async def due(
        self, now: int | None = None, *, serves: Callable[[int], bool] | None = None
    ) -> list[NightView]:
        """Move every night whose time is up: lobbies to voting, votes to closed.

        ``serves`` picks the servers this process handles (its gateway shards' servers), so
        with several shard processes each night is moved by exactly one of them.
        """
        changed = []
        for night in await night_store.due(self.db, now):
            if serves is not None and not serves(night.guild_id):
                continue
            try:
                changed.append(await self.close(night.id, None))
            except StorageError as exc:  # the database is busy or away: try again next time
                log.warning("Movie night %d could not close now (%s); will retry", night.id, exc)
            except Exception as exc:  # one broken night must not keep the others open
                if not isinstance(exc, UserFacingError):
                    log.exception("Movie night %d could not close; cancelling it", night.id)
                await night_store.close(self.db, night, None, {}, cancelled=True)
                changed.append(await self.view(night.id))
        return changed

    async def open_in(self, channel_id: int) -> NightView | None:
        """Return the channel's open night, if any."""
        night = await night_store.open_in_channel(self.db, channel_id)
        return None if night is None else await self.view(night.id)

    async def open_nights(self) -> list[NightView]:
        """Return every open night (to re-attach their buttons after a restart)."""
        return [await self.view(n.id) for n in await night_store.open_nights(self.db)]

    async def set_message(self, night_id: int, message_id: int) -> None:
        """Remember the message that shows a night."""
        await night_store.set_message(self.db, night_id, message_id)

    # ------------------------------------------------------------------ views

    async def _night(self, night_id: int) -> Night:
        night = await night_store.get(self.db, night_id)
        if night is None:
            raise UserFacingError("That movie night doesn't exist any more.")
        return night

    async def view(self, night_id: int, *, left_out: tuple[int, ...] = ()) -> NightView:
        """Return what a night's message shows now."""
        db = self.db
        night = await self._night(night_id)
        members = await night_store.members(db, night_id)
        counts = await rating_store.counts_for_users(db, members)
        newcomers = tuple(m for m in members if counts[m] == 0)
        tally = await night_store.tally(db, night_id)
        catalog = self.catalog
        choices = tuple(
            NightChoice(
                p.position,
                catalog.get(p.movie_id) or Movie(p.movie_id, f"Movie #{p.movie_id}", None),
                tally.get(p.position, 0),
                p.best_rank,
                p.worst_rank,
            )
            for p in await night_store.picks(db, night_id)
        )
        winner = catalog.get(night.winner) if night.winner is not None else None
        return NightView(
            night, tuple(members), newcomers, choices, night.candidates, winner, left_out
        )

    # ------------------------------------------------------------------ the watched list

    async def watched(self, guild_id: int, page: int = 0) -> WatchedPage:
        """Return one page of the server's watched list, newest first."""
        db = self.db
        rows = await night_store.watched(db, guild_id)
        pages = max(1, math.ceil(len(rows) / WATCHED_PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        items = []
        for row in rows[page * WATCHED_PAGE_SIZE : (page + 1) * WATCHED_PAGE_SIZE]:
            movie = self.catalog.get(row.movie_id) or Movie(
                row.movie_id, f"Movie #{row.movie_id}", None
            )
            members = (
                tuple(await night_store.members(db, row.night_id))
                if row.night_id is not None
                else ()
            )
            items.append(WatchedEntry(movie, row.watched_at, members, row.night_id is None))
        return WatchedPage(tuple(items), page, pages, len(rows))

    async def add_watched(self, guild_id: int, movie_id: int, by: int) -> Movie:
        """Put a film on the watched list by hand (admins)."""
        movie = movie_by_id(self.catalog, movie_id)
        if not await night_store.add_watched(self.db, guild_id, movie_id, by):
            raise UserFacingError(f"{movie.label} is already on the watched list.")
        return movie

    async def remove_watched(self, guild_id: int, movie_id: int, by: int | None = None) -> Movie:
        """Take a film off the watched list (admins)."""
        movie = movie_by_id(self.catalog, movie_id)
        if not await night_store.remove_watched(self.db, guild_id, movie_id):
            raise UserFacingError(f"{movie.label} isn't on the watched list.")
        return movie
