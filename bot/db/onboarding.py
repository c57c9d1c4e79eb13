"""Queries for onboarding: imports (all or nothing, with undo), quick-rate skips, the welcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.db import Database


@dataclass(frozen=True)
class ImportCounts:
    """What an import did to a member's ratings."""

    added: int  # films they had not rated
    replaced: int  # films rated differently here, overwritten (replace mode)
    unchanged: int  # films rated the same here already
    kept: int  # films rated differently here, left as they were (keep mode)


@dataclass(frozen=True)
class LastImport:
    """A member's last import."""

    imported_at: int
    format: str
    undone: bool


def _now() -> int:
    return int(time.time())


async def import_ratings(
    db: Database,
    user_id: int,
    rows: Sequence[tuple[int, float]],
    *,
    replace: bool,
    source: str,
    guild_id: int | None = None,
) -> ImportCounts:
    """Apply imported (movie id, stars) rows in ONE transaction: all of them, or none.

    The member's ratings as they were before are kept for :func:`undo_import`.
    """
    now = _now()
    added = replaced = unchanged = kept = 0
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM import_backups WHERE user_id = ?", (user_id,))
        await conn.execute(
            "INSERT INTO import_backups (user_id, movie_id, rating, guild_id, created_at,"
            " updated_at) SELECT user_id, movie_id, rating, guild_id, created_at, updated_at"
            " FROM ratings WHERE user_id = ?",
            (user_id,),
        )
        async with conn.execute(
            "SELECT movie_id, rating FROM ratings WHERE user_id = ?", (user_id,)
        ) as cursor:
            current = {int(m): float(r) async for m, r in cursor}
        writes: list[tuple[int, int, float, int | None, int, int]] = []
        for movie_id, rating in rows:
            before = current.get(movie_id)
            if before is None:
                added += 1
            elif before == rating:
                unchanged += 1
                continue
            elif not replace:
                kept += 1
                continue
            else:
                replaced += 1
            writes.append((user_id, movie_id, rating, guild_id, now, now))
        await conn.executemany(
            "INSERT INTO ratings (user_id, movie_id, rating, guild_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, movie_id) DO UPDATE SET"
            " rating = excluded.rating, updated_at = excluded.updated_at",
            writes,
        )
        await conn.executemany(
            "INSERT INTO rating_events (user_id, movie_id, kind, at) VALUES (?, ?, 'rate', ?)",
            [(user_id, w[1], now) for w in writes],
        )
        await conn.execute(
            "INSERT INTO imports (user_id, imported_at, format, added, replaced, unchanged, kept,"
            " undone) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (user_id) DO UPDATE SET"
            " imported_at = excluded.imported_at, format = excluded.format,"
            " added = excluded.added, replaced = excluded.replaced,"
            " unchanged = excluded.unchanged, kept = excluded.kept, undone = 0",
            (user_id, now, source, added, replaced, unchanged, kept),
        )
    return ImportCounts(added, replaced, unchanged, kept)


async def last_import(db: Database, user_id: int) -> LastImport | None:
    """Return a member's last import, if any."""
    async with (
        db.read() as conn,
        conn.execute(
            "SELECT imported_at, format, undone FROM imports WHERE user_id = ?", (user_id,)
        ) as cursor,
    ):
        row = await cursor.fetchone()
    return None if row is None else LastImport(int(row[0]), str(row[1]), bool(row[2]))


async def undo_import(db: Database, user_id: int) -> int | None:
    """Put a member's ratings back as they were before their last import, in one transaction.

    Returns how many ratings they have now, or None if there is no import to undo.
    """
    now = _now()
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT undone FROM imports WHERE user_id = ?", (user_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or row[0]:
            return None
        await conn.execute("DELETE FROM ratings WHERE user_id = ?", (user_id,))
        cursor = await conn.execute(
            "INSERT INTO ratings (user_id, movie_id, rating, guild_id, created_at, updated_at)"
            " SELECT user_id, movie_id, rating, guild_id, created_at, updated_at"
            " FROM import_backups WHERE user_id = ?",
            (user_id,),
        )
        restored = cursor.rowcount
        await cursor.close()
        await conn.execute("DELETE FROM import_backups WHERE user_id = ?", (user_id,))
        await conn.execute("UPDATE imports SET undone = 1 WHERE user_id = ?", (user_id,))
        await conn.execute(
            "INSERT INTO rating_events (user_id, movie_id, kind, at) VALUES (?, NULL, 'forget', ?)",
            (user_id, now),
        )
    return int(restored)


async def skip(db: Database, user_id: int, movie_id: int) -> None:
    """Remember that a member hasn't seen a film, so /quickrate never asks it again."""
    await db.write(
        "INSERT INTO quickrate_skips (user_id, movie_id, skipped_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (user_id, movie_id, _now()),
    )


async def skipped(db: Database, user_id: int) -> set[int]:
    """Return the films a member said they haven't seen."""
    async with (
        db.read() as conn,
        conn.execute(
            "SELECT movie_id FROM quickrate_skips WHERE user_id = ?", (user_id,)
        ) as cursor,
    ):
        return {int(m) async for (m,) in cursor}


async def welcome_once(db: Database, user_id: int) -> bool:
    """Record that a member was welcomed; return True only the first time."""
    return bool(
        await db.write(
            "INSERT INTO welcomed (user_id, welcomed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (user_id, _now()),
        )
    )
