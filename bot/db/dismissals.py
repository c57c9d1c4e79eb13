"""Queries on ``dismissals``: films a member marked "Not interested"."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.db import Database


@dataclass(frozen=True)
class Dismissal:
    """One film a member does not want recommended."""

    movie_id: int
    dismissed_at: int


async def add(db: Database, user_id: int, movie_id: int) -> bool:
    """Dismiss a film for a member; return False if it already was."""
    return bool(
        await db.write(
            "INSERT INTO dismissals (user_id, movie_id, dismissed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, movie_id) DO NOTHING",
            (user_id, movie_id, int(time.time())),
        )
    )


async def remove(db: Database, user_id: int, movie_id: int) -> bool:
    """Undo a dismissal; return False if there was none."""
    return bool(
        await db.write(
            "DELETE FROM dismissals WHERE user_id = ? AND movie_id = ?", (user_id, movie_id)
        )
    )


async def for_user(db: Database, user_id: int) -> list[Dismissal]:
    """Return a member's dismissals, newest first."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT movie_id, dismissed_at FROM dismissals WHERE user_id = ?"
            " ORDER BY dismissed_at DESC, movie_id",
            (user_id,),
        )
    return [Dismissal(int(m), int(at)) for m, at in rows]


async def ids_for_users(db: Database, user_ids: list[int]) -> set[int]:
    """Return every film any of these members dismissed."""
    return set().union(*(await ids_by_user(db, user_ids)).values())


async def ids_by_user(db: Database, user_ids: list[int]) -> dict[int, set[int]]:
    """Return the films each of these members dismissed (empty for none), in one read."""
    found: dict[int, set[int]] = {user: set() for user in user_ids}
    async with db.read() as conn:
        rows = await conn.fetch_for_ids(
            "SELECT user_id, movie_id FROM dismissals WHERE user_id IN ({marks})", user_ids
        )
    for user, movie in rows:
        found[int(user)].add(int(movie))
    return found
