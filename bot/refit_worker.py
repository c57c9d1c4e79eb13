"""Refits in a worker process that dies with its parent.

Each refit runs in a fresh spawned process (a forked child would inherit the event loop's and
aiosqlite's threads), which exits when the fit is done, so no idle worker holds memory between
refits. The child watches its parent: if the bot is killed, the child exits within a second
instead of finishing a fit nobody will use. The child saves to a staging file; only the parent
puts it in place, and only while its run is still current.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor
from multiprocessing.connection import Connection
from typing import Any

from recommender.persistence import ModelMetadata
from recommender.training import fit_and_save

PARENT_CHECK_SECONDS = 0.5


class RefitStopped(Exception):
    """The worker was stopped (or died) before the fit finished."""


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(3)  # the bot is gone: nobody will use this fit


def _child(
    send: Connection, parent_pid: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    # Ctrl-C at a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    try:
        send.send(("ok", fit_and_save(*args, **kwargs)))
    except BaseException as exc:  # exceptions do not always pickle; their text does
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


class RefitError(Exception):
    """The fit failed in the worker; the message is the worker's error."""


class RefitWorker:
    """Run :func:`recommender.training.fit_and_save` off the event loop, one fit at a time.

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Run fits here instead of in a spawned process (tests use a thread, to start fast).
    """

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopped = False

    async def run(self, *args: Any, **kwargs: Any) -> ModelMetadata:
        """Fit and save to a staging file in the worker; return the model's metadata.

        Raises :class:`RefitStopped` once :meth:`stop` was called (the bot is shutting down).
        """
        if self._stopped:
            raise RefitStopped("the bot is shutting down")
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, functools.partial(fit_and_save, *args, **kwargs)
            )
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_child,
            args=(send, os.getpid(), args, kwargs),
            name="moviebot-refit",
            daemon=True,
        )
        await asyncio.to_thread(process.start)  # spawning and handing over the job take a while
        send.close()  # the child holds the only write end: its exit ends our wait
        self._process = process
        if self._stopped:  # stop() came while the worker was starting
            process.terminate()
        try:
            status, value = await asyncio.to_thread(_receive, receive)
        finally:
            self._process = None
            await asyncio.to_thread(_reap, process)  # joining blocks: never on the event loop
            receive.close()
        if status == "ok":
            assert isinstance(value, ModelMetadata)
            return value
        raise RefitError(str(value))

    def stop(self) -> None:
        """Stop a running fit at once and refuse new ones (``run`` raises :class:`RefitStopped`).

        Only signals the worker; ``run`` reaps it off the event loop.
        """
        self._stopped = True
        if self._process is not None and self._process.is_alive():
            self._process.terminate()

    def close(self) -> None:
        """Stop a running fit and shut the executor down."""
        self.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _reap(process: multiprocessing.process.BaseProcess) -> None:
    """Make sure the worker has exited (terminate, then kill if it lingers) and join it."""
    if process.is_alive():
        process.terminate()
        process.join(2)
        if process.is_alive():
            process.kill()
    process.join(2)


def _receive(receive: Connection) -> tuple[str, object]:
    try:
        status, value = receive.recv()
    except (EOFError, OSError) as exc:
        raise RefitStopped("the refit worker stopped before it finished") from exc
    return str(status), value
