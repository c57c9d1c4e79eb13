"""Queries on members' ratings and the change log behind scheduled refits."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.db import Connection, Database


@dataclass(frozen=True)
class Rating:
    """One member's rating of one movie."""

    user_id: int
    movie_id: int
    rating: float
    guild_id: int | None
    created_at: int
    updated_at: int


def _now() -> int:
    return int(time.time())


async def upsert(
    db: Database, user_id: int, movie_id: int, rating: float, guild_id: int | None = None
) -> float | None:
    """Save a rating (overwriting the member's previous one); return the previous value or None.

    One transaction for one rating; the bot batches ratings with :mod:`bot.db.writer`.
    """
    async with db.transaction() as conn:
        return (await upsert_many(conn, [(user_id, movie_id, rating, guild_id)]))[0]


async def upsert_many(
    conn: Connection, rows: list[tuple[int, int, float, int | None]]
) -> list[float | None]:
    """Save many (member, movie, stars, server) ratings inside the caller's transaction.

    A few statements for the whole batch, not a few per rating; returns each member's previous
    rating (None when new). A row the table refuses fails the whole call; the caller retries.
    """
    now = _now()
    previous: dict[tuple[int, int], float] = {}
    for start in range(0, len(rows), 400):
        chunk = rows[start : start + 400]
        # Placeholders only; values are bound. The casts tell PostgreSQL the types.
        pairs = ", ".join(["(CAST(? AS BIGINT), CAST(? AS BIGINT))"] * len(chunk))
        found = await conn.fetchall(
            "SELECT user_id, movie_id, rating FROM ratings"
            f" WHERE (user_id, movie_id) IN (VALUES {pairs})",
            tuple(value for user, movie, _, _ in chunk for value in (user, movie)),
        )
        previous.update({(int(u), int(m)): float(r) for u, m, r in found})
    before: list[float | None] = []
    events = []
    for user, movie, stars, _ in rows:
        old = previous.get((user, movie))
        before.append(old)
        if old != stars:
            events.append((user, movie, now))
        previous[(user, movie)] = stars  # a member rating the same film twice in one batch
    await conn.executemany(
        "INSERT INTO ratings (user_id, movie_id, rating, guild_id, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, movie_id) DO UPDATE SET"
        " rating = excluded.rating, guild_id = COALESCE(excluded.guild_id, ratings.guild_id),"
        " updated_at = excluded.updated_at",
        [(user, movie, float(stars), guild, now, now) for user, movie, stars, guild in rows],
    )
    await conn.executemany(
        "INSERT INTO rating_events (user_id, movie_id, kind, at) VALUES (?, ?, 'rate', ?)", events
    )
    return before


async def delete(db: Database, user_id: int, movie_id: int) -> float | None:
    """Remove one rating; return the removed value, or None if there was none."""
    async with db.transaction() as conn:
        removed = await conn.fetchval(
            "DELETE FROM ratings WHERE user_id = ? AND movie_id = ? RETURNING rating",
            (user_id, movie_id),
        )
        if removed is not None:
            await conn.execute(
                "INSERT INTO rating_events (user_id, movie_id, kind, at)"
                " VALUES (?, ?, 'unrate', ?)",
                (user_id, movie_id, _now()),
            )
    return None if removed is None else float(removed)


async def delete_user(db: Database, user_id: int) -> int:
    """Remove every trace of a member in one transaction; return how many ratings they had.

    Their ratings, change-log entries, dismissals, movie-night attendance, votes and fairness
    record go; one anonymous "forget" event stays so the next scheduled refit drops them from
    the model; fits, nights and watched-list entries they started no longer name them.
    """
    async with db.transaction() as conn:
        removed = await conn.execute("DELETE FROM ratings WHERE user_id = ?", (user_id,))
        # Changes the model has not seen yet:
        pending = await conn.execute("DELETE FROM rating_events WHERE user_id = ?", (user_id,))
        for statement in (
            "UPDATE model_runs SET requested_by = NULL WHERE requested_by = ?",
            "DELETE FROM dismissals WHERE user_id = ?",
            "DELETE FROM night_members WHERE user_id = ?",
            "DELETE FROM night_votes WHERE user_id = ?",
            "DELETE FROM night_satisfaction WHERE user_id = ?",
            "UPDATE movie_nights SET started_by = NULL WHERE started_by = ?",
            "UPDATE watched SET added_by = NULL WHERE added_by = ?",
            "DELETE FROM import_backups WHERE user_id = ?",
            "DELETE FROM import_writes WHERE user_id = ?",
            "DELETE FROM imports WHERE user_id = ?",
            "DELETE FROM quickrate_skips WHERE user_id = ?",
            "DELETE FROM welcomed WHERE user_id = ?",
        ):
            await conn.execute(statement, (user_id,))
        if removed or pending:
            await conn.execute(
                "INSERT INTO rating_events (user_id, movie_id, kind, at)"
                " VALUES (NULL, NULL, 'forget', ?)",
                (_now(),),
            )
    return int(removed)


async def for_user(db: Database, user_id: int) -> dict[int, float]:
    """Return a member's ratings as movie id -> stars."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT movie_id, rating FROM ratings WHERE user_id = ?", (user_id,)
        )
    return {int(m): float(r) for m, r in rows}


async def for_users(db: Database, user_ids: list[int]) -> dict[int, dict[int, float]]:
    """Return each of these members' ratings (movie id -> stars; empty for none), in one read."""
    found: dict[int, dict[int, float]] = {user: {} for user in user_ids}
    async with db.read() as conn:
        rows = await conn.fetch_for_ids(
            "SELECT user_id, movie_id, rating FROM ratings WHERE user_id IN ({marks})", user_ids
        )
    for user, movie, stars in rows:
        found[int(user)][int(movie)] = float(stars)
    return found


async def page_for_user(db: Database, user_id: int, offset: int, limit: int) -> list[Rating]:
    """Return one page of a member's ratings, most recently changed first."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT user_id, movie_id, rating, guild_id, created_at, updated_at FROM ratings"
            " WHERE user_id = ? ORDER BY updated_at DESC, movie_id LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
    return [Rating(*row) for row in rows]


async def count_for_user(db: Database, user_id: int) -> int:
    """Return how many movies a member has rated."""
    async with db.read() as conn:
        count = await conn.fetchval("SELECT COUNT(*) FROM ratings WHERE user_id = ?", (user_id,))
    return int(count or 0)


async def counts_for_users(db: Database, user_ids: list[int]) -> dict[int, int]:
    """Return how many movies each of these members has rated (0 for none), in one read."""
    counts = dict.fromkeys(user_ids, 0)
    async with db.read() as conn:
        rows = await conn.fetch_for_ids(
            "SELECT user_id, COUNT(*) FROM ratings WHERE user_id IN ({marks}) GROUP BY user_id",
            user_ids,
        )
    counts.update({int(u): int(n) for u, n in rows})
    return counts


async def all_ratings(db: Database) -> list[tuple[int, int, float]]:
    """Return every chat rating as (user id, movie id, stars), for a refit."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT user_id, movie_id, rating FROM ratings ORDER BY user_id, movie_id"
        )
    return [(int(u), int(m), float(r)) for u, m, r in rows]


async def latest_event_id(db: Database) -> int:
    """Return the id of the newest rating change (0 if none)."""
    async with db.read() as conn:
        return int(await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM rating_events") or 0)


async def events_since(db: Database, event_id: int) -> int:
    """Return how many ratings were added, changed or removed after ``event_id``."""
    async with db.read() as conn:
        count = await conn.fetchval("SELECT COUNT(*) FROM rating_events WHERE id > ?", (event_id,))
    return int(count or 0)


async def prune_events(db: Database, up_to: int) -> None:
    """Forget change-log entries already covered by a successful fit."""
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM rating_events WHERE id <= ?", (up_to,))


@dataclass(frozen=True)
class ServerStats:
    """Rating numbers for one server (or for everyone, without a server)."""

    members: int
    ratings: int
    by_stars: dict[float, int]
    most_rated: list[tuple[int, int, float]]  # (movie id, ratings, mean)
    best_rated: list[tuple[int, int, float]]


async def server_stats(
    db: Database, guild_id: int | None, *, top: int = 5, min_count: int = 3
) -> ServerStats:
    """Return a server's rating numbers; ``guild_id`` None covers every rating.

    Only movies rated by at least ``min_count`` members are listed (one row per member and
    movie, so the count of rows is the count of members).
    """
    where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
    async with db.read() as conn:
        members, count = await conn.fetchone(
            f"SELECT COUNT(DISTINCT user_id), COUNT(*) FROM ratings {where}", params
        ) or (0, 0)
        rows = await conn.fetchall(
            f"SELECT rating, COUNT(*) FROM ratings {where} GROUP BY rating", params
        )
        by_stars = {float(r): int(n) for r, n in rows}
        rows = await conn.fetchall(
            f"SELECT movie_id, COUNT(*) AS n, AVG(rating) FROM ratings {where}"
            " GROUP BY movie_id HAVING COUNT(*) >= ? ORDER BY n DESC, movie_id LIMIT ?",
            (*params, min_count, top),
        )
        most = [(int(m), int(n), float(a)) for m, n, a in rows]
        rows = await conn.fetchall(
            f"SELECT movie_id, COUNT(*) AS n, AVG(rating) AS mean FROM ratings {where}"
            " GROUP BY movie_id HAVING COUNT(*) >= ? ORDER BY mean DESC, n DESC, movie_id LIMIT ?",
            (*params, min_count, top),
        )
        best = [(int(m), int(n), float(a)) for m, n, a in rows]
    return ServerStats(int(members), int(count), by_stars, most, best)
