"""Queries on movie nights, their members, picks and votes, fairness, and the watched list."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.db import Connection, Database, StorageError

OPEN = ("lobby", "voting")


@dataclass(frozen=True)
class Night:
    """One movie night."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int | None
    started_by: int | None
    source: str
    state: str
    created_at: int
    closes_at: int
    count: int
    genre: str | None
    left_out: int
    candidates: int
    winner: int | None


@dataclass(frozen=True)
class NightPick:
    """One film offered at a night, with how it suits the group."""

    position: int
    movie_id: int
    score: float
    best_rank: int
    worst_rank: int


@dataclass(frozen=True)
class WatchedFilm:
    """A film on a server's watched list."""

    movie_id: int
    watched_at: int
    night_id: int | None
    added_by: int | None


_NIGHT = (
    "id, guild_id, channel_id, message_id, started_by, source, state, created_at, closes_at,"
    " count, genre, left_out, candidates, winner"
)


def _now() -> int:
    return int(time.time())


async def create(
    db: Database,
    *,
    guild_id: int,
    channel_id: int,
    started_by: int,
    source: str,
    state: str,
    closes_at: int,
    count: int,
    genre: str | None,
    members: Sequence[int],
    left_out: int = 0,
    candidates: int = 0,
    picks: Sequence[NightPick] = (),
) -> Night | None:
    """Open a night with its members (and picks, when voting starts at once).

    Returns None when the channel already has an open night (nothing is written).
    """
    async with db.transaction() as conn:
        if await conn.fetchone(
            "SELECT 1 FROM movie_nights WHERE channel_id = ? AND state IN ('lobby', 'voting')",
            (channel_id,),
        ):
            return None
        night_id = await conn.fetchval(
            "INSERT INTO movie_nights (guild_id, channel_id, started_by, source, state,"
            " created_at, closes_at, count, genre, left_out, candidates)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                guild_id,
                channel_id,
                started_by,
                source,
                state,
                _now(),
                closes_at,
                count,
                genre,
                left_out,
                candidates,
            ),
        )
        await conn.executemany(
            "INSERT INTO night_members (night_id, user_id) VALUES (?, ?)",
            [(night_id, user) for user in dict.fromkeys(members)],
        )
        await _insert_picks(conn, night_id, picks)
    return await get(db, night_id)


async def _insert_picks(conn: Connection, night_id: int, picks: Sequence[NightPick]) -> None:
    await conn.executemany(
        "INSERT INTO night_picks (night_id, position, movie_id, score, best_rank, worst_rank)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(night_id, p.position, p.movie_id, p.score, p.best_rank, p.worst_rank) for p in picks],
    )


async def get(db: Database, night_id: int) -> Night | None:
    """Return a night by id."""
    async with db.read() as conn:
        row = await conn.fetchone(f"SELECT {_NIGHT} FROM movie_nights WHERE id = ?", (night_id,))
    return None if row is None else Night(*row)


async def open_in_channel(db: Database, channel_id: int) -> Night | None:
    """Return the channel's open night, if any."""
    async with db.read() as conn:
        row = await conn.fetchone(
            f"SELECT {_NIGHT} FROM movie_nights WHERE channel_id = ?"
            " AND state IN ('lobby', 'voting')",
            (channel_id,),
        )
    return None if row is None else Night(*row)


async def open_nights(db: Database) -> list[Night]:
    """Return every open night (to re-attach their messages after a restart)."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            f"SELECT {_NIGHT} FROM movie_nights WHERE state IN ('lobby', 'voting') ORDER BY id"
        )
        return [Night(*row) for row in rows]


async def due(db: Database, now: int | None = None) -> list[Night]:
    """Return open nights whose lobby or vote should have closed by now."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            f"SELECT {_NIGHT} FROM movie_nights WHERE state IN ('lobby', 'voting')"
            " AND closes_at <= ? ORDER BY closes_at",
            (now if now is not None else _now(),),
        )
        return [Night(*row) for row in rows]


async def set_message(db: Database, night_id: int, message_id: int) -> None:
    """Remember the message that shows a night."""
    await db.write("UPDATE movie_nights SET message_id = ? WHERE id = ?", (message_id, night_id))


async def members(db: Database, night_id: int) -> list[int]:
    """Return the members of a night."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT user_id FROM night_members WHERE night_id = ? ORDER BY user_id", (night_id,)
        )
        return [int(u) for (u,) in rows]


async def join(db: Database, night_id: int, user_id: int) -> bool:
    """Add a member to a night's lobby; return False if the lobby is closed or they were in."""
    async with db.transaction() as conn:
        state = await conn.fetchval("SELECT state FROM movie_nights WHERE id = ?", (night_id,))
        if state != "lobby":
            return False
        added = await conn.execute(
            "INSERT INTO night_members (night_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (night_id, user_id),
        )
    return bool(added)


async def start_voting(
    db: Database,
    night_id: int,
    picks: Sequence[NightPick],
    closes_at: int,
    *,
    left_out: int = 0,
    candidates: int = 0,
) -> bool:
    """Turn a lobby into a vote with these picks; return False if it was no longer a lobby."""
    async with db.transaction() as conn:
        changed = await conn.execute(
            "UPDATE movie_nights SET state = 'voting', closes_at = ?, left_out = ?,"
            " candidates = ? WHERE id = ? AND state = 'lobby'",
            (closes_at, left_out, candidates, night_id),
        )
        if changed:
            await _insert_picks(conn, night_id, picks)
    return bool(changed)


async def picks(db: Database, night_id: int) -> list[NightPick]:
    """Return a night's picks in the order shown."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT position, movie_id, score, best_rank, worst_rank FROM night_picks"
            " WHERE night_id = ? ORDER BY position",
            (night_id,),
        )
        return [NightPick(*row) for row in rows]


async def vote(db: Database, night_id: int, user_id: int, position: int) -> int | None:
    """Record (or change) a member's vote; return their previous choice, if any.

    Raises :class:`StorageError` if the night is not voting any more (a race with closing).
    """
    async with db.transaction() as conn:
        state = await conn.fetchval("SELECT state FROM movie_nights WHERE id = ?", (night_id,))
        if state != "voting":
            raise StorageError("This vote is closed.")
        previous = await conn.fetchval(
            "SELECT position FROM night_votes WHERE night_id = ? AND user_id = ?",
            (night_id, user_id),
        )
        await conn.execute(
            "INSERT INTO night_votes (night_id, user_id, position, voted_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (night_id, user_id) DO UPDATE SET position = excluded.position,"
            " voted_at = excluded.voted_at",
            (night_id, user_id, position, _now()),
        )
    return None if previous is None else int(previous)


async def tally(db: Database, night_id: int) -> dict[int, int]:
    """Return the votes per position."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT position, COUNT(*) FROM night_votes WHERE night_id = ? GROUP BY position",
            (night_id,),
        )
        return {int(p): int(n) for p, n in rows}


async def close(
    db: Database,
    night: Night,
    winner: int | None,
    satisfaction: dict[int, float],
    *,
    cancelled: bool = False,
) -> bool:
    """Close a night: record the winner on the watched list and each member's satisfaction.

    Returns False if another close got there first (nothing is written then).
    """
    now = _now()
    async with db.transaction() as conn:
        changed = await conn.execute(
            "UPDATE movie_nights SET state = ?, winner = ?, closes_at = ?"
            " WHERE id = ? AND state IN ('lobby', 'voting')",
            ("cancelled" if cancelled else "closed", winner, now, night.id),
        )
        if not changed:
            return False
        if winner is not None:
            await conn.execute(
                "INSERT INTO watched (guild_id, movie_id, watched_at, night_id, added_by)"
                " VALUES (?, ?, ?, ?, NULL) ON CONFLICT (guild_id, movie_id) DO UPDATE SET"
                " watched_at = excluded.watched_at, night_id = excluded.night_id",
                (night.guild_id, winner, now, night.id),
            )
        await conn.executemany(
            "INSERT INTO night_satisfaction (night_id, user_id, satisfaction) VALUES (?, ?, ?)",
            [(night.id, user, float(value)) for user, value in satisfaction.items()],
        )
    return True


async def satisfaction_history(
    db: Database, guild_id: int, user_ids: Sequence[int], nights: int = 10
) -> list[list[float | None]]:
    """Return the server's last ``nights`` closed nights, oldest first: one value per member.

    ``None`` where a member was not at that night.
    """
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT id FROM movie_nights WHERE guild_id = ? AND state = 'closed'"
            " ORDER BY id DESC LIMIT ?",
            (guild_id, nights),
        )
        ids = [int(i) for (i,) in rows][::-1]
        rows = await conn.fetch_for_ids(
            "SELECT night_id, user_id, satisfaction FROM night_satisfaction"
            " WHERE night_id IN ({marks})",
            ids,
        )
        values = {(int(n), int(u)): float(s) for n, u, s in rows}
    return [[values.get((night, user)) for user in user_ids] for night in ids]


async def watched(db: Database, guild_id: int) -> list[WatchedFilm]:
    """Return a server's watched list, newest first."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT movie_id, watched_at, night_id, added_by FROM watched WHERE guild_id = ?"
            " ORDER BY watched_at DESC, movie_id",
            (guild_id,),
        )
        return [WatchedFilm(*row) for row in rows]


async def add_watched(db: Database, guild_id: int, movie_id: int, added_by: int) -> bool:
    """Put a film on the watched list by hand; return False if it was there."""
    return bool(
        await db.write(
            "INSERT INTO watched (guild_id, movie_id, watched_at, night_id, added_by)"
            " VALUES (?, ?, ?, NULL, ?) ON CONFLICT (guild_id, movie_id) DO NOTHING",
            (guild_id, movie_id, _now(), added_by),
        )
    )


async def remove_watched(db: Database, guild_id: int, movie_id: int) -> bool:
    """Take a film off the watched list; return False if it was not there."""
    return bool(
        await db.write(
            "DELETE FROM watched WHERE guild_id = ? AND movie_id = ?", (guild_id, movie_id)
        )
    )
