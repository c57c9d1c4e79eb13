"""/retrain for admins, and the scheduled refit loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import formatting as fmt
from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.client import MovieBot

log = logging.getLogger(__name__)


def require_manage_server(interaction: discord.Interaction) -> None:
    """Refuse members without Manage Server, whatever the server's command settings say."""
    if interaction.guild_id is None:
        raise UserFacingError("Retraining is run from a server, by its admins.")
    if not interaction.permissions.manage_guild:
        raise UserFacingError(
            "Only members with the Manage Server permission can retrain the model."
        )


class Admin(commands.Cog):
    """Model maintenance."""

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot
        self.service = bot.service

    async def cog_load(self) -> None:
        minutes = self.bot.settings.refit_interval_minutes
        if minutes > 0:
            self.refit_loop.change_interval(minutes=minutes)
            self.refit_loop.start()

    async def cog_unload(self) -> None:
        self.refit_loop.cancel()

    @tasks.loop(minutes=60, reconnect=True)
    async def refit_loop(self) -> None:
        """Refit when enough ratings changed; never let a failure stop the loop."""
        try:
            result = await self.service.scheduled_refit()
        except UserFacingError as exc:
            log.warning("Scheduled refit failed: %s", exc)
            return
        except Exception:
            log.exception("Scheduled refit crashed; will retry next cycle")
            return
        if result is not None:
            log.info("Scheduled refit done: %s", fmt.plain(fmt.retrained(result)))

    @refit_loop.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    @app_commands.command(
        name="retrain", description="Refit the model on everyone's latest ratings."
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def retrain(self, interaction: discord.Interaction) -> None:
        require_manage_server(interaction)
        # A second request while one runs gets the service's "already running" reply.
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.service.retrain("admin", interaction.user.id)
        await interaction.followup.send(fmt.retrained(result), ephemeral=True)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Admin(bot))
