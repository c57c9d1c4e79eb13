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

    What the import writes, and the ratings it overwrites, are kept for :func:`undo_import`.
    """
    now = _now()
    added = replaced = unchanged = kept = 0
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM import_backups WHERE user_id = ?", (user_id,))
        await conn.execute("DELETE FROM import_writes WHERE user_id = ?", (user_id,))
        found = await conn.fetchall(
            "SELECT movie_id, rating FROM ratings WHERE user_id = ?", (user_id,)
        )
        current = {int(m): float(r) for m, r in found}
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
        overwritten = [w[1] for w in writes if w[1] in current]
        for start in range(0, len(overwritten), 500):
            chunk = overwritten[start : start + 500]
            await conn.execute(
                "INSERT INTO import_backups (user_id, movie_id, rating, guild_id, created_at,"
                " updated_at) SELECT user_id, movie_id, rating, guild_id, created_at, updated_at"
                f" FROM ratings WHERE user_id = ? AND movie_id IN ({','.join('?' * len(chunk))})",
                (user_id, *chunk),
            )
        await conn.executemany(
            "INSERT INTO ratings (user_id, movie_id, rating, guild_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, movie_id) DO UPDATE SET"
            " rating = excluded.rating, updated_at = excluded.updated_at",
            writes,
        )
        await conn.executemany(
            "INSERT INTO import_writes (user_id, movie_id, rating) VALUES (?, ?, ?)",
            [(user_id, w[1], w[2]) for w in writes],
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
    async with db.read() as conn:
        row = await conn.fetchone(
            "SELECT imported_at, format, undone FROM imports WHERE user_id = ?", (user_id,)
        )
    return None if row is None else LastImport(int(row[0]), str(row[1]), bool(row[2]))


async def undo_import(db: Database, user_id: int) -> tuple[int, int] | None:
    """Take back what a member's last import wrote, in one transaction.

    A film still rated as the import set it gets its earlier rating back (or none, if the
    import added it); a film rated again since is left as the member rated it. Returns (films
    taken back, films left because they were re-rated), or None if there is nothing to undo.
    """
    now = _now()
    restored = left = 0
    async with db.transaction() as conn:
        row = await conn.fetchone("SELECT undone FROM imports WHERE user_id = ?", (user_id,))
        if row is None or row[0]:
            return None
        found = await conn.fetchall(
            "SELECT w.movie_id, w.rating, r.rating FROM import_writes AS w LEFT JOIN ratings AS r"
            " ON r.user_id = w.user_id AND r.movie_id = w.movie_id WHERE w.user_id = ?",
            (user_id,),
        )
        written = [(int(m), float(imported), now_rating) for m, imported, now_rating in found]
        for movie_id, imported, current in written:
            if current is None or float(current) != imported:
                left += 1
                continue
            await conn.execute(
                "DELETE FROM ratings WHERE user_id = ? AND movie_id = ?", (user_id, movie_id)
            )
            await conn.execute(
                "INSERT INTO ratings (user_id, movie_id, rating, guild_id, created_at, updated_at)"
                " SELECT user_id, movie_id, rating, guild_id, created_at, updated_at"
                " FROM import_backups WHERE user_id = ? AND movie_id = ?",
                (user_id, movie_id),
            )
            restored += 1
        await conn.execute("DELETE FROM import_backups WHERE user_id = ?", (user_id,))
        await conn.execute("DELETE FROM import_writes WHERE user_id = ?", (user_id,))
        await conn.execute("UPDATE imports SET undone = 1 WHERE user_id = ?", (user_id,))
        await conn.execute(
            "INSERT INTO rating_events (user_id, movie_id, kind, at) VALUES (?, NULL, 'forget', ?)",
            (user_id, now),
        )
    return restored, left


async def skip(db: Database, user_id: int, movie_id: int) -> None:
    """Remember that a member hasn't seen a film, so /quickrate never asks it again."""
    await db.write(
        "INSERT INTO quickrate_skips (user_id, movie_id, skipped_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (user_id, movie_id, _now()),
    )


async def skipped(db: Database, user_id: int) -> set[int]:
    """Return the films a member said they haven't seen."""
    async with db.read() as conn:
        rows = await conn.fetchall(
            "SELECT movie_id FROM quickrate_skips WHERE user_id = ?", (user_id,)
        )
        return {int(m) for (m,) in rows}


async def welcome_once(db: Database, user_id: int) -> bool:
    """Record that a member was welcomed; return True only the first time."""
    return bool(
        await db.write(
            "INSERT INTO welcomed (user_id, welcomed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (user_id, _now()),
        )
    )
