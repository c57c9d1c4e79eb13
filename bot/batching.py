"""Work asked for together is done together: a queue drained in batches by one task.

When many members ask at once (a movie-night announcement), handling each request on its own
pays the fixed costs (database round trips, a hop to a worker thread, the fold-in's Python
loop) once per member. A :class:`Batcher` lets requests queue while a batch is being worked on
and hands everything waiting to the next call of its handler, which answers each request. A
lone request is handled at once, so an idle bot answers as fast as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    done: asyncio.Future[R] = field(repr=False)


class Batcher(Generic[T, R]):
    """Hand requests to ``handle`` in batches of at most ``max_batch``, in arrival order.

    ``handle`` returns one result per request, in order; an exception in that list fails its
    request alone, an exception raised by ``handle`` fails the whole batch. A request whose
    caller gave up while it waited is left out of its batch, unless ``keep_cancelled`` (a
    write the caller started should still happen).
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        *,
        max_batch: int = 64,
        keep_cancelled: bool = False,
        name: str = "batcher",
    ) -> None:
        self.handle = handle
        self.max_batch = max_batch
        self.keep_cancelled = keep_cancelled
        self.name = name
        self.batches = 0  # how many times ``handle`` ran (for tests and benchmarks)
        self._queue: asyncio.Queue[_Waiting[T, R]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` and return its result once its batch is handled."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiting(item, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)
        return await done

    async def _run(self) -> None:
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if not self.keep_cancelled:
                batch = [w for w in batch if not w.done.done()]  # cancelled while waiting
            if batch:
                await self._handle(batch)

    async def _handle(self, batch: list[_Waiting[T, R]]) -> None:
        self.batches += 1
        try:
            results = await self.handle([w.item for w in batch])
        except asyncio.CancelledError:  # the loop is shutting down: nobody is left waiting
            for waiting in [*batch, *self._drain()]:
                waiting.done.cancel()
            raise
        except Exception as exc:
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        for waiting, result in zip(batch, results, strict=True):
            if waiting.done.done():
                continue
            if isinstance(result, BaseException):
                waiting.done.set_exception(result)
            else:
                waiting.done.set_result(result)

    def _drain(self) -> list[_Waiting[T, R]]:
        waiting = []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        return waiting

    async def close(self) -> None:
        """Finish the batch in progress and what is queued."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
