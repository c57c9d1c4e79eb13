"""Group commit: ratings waiting for the database are written together, in one transaction.

Each statement costs a trip to the database thread, and with ``synchronous=FULL`` each commit
waits for the disk. The :class:`RatingWriter` lets ratings queue while a write is under way and
writes everything waiting in the next transaction with a few statements for the whole batch:
one trip per statement and one flush for the lot. A batch the table refuses is retried one
rating at a time, each in its own savepoint, so a bad row fails alone. Each member's
confirmation is sent only after the commit that holds their rating.
"""

from __future__ import annotations

from bot.batching import Batcher
from bot.db import Connection, Database, StorageError
from bot.db import ratings as rating_store

MAX_BATCH = 1000

Row = tuple[int, int, float, int | None]  # member, movie, stars, server


class RatingWriter:
    """Write members' ratings with group commit; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._batcher: Batcher[Row, float | None] = Batcher(
            self._write, max_batch=MAX_BATCH, keep_cancelled=True, name="rating-writer"
        )
        self._closed = False

    async def upsert(
        self, user_id: int, movie_id: int, rating: float, guild_id: int | None = None
    ) -> float | None:
        """Save a rating; return the member's previous rating (or None) once it is committed."""
        if self._closed:
            raise StorageError("I'm shutting down, so nothing was saved. Please try again soon.")
        return await self._batcher.submit((user_id, movie_id, rating, guild_id))

    async def _write(self, rows: list[Row]) -> list[float | BaseException | None]:
        # BEGIN or COMMIT failing raises here: nothing in the batch was saved, all hear so.
        async with self.db.transaction() as conn:
            return list(await self._apply(conn, rows))

    @staticmethod
    async def _apply(conn: Connection, rows: list[Row]) -> list[float | StorageError | None]:
        try:
            async with conn.savepoint("batch"):
                together: list[float | StorageError | None] = list(
                    await rating_store.upsert_many(conn, rows)
                )
        except StorageError:
            pass  # some row was refused: find it below
        else:
            return together
        alone: list[float | StorageError | None] = []
        for row in rows:  # one at a time: the bad row fails, the others are saved
            try:
                async with conn.savepoint("rating"):
                    alone.append((await rating_store.upsert_many(conn, [row]))[0])
            except StorageError as exc:
                alone.append(exc)
        return alone

    async def close(self) -> None:
        """Write what is queued, then refuse new ratings."""
        self._closed = True
        await self._batcher.close()
