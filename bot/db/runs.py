"""Queries on the history of model fits (``model_runs``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bot.db import Database

_COLUMNS = (
    "id, trigger, requested_by, started_at, finished_at, status, last_event_id, n_ratings,"
    " n_chat_ratings, n_chat_users, seconds, error, params, tuning"
)


@dataclass(frozen=True)
class ModelRun:
    """One fit of the model: why, when, how it went."""

    id: int
    trigger: str
    requested_by: int | None
    started_at: int
    finished_at: int | None
    status: str
    last_event_id: int
    n_ratings: int | None
    n_chat_ratings: int | None
    n_chat_users: int | None
    seconds: float | None
    error: str | None
    params: str | None  # JSON: the model's parameters
    tuning: str | None  # JSON: the tuning's choice and scores, when tuned


async def start(db: Database, trigger: str, requested_by: int | None, last_event_id: int) -> int:
    """Record that a fit started; return its id."""
    async with db.transaction() as conn:
        run_id = await conn.fetchval(
            "INSERT INTO model_runs (trigger, requested_by, started_at, status, last_event_id)"
            " VALUES (?, ?, ?, 'running', ?) RETURNING id",
            (trigger, requested_by, int(time.time()), last_event_id),
        )
    return int(run_id)


async def succeed(
    db: Database,
    run_id: int,
    *,
    n_ratings: int,
    n_chat_ratings: int,
    n_chat_users: int,
    seconds: float,
    params: dict[str, object] | None = None,
    tuning: dict[str, object] | None = None,
) -> None:
    """Record that a fit finished and its model is live (with its settings and tuning)."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE model_runs SET status = 'succeeded', finished_at = ?, n_ratings = ?,"
            " n_chat_ratings = ?, n_chat_users = ?, seconds = ?, params = ?, tuning = ?"
            " WHERE id = ?",
            (
                int(time.time()),
                n_ratings,
                n_chat_ratings,
                n_chat_users,
                seconds,
                None if params is None else json.dumps(params, default=str),
                json.dumps(tuning, default=str) if tuning else None,
                run_id,
            ),
        )


async def fail(db: Database, run_id: int, error: str, seconds: float) -> None:
    """Record that a fit failed (the previous model stays live)."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE model_runs SET status = 'failed', finished_at = ?, error = ?, seconds = ?"
            " WHERE id = ?",
            (int(time.time()), error[:2000], seconds, run_id),
        )


INTERRUPTED = "interrupted: the bot stopped during the fit"


async def abandon_running(db: Database) -> int:
    """Mark fits left 'running' by a crashed process as failed; return how many."""
    async with db.transaction() as conn:
        return await conn.execute(
            "UPDATE model_runs SET status = 'failed', finished_at = ?, error = ?"
            " WHERE status = 'running'",
            (int(time.time()), INTERRUPTED),
        )


async def last_success(db: Database) -> ModelRun | None:
    """Return the newest successful fit, if any."""
    async with db.read() as conn:
        row = await conn.fetchone(
            f"SELECT {_COLUMNS} FROM model_runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1"
        )
    return None if row is None else ModelRun(*row)


async def get(db: Database, run_id: int) -> ModelRun | None:
    """Return one fit by id, if it exists."""
    async with db.read() as conn:
        row = await conn.fetchone(f"SELECT {_COLUMNS} FROM model_runs WHERE id = ?", (run_id,))
    return None if row is None else ModelRun(*row)


async def running(db: Database) -> bool:
    """Return True while some process's fit is recorded as running."""
    async with db.read() as conn:
        return (
            await conn.fetchone("SELECT 1 FROM model_runs WHERE status = 'running' LIMIT 1")
            is not None
        )


async def running_for(db: Database) -> float | None:
    """Return how many seconds the running fit has run (any process), or None if none runs."""
    async with db.read() as conn:
        started = await conn.fetchval(
            "SELECT MIN(started_at) FROM model_runs WHERE status = 'running'"
        )
    return None if started is None else max(0.0, time.time() - float(started))
