"""/help."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt

if TYPE_CHECKING:
    from bot.client import MovieBot


class Help(commands.Cog):
    """What the bot can do."""

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What moviebot can do.")
    async def help(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(
            title="moviebot",
            description="Rate movies you've seen; get picks you'll like.\n\n"
            + "\n".join(fmt.help_lines()),
        )
        embed.set_footer(text="Scores rank movies for you; they are not predicted stars.")
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Help(bot))
