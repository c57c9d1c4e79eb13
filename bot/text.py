"""Making member-typed text safe to echo back."""

from __future__ import annotations

import discord.utils


def escape(text: str, limit: int = 100) -> str:
    """Return user-typed text safe to echo: cut short, no Markdown, no mentions."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(short))
