"""Group commit: ratings waiting for the database are written together, in one transaction.

Each statement costs a trip to the database thread, and with ``synchronous=FULL`` each commit
waits for the disk. The :class:`RatingWriter` lets ratings queue while a write is under way and
writes everything waiting in the next transaction with a few statements for the whole batch:
one trip per statement and one flush for the lot. A batch the table refuses is retried one
rating at a time, each in its own savepoint, so a bad row fails alone. Each member's
confirmation is sent only after the commit that holds their rating.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from bot.db import Connection, Database, StorageError
from bot.db import ratings as rating_store

MAX_BATCH = 1000


@dataclass
class _Rating:
    row: tuple[int, int, float, int | None]  # member, movie, stars, server
    done: asyncio.Future[float | None] = field(repr=False)


class RatingWriter:
    """Write members' ratings with group commit; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: asyncio.Queue[_Rating] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def upsert(
        self, user_id: int, movie_id: int, rating: float, guild_id: int | None = None
    ) -> float | None:
        """Save a rating; return the member's previous rating (or None) once it is committed."""
        if self._closed:
            raise StorageError("I'm shutting down, so nothing was saved. Please try again soon.")
        done: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Rating((user_id, movie_id, rating, guild_id), done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="rating-writer")
        return await done

    async def _run(self) -> None:
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Rating]) -> None:
        try:
            async with self.db.transaction() as conn:
                outcomes = await self._apply(conn, [item.row for item in batch])
        except Exception as exc:  # BEGIN or COMMIT failed: nothing in the batch was saved
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.done.done():  # the member's command was cancelled meanwhile
                continue
            if isinstance(outcome, StorageError):
                item.done.set_exception(outcome)
            else:
                item.done.set_result(outcome)

    @staticmethod
    async def _apply(
        conn: Connection, rows: list[tuple[int, int, float, int | None]]
    ) -> list[float | StorageError | None]:
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
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
