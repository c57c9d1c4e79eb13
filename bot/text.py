"""Making member-typed text safe to echo back."""

from __future__ import annotations

ZERO_WIDTH_SPACE = "\u200b"


def escape(text: str, limit: int = 100) -> str:
    """Return user-typed text safe to echo: cut short, no Markdown, and no mention of anyone.

    Every ``@`` gets a zero-width space after it, so no ``@everyone``, ``@here``, ``<@id>`` or
    ``<@&role>`` can form, whatever Discord's mention rules are. (Replies also disable
    mentions; this keeps the echoed text from even looking like one.)
    """
    import discord.utils  # here, so the command line starts without loading discord.py

    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return discord.utils.escape_markdown(short).replace("@", "@" + ZERO_WIDTH_SPACE)
