"""/stats: the server's numbers with a chart."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt

if TYPE_CHECKING:
    from bot.client import MovieBot


class Stats(commands.Cog):
    """Server charts."""

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot
        self.service = bot.service

    @app_commands.command(
        name="stats", description="This server's ratings: who, how many, top films."
    )
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        stats = await self.service.stats(interaction.guild_id)
        embed = discord.Embed(
            title="Movie stats for this server", description="\n".join(fmt.stats_lines(stats))
        )
        if stats.chart_png is None:
            await interaction.followup.send(embed=embed)
            return
        embed.set_image(url="attachment://ratings.png")
        file = discord.File(io.BytesIO(stats.chart_png), filename="ratings.png")
        await interaction.followup.send(embed=embed, file=file)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Stats(bot))
