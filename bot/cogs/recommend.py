"""/recommend and /similar: personal picks (with reasons and a way to hide them), look-alikes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt
from bot.cogs.views import OwnedView, answer, title_autocomplete
from bot.results import Pick, Recommendations, SimilarMovies
from bot.service import MAX_RECOMMENDATIONS, MovieService
from bot.stars import stars

if TYPE_CHECKING:
    from bot.client import MovieBot

EMBED_DESCRIPTION_LIMIT = 4096
HALF_STARS = tuple(x / 2 for x in range(10, 0, -1))  # 5, 4.5, ... 0.5


def limited(lines: list[str]) -> str:
    """Join lines, stopping before Discord's embed description limit."""
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > EMBED_DESCRIPTION_LIMIT:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def picks_embed(picks: Recommendations) -> discord.Embed:
    """Return the recommendation list as an embed (lines cut to Discord's limits)."""
    embed = discord.Embed(
        title=fmt.picks_title(picks),
        description=limited(fmt.picks_lines(picks)),
        colour=discord.Colour.gold(),
    )
    embed.set_footer(text=fmt.plain(fmt.picks_note(picks))[:2048])
    return embed


class HidePicksView(OwnedView):
    """Under a recommendation list: "Not interested in…" and "Seen it…" menus of the picks."""

    def __init__(self, owner_id: int, service: MovieService, picks: tuple[Pick, ...]) -> None:
        super().__init__(owner_id)
        self.service = service
        self.picks = {str(p.movie.movie_id): p.movie for p in picks[:25]}
        self.hide = self._menu("Not interested in…", self._not_interested)
        self.seen = self._menu("Seen it: rate…", self._seen)

    def _menu(self, placeholder: str, callback: object) -> discord.ui.Select[HidePicksView]:
        select: discord.ui.Select[HidePicksView] = discord.ui.Select(
            placeholder=placeholder,
            options=[
                discord.SelectOption(label=m.label[:100], value=key)
                for key, m in self.picks.items()
            ],
        )
        select.callback = callback  # type: ignore[assignment]
        self.add_item(select)
        return select

    async def _not_interested(self, interaction: discord.Interaction) -> None:
        movie = self.picks[self.hide.values[0]]
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.service.dismiss(self.owner_id, movie.movie_id)
        await interaction.followup.send(fmt.dismissed(movie), ephemeral=True)

    async def _seen(self, interaction: discord.Interaction) -> None:
        movie = self.picks[self.seen.values[0]]
        view = RateSeenView(self.owner_id, self.service, movie.movie_id)
        await interaction.response.send_message(
            f"How would you rate {fmt.movie_name(movie)}?", view=view, ephemeral=True
        )


class RateSeenView(OwnedView):
    """The ten half-star values, for a pick the member has seen."""

    def __init__(self, owner_id: int, service: MovieService, movie_id: int) -> None:
        super().__init__(owner_id)
        self.service = service
        self.movie_id = movie_id
        select: discord.ui.Select[RateSeenView] = discord.ui.Select(
            placeholder="Your rating",
            options=[
                discord.SelectOption(label=f"{stars(v)} ({v:g})", value=f"{v:g}")
                for v in HALF_STARS
            ],
        )
        select.callback = self._rated  # type: ignore[method-assign]
        self.select = select
        self.add_item(select)

    async def _rated(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # the write may wait on a busy database
        result = await self.service.rate(
            self.owner_id, self.movie_id, self.select.values[0], interaction.guild_id
        )
        self.stop()
        await interaction.edit_original_response(content=fmt.rated(result), view=None)


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
    @app_commands.describe(
        count="How many movies (1-25, default 10)",
        genre="Only this genre",
        discover="Fewer blockbusters: less obvious picks",
    )
    @app_commands.autocomplete(genre=genre_autocomplete)
    async def recommend(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 1, MAX_RECOMMENDATIONS] = 10,
        genre: app_commands.Range[str, 1, 40] | None = None,
        discover: bool = False,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        picks = await self.service.recommend(interaction.user.id, count, genre, discover=discover)
        if picks.picks:
            view = HidePicksView(interaction.user.id, self.service, picks.picks)
            await interaction.followup.send(embed=picks_embed(picks), view=view, ephemeral=True)
        else:
            await interaction.followup.send(embed=picks_embed(picks), ephemeral=True)

    @app_commands.command(name="similar", description="Movies closest to one movie.")
    @app_commands.describe(title="Start typing and pick the movie")
    @app_commands.autocomplete(title=title_autocomplete)
    async def similar(
        self, interaction: discord.Interaction, title: app_commands.Range[str, 1, 200]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        def show(result: SimilarMovies) -> str:
            text = f"**{fmt.similar_title(result)}**\n" + "\n".join(fmt.similar_lines(result))
            return text[:2000]

        await answer(interaction, await self.service.similar(title), show)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Recommend(bot))
