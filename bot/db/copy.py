"""Copy everything from one store into another (``moviebot db copy``): SQLite to PostgreSQL.

Every table the migrations create is copied, row for row with the same ids, in one transaction
on the target: all of it, or (on any error) nothing. The target must be empty, so nothing there
is overwritten. ``TABLES`` names every table and its columns; a test checks it against the
schema, so a table a later migration adds cannot be left behind.
"""

from __future__ import annotations

from bot.db import Database, StorageError

# In an order that satisfies the foreign keys (nights before their members, picks and votes).
TABLES: dict[str, tuple[str, ...]] = {
    "ratings": ("user_id", "movie_id", "rating", "guild_id", "created_at", "updated_at"),
    "rating_events": ("id", "user_id", "movie_id", "kind", "at"),
    "model_runs": (
        "id",
        "trigger",
        "requested_by",
        "started_at",
        "finished_at",
        "status",
        "last_event_id",
        "n_ratings",
        "n_chat_ratings",
        "n_chat_users",
        "seconds",
        "error",
        "params",
        "tuning",
    ),
    "bot_state": ("key", "value"),
    "movie_nights": (
        "id",
        "guild_id",
        "channel_id",
        "message_id",
        "started_by",
        "source",
        "state",
        "created_at",
        "closes_at",
        "count",
        "genre",
        "left_out",
        "candidates",
        "winner",
    ),
    "night_members": ("night_id", "user_id"),
    "night_picks": ("night_id", "position", "movie_id", "score", "best_rank", "worst_rank"),
    "night_votes": ("night_id", "user_id", "position", "voted_at"),
    "night_satisfaction": ("night_id", "user_id", "satisfaction"),
    "watched": ("guild_id", "movie_id", "watched_at", "night_id", "added_by"),
    "dismissals": ("user_id", "movie_id", "dismissed_at"),
    "import_writes": ("user_id", "movie_id", "rating"),
    "import_backups": ("user_id", "movie_id", "rating", "guild_id", "created_at", "updated_at"),
    "imports": (
        "user_id",
        "imported_at",
        "format",
        "added",
        "replaced",
        "unchanged",
        "kept",
        "undone",
    ),
    "quickrate_skips": ("user_id", "movie_id", "skipped_at"),
    "welcomed": ("user_id", "welcomed_at"),
}
# Columns SQLite may hand back as whole numbers that PostgreSQL keeps as DOUBLE PRECISION.
_REAL = frozenset({"rating", "seconds", "score", "satisfaction"})
# Tables whose ids the store generates: the target's counters must continue after the copy.
_GENERATED_IDS = ("rating_events", "model_runs", "movie_nights")
_BATCH = 5_000


async def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; return the rows per table.

    Raises :class:`StorageError` when the target already holds data (nothing is written).
    """
    async with target.read() as conn:
        for table in TABLES:
            if await conn.fetchone(f"SELECT 1 FROM {table} LIMIT 1") is not None:
                raise StorageError(
                    f"The target database already holds data (table {table}); nothing was "
                    "copied. Copy into a new, empty database."
                )
    copied: dict[str, int] = {}
    # One snapshot of the source, so a bot writing meanwhile cannot make the copy inconsistent.
    async with source.snapshot() as src, target.transaction() as out:
        for table, columns in TABLES.items():
            rows = await src.fetchall(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}"
            )
            real = [i for i, column in enumerate(columns) if column in _REAL]
            values = [_with_floats(row, real) for row in rows]
            marks = ", ".join("?" * len(columns))
            for start in range(0, len(values), _BATCH):
                await out.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    values[start : start + _BATCH],
                )
            copied[table] = len(values)
        # New rows get ids after every id used so far, also ids no longer in the table: the
        # change log is emptied after each fit, and its ids must keep growing past the ones
        # fits have covered (model_runs.last_event_id), or new changes would go unseen.
        for table in _GENERATED_IDS:
            used = int(await out.fetchval(f"SELECT COALESCE(MAX(id), 0) FROM {table}") or 0)
            if table == "rating_events":
                covered = await src.fetchval(
                    "SELECT COALESCE(MAX(last_event_id), 0) FROM model_runs"
                )
                used = max(used, int(covered or 0), await source.id_counter(src, table))
            await target.continue_ids(out, table, used)
    return copied


def _with_floats(row: tuple[object, ...], real: list[int]) -> tuple[object, ...]:
    if not real:
        return row
    values = list(row)
    for i in real:
        if values[i] is not None:
            values[i] = float(values[i])  # type: ignore[arg-type]
    return tuple(values)
