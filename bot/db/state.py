"""Queries on ``bot_state``, the bot's small key-value memory."""

from __future__ import annotations

from bot.db import Database


async def get(db: Database, key: str) -> str | None:
    """Return the stored value for ``key``, or None."""
    async with db.read() as conn:
        value = await conn.fetchval("SELECT value FROM bot_state WHERE key = ?", (key,))
    return None if value is None else str(value)


async def put(db: Database, key: str, value: str) -> None:
    """Store ``value`` under ``key``."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO bot_state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
