"""The Discord client: owns the service and settings, loads the cogs, syncs and handles errors."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import state as state_store
from bot.errors import AmbiguousTitleError, UserFacingError
from bot.service import MovieService
from bot.settings import Settings

log = logging.getLogger(__name__)

COGS = (
    "bot.cogs.ratings",
    "bot.cogs.recommend",
    "bot.cogs.stats",
    "bot.cogs.admin",
    "bot.cogs.help",
)
COMMAND_HASH_KEY = "global_commands_sha1"
UNKNOWN_INTERACTION = 10062  # Discord's error code for an expired interaction token
APOLOGY = "Sorry, something went wrong on my side. It has been logged; please try again later."


class MovieTree(app_commands.CommandTree["MovieBot"]):
    """Command tree with a per-member burst limit and one error handler for every command."""

    def __init__(self, client: MovieBot) -> None:
        super().__init__(client)
        self._buckets: dict[int, app_commands.Cooldown] = {}

    async def interaction_check(self, interaction: discord.Interaction[MovieBot], /) -> bool:
        """Refuse a member's bursts (autocomplete does not count)."""
        if interaction.type is discord.InteractionType.autocomplete:
            return True
        settings = interaction.client.settings
        bucket = self._buckets.get(interaction.user.id)
        if bucket is None:
            bucket = app_commands.Cooldown(
                settings.command_cooldown_burst, settings.command_cooldown_seconds
            )
            self._buckets[interaction.user.id] = bucket
            if len(self._buckets) > 10_000:
                self._buckets = {interaction.user.id: bucket}
        retry_after = bucket.update_rate_limit()
        if retry_after:
            raise app_commands.CommandOnCooldown(bucket, retry_after)
        return True

    async def on_error(
        self, interaction: discord.Interaction[MovieBot], error: app_commands.AppCommandError, /
    ) -> None:
        """Tell the member what went wrong; log anything that is not their mistake."""
        original = getattr(error, "original", error)
        if isinstance(original, discord.NotFound) and original.code == UNKNOWN_INTERACTION:
            # Discord gave up on the interaction (3 s passed); there is no one to answer now.
            log.warning(
                "An interaction from user %s expired before it was answered", interaction.user.id
            )
            return
        if isinstance(original, AmbiguousTitleError):
            # Cogs offer a choice themselves; reaching here means a plain reply is enough.
            text = f"{original} " + ", ".join(m.label for m in original.candidates[:10])
        elif isinstance(original, UserFacingError):
            text = str(original)
        elif isinstance(error, app_commands.CommandOnCooldown):
            text = f"You're going a bit fast. Try again in {error.retry_after:.0f} s."
        elif isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
            text = str(error) or "You can't use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "Command /%s failed for user %s", command, interaction.user.id, exc_info=original
            )
            text = APOLOGY
        await reply(interaction, text)


async def reply(interaction: discord.Interaction[Any], text: str, **kwargs: Any) -> None:
    """Send an ephemeral reply, or a follow-up if the interaction was already answered."""
    kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, **kwargs)
        else:
            await interaction.response.send_message(text, ephemeral=True, **kwargs)
    except discord.HTTPException:
        log.warning("Could not deliver a reply to user %s", interaction.user.id, exc_info=True)


class MovieBot(commands.Bot):
    """The bot. ``main()`` builds the service and settings and hands them in.

    With ``sync_only`` it publishes the slash commands globally and disconnects.
    """

    def __init__(self, service: MovieService, settings: Settings, *, sync_only: bool = False):
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            tree_cls=MovieTree,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )
        self.service = service
        self.settings = settings
        self.sync_only = sync_only

    async def setup_hook(self) -> None:
        """Load the cogs and sync commands (dev server now; globally only when they changed)."""
        for cog in COGS:
            await self.load_extension(cog)
        if self.sync_only:
            await self.sync_global(force=True)
            await self.close()
            return
        if self.settings.dev_guild_id:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("Synced %d commands to the dev server %s", len(synced), guild.id)
        await self.sync_global(force=False)

    def command_hash(self) -> str:
        """Return a hash of the global command definitions, to sync only when they change."""
        payload = sorted(
            (c.to_dict(self.tree) for c in self.tree.get_commands()), key=lambda c: c["name"]
        )
        return hashlib.sha1(
            json.dumps(payload, sort_keys=True).encode(), usedforsecurity=False
        ).hexdigest()

    async def sync_global(self, *, force: bool) -> bool:
        """Publish the global commands if they changed since the last sync (or if forced)."""
        digest = self.command_hash()
        if not force and await state_store.get(self.service.db, COMMAND_HASH_KEY) == digest:
            log.info("Slash commands unchanged since the last global sync")
            return False
        synced = await self.tree.sync()
        await state_store.put(self.service.db, COMMAND_HASH_KEY, digest)
        log.info("Synced %d global slash commands (can take up to an hour to appear)", len(synced))
        return True

    async def on_ready(self) -> None:
        """Log who we are once connected."""
        assert self.user is not None
        log.info(
            "Connected as %s (id %s) to %d server(s)", self.user, self.user.id, len(self.guilds)
        )
