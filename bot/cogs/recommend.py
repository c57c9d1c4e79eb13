"""/recommend: personal picks from the live model and the member's current ratings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt
from bot.results import Recommendations
from bot.service import MAX_RECOMMENDATIONS

if TYPE_CHECKING:
    from bot.client import MovieBot

EMBED_DESCRIPTION_LIMIT = 4096


def picks_embed(picks: Recommendations) -> discord.Embed:
    """Return the recommendation list as an embed (lines cut to Discord's limits)."""
    lines: list[str] = []
    used = 0
    for line in fmt.picks_lines(picks):
        if used + len(line) + 1 > EMBED_DESCRIPTION_LIMIT:
            break
        lines.append(line)
        used += len(line) + 1
    embed = discord.Embed(
        title=fmt.picks_title(picks), description="\n".join(lines), colour=discord.Colour.gold()
    )
    embed.set_footer(text=fmt.plain(fmt.picks_note(picks))[:2048])
    return embed


class Recommend(commands.Cog):
    """Recommendations."""

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot
        self.service = bot.service

    async def genre_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Suggest genre names."""
        text = current.strip().casefold()
        return [
            app_commands.Choice(name=g, value=g)
            for g in self.service.genres()
            if text in g.casefold()
        ][:25]

    @app_commands.command(name="recommend", description="Get movie picks based on your ratings.")
    @app_commands.describe(count="How many movies (1-25, default 10)", genre="Only this genre")
    @app_commands.autocomplete(genre=genre_autocomplete)
    async def recommend(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 1, MAX_RECOMMENDATIONS] = 10,
        genre: app_commands.Range[str, 1, 40] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        picks = await self.service.recommend(interaction.user.id, count, genre)
        await interaction.followup.send(embed=picks_embed(picks), ephemeral=True)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Recommend(bot))
