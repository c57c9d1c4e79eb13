"""The Discord client: owns the service and settings, loads the cogs, syncs commands."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.errors import report
from bot.errors import UserFacingError
from bot.service import MovieService
from bot.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
SHUTTING_DOWN = "I'm restarting right now; please try again in a minute."
COGS = (
    "bot.cogs.ratings",
    "bot.cogs.recommend",
    "bot.cogs.stats",
    "bot.cogs.movienight",
    "bot.cogs.onboarding",
    "bot.cogs.admin",
    "bot.cogs.help",
)


class MovieTree(app_commands.CommandTree["MovieBot"]):
    """Command tree with a per-member burst limit and one error handler for every command."""

    def __init__(self, client: MovieBot) -> None:
        super().__init__(client)
        settings = client.settings
        # Buckets of members idle for a whole window are dropped as new ones are made.
        self.cooldowns: commands.CooldownMapping[discord.Interaction[MovieBot]] = (
            commands.CooldownMapping.from_cooldown(
                settings.command_cooldown_burst,
                settings.command_cooldown_seconds,
                lambda interaction: interaction.user.id,
            )
        )

    async def interaction_check(self, interaction: discord.Interaction[MovieBot], /) -> bool:
        """Refuse commands while shutting down, and a member's bursts (not autocomplete)."""
        if interaction.type is discord.InteractionType.autocomplete:
            return True
        bot = interaction.client
        if bot.draining:
            raise UserFacingError(SHUTTING_DOWN)
        bot.track(asyncio.current_task())
        bucket = self.cooldowns.get_bucket(interaction)
        retry_after = bucket.update_rate_limit() if bucket is not None else None
        if retry_after:
            assert bucket is not None
            raise app_commands.CommandOnCooldown(bucket, retry_after)
        return True

    async def on_error(
        self, interaction: discord.Interaction[MovieBot], error: app_commands.AppCommandError, /
    ) -> None:
        """Answer through the Discord layer's one error handler."""
        command = interaction.command.qualified_name if interaction.command else "?"
        await report(interaction, error, f"Command /{command}")


class MovieBot(commands.AutoShardedBot):
    """The bot. ``main()`` opens the service and reads the settings and hands them in.

    It runs the gateway shards ``SHARD_IDS`` of ``SHARD_COUNT`` (by default all the shards
    Discord recommends, which is one for a bot in fewer than 2,500 servers); several processes
    can split the shards between them over one shared database. With ``sync_only`` it publishes
    the slash commands globally and disconnects. Extra keyword options go to
    :class:`discord.AutoShardedClient` (tests shorten ``guild_ready_timeout``);
    ``identify_interval`` is the wait between two shards' logins (Discord allows one per 5 s).
    """

    def __init__(
        self,
        service: MovieService,
        settings: Settings,
        *,
        sync_only: bool = False,
        identify_interval: float = 5.0,
        **options: Any,
    ) -> None:
        self.service = service
        self.settings = settings
        self.sync_only = sync_only
        self.draining = False
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.identify_interval = identify_interval
        if settings.shard_id_list():
            options["shard_ids"] = settings.shard_id_list()
        super().__init__(
            shard_count=settings.shard_count,
            command_prefix=commands.when_mentioned,
            # voice_states (not privileged): who is in the voice channel for /movienight.
            intents=discord.Intents(guilds=True, voice_states=True),
            tree_cls=MovieTree,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,
        )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Space the shards' logins out as Discord asks (the first logs in at once)."""
        if not initial and self.identify_interval > 0:
            await asyncio.sleep(self.identify_interval)

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
        if not force and await self.service.commands_synced(digest):
            log.info("Slash commands unchanged since the last global sync")
            return False
        synced = await self.tree.sync()
        await self.service.remember_commands_synced(digest)
        log.info("Synced %d global slash commands (can take up to an hour to appear)", len(synced))
        return True

    def track(self, task: asyncio.Task[Any] | None) -> None:
        """Remember a running command or component callback, so shutdown can wait for it."""
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def shutdown(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop gracefully: refuse new commands, stop a refit, let running commands finish.

        Then close the gateway and the HTTP session (``start()`` returns); the caller closes
        the service and its database.
        """
        self.draining = True
        self.service.stop_refit()
        running = {t for t in self._in_flight if not t.done() and t is not asyncio.current_task()}
        if running:
            log.info("Waiting up to %.0f s for %d running command(s)", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        await self.close()

    async def on_ready(self) -> None:
        """Log who we are once connected."""
        assert self.user is not None
        log.info(
            "Connected as %s (id %s) to %d server(s) on shard(s) %s of %s",
            self.user,
            self.user.id,
            len(self.guilds),
            ",".join(str(i) for i in sorted(self.shards)),
            self.shard_count,
        )
