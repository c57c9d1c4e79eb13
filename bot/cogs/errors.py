"""The Discord layer's one home for errors: what a member is told, what is logged.

Slash commands (``MovieTree.on_error``) and buttons and menus (``OwnedView.on_error``) both end
here. A :class:`~bot.errors.UserFacingError`'s text is the reply; anything else is logged with
its traceback and answered with an apology; an interaction Discord already gave up on is
logged as a warning and not answered.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.errors import AmbiguousTitleError, UserFacingError

log = logging.getLogger(__name__)

UNKNOWN_INTERACTION = 10062  # Discord's error code for an expired interaction token
APOLOGY = "Sorry, something went wrong on my side. It has been logged; please try again later."
NO_MENTIONS = discord.AllowedMentions.none()


async def reply(interaction: discord.Interaction[Any], text: str, **kwargs: Any) -> None:
    """Send an ephemeral reply, or a follow-up if the interaction was already answered."""
    kwargs.setdefault("allowed_mentions", NO_MENTIONS)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, **kwargs)
        else:
            await interaction.response.send_message(text, ephemeral=True, **kwargs)
    except discord.HTTPException:
        log.warning("Could not deliver a reply to user %s", interaction.user.id, exc_info=True)


def _expired(error: BaseException) -> bool:
    return isinstance(error, discord.NotFound) and error.code == UNKNOWN_INTERACTION


async def report(interaction: discord.Interaction[Any], error: BaseException, where: str) -> None:
    """Tell the member what went wrong; log anything that is not their mistake.

    ``where`` names the command or component for the log.
    """
    original = getattr(error, "original", error)
    if _expired(original):
        # Discord gave up on the interaction (3 s passed); there is no one to answer now.
        log.warning(
            "An interaction from user %s expired before it was answered", interaction.user.id
        )
        return
    if isinstance(original, AmbiguousTitleError):
        # Commands offer a menu themselves; reaching here means a plain list is enough.
        text = f"{original} " + ", ".join(m.label for m in original.candidates[:10])
    elif isinstance(original, UserFacingError):
        text = str(original)
    elif isinstance(error, app_commands.CommandOnCooldown):
        text = f"You're going a bit fast. Try again in {error.retry_after:.0f} s."
    elif isinstance(error, app_commands.CheckFailure):
        text = str(error) or "You can't use this command here."
    else:
        log.error("%s failed for user %s", where, interaction.user.id, exc_info=original)
        text = APOLOGY
    await reply(interaction, text)
