"""/rate, /unrate, /myratings, /export and /forgetme."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt
from bot.cogs.views import OwnedView, PagedView, answer, title_autocomplete
from bot.results import DismissedMovie, RatingsPage
from bot.service import MovieService
from bot.stars import parse_rating

if TYPE_CHECKING:
    from bot.client import MovieBot


class RatingsPageView(PagedView):
    """Previous/next buttons over a member's ratings, and their "Not interested" page with undo."""

    def __init__(self, owner_id: int, service: MovieService, page: RatingsPage) -> None:
        super().__init__(owner_id)
        self.service = service
        self.page = page
        self.hidden: tuple[DismissedMovie, ...] = ()
        self.showing_hidden = False
        self.undo: discord.ui.Select[RatingsPageView] | None = None
        self.sync()

    def position(self) -> tuple[int, int]:
        return (0, 1) if self.showing_hidden else (self.page.page, self.page.pages)

    async def load(self, page: int) -> None:
        if self.showing_hidden:
            self.hidden = await self.service.dismissed(self.owner_id)
        else:
            self.page = await self.service.my_ratings(self.owner_id, page)

    def sync(self) -> None:
        super().sync()
        self.toggle.label = "My ratings" if self.showing_hidden else "Not interested"
        if self.undo is not None:
            self.remove_item(self.undo)
            self.undo = None
        if self.showing_hidden and self.hidden:
            undo: discord.ui.Select[RatingsPageView] = discord.ui.Select(
                placeholder="Show one of these in my picks again…",
                options=[
                    discord.SelectOption(label=item.movie.label[:100], value=str(i))
                    for i, item in enumerate(self.hidden[:25])
                ],
            )
            undo.callback = self._undo  # type: ignore[method-assign]
            self.undo = undo
            self.add_item(undo)

    def embed(self) -> discord.Embed:
        if self.showing_hidden:
            return discord.Embed(
                title=f"Not interested ({len(self.hidden)})",
                description="\n".join(fmt.dismissed_lines(self.hidden[:25])),
            )
        embed = discord.Embed(
            title=fmt.ratings_title(self.page), description="\n".join(fmt.ratings_lines(self.page))
        )
        embed.set_footer(text=fmt.ratings_footer(self.page))
        return embed

    @discord.ui.button(label="Not interested", style=discord.ButtonStyle.secondary)
    async def toggle(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.showing_hidden = not self.showing_hidden
        await self.show(interaction, self.page.page)

    async def _undo(self, interaction: discord.Interaction) -> None:
        assert self.undo is not None
        movie = self.hidden[int(self.undo.values[0])].movie
        await interaction.response.defer()
        await self.service.undismiss(self.owner_id, movie.movie_id)
        await self.load(0)
        self.sync()
        await interaction.edit_original_response(embed=self.embed(), view=self)
        await interaction.followup.send(fmt.undismissed(movie), ephemeral=True)


class ForgetView(OwnedView):
    """Confirmation before deleting all of a member's ratings."""

    def __init__(self, owner_id: int, service: MovieService) -> None:
        super().__init__(owner_id)
        self.service = service

    @discord.ui.button(label="Delete all my ratings", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()  # the delete may wait on a busy database
        count = await self.service.forget(self.owner_id)
        self.stop()
        await interaction.edit_original_response(content=fmt.forgot(count), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


class Ratings(commands.Cog):
    """Members' ratings."""

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot
        self.service = bot.service

    async def rated_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Suggest the member's own rated movies."""
        mine = await self.service.rated_movies(interaction.user.id)
        if not current.strip():
            movies = [m for m in (self.service.find_id(i) for i in mine) if m is not None]
        else:
            movies = [m for m in self.service.complete(current, 200) if m.movie_id in mine]
        return [
            app_commands.Choice(name=m.label[:100], value=f"#{m.movie_id}") for m in movies[:25]
        ]

    @app_commands.command(name="rate", description="Rate a movie from 0.5 to 5 stars.")
    @app_commands.describe(
        title="Start typing and pick the movie", rating="0.5 to 5, in half stars (e.g. 4.5)"
    )
    @app_commands.autocomplete(title=title_autocomplete)
    async def rate(
        self,
        interaction: discord.Interaction,
        title: app_commands.Range[str, 1, 200],
        rating: app_commands.Range[float, 0.5, 5.0],
    ) -> None:
        stars = parse_rating(rating)
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.service.rate_title(
            interaction.user.id, title, stars, interaction.guild_id
        )
        await answer(interaction, outcome, fmt.rated)

    @app_commands.command(name="unrate", description="Remove one of your ratings.")
    @app_commands.describe(title="The movie whose rating to remove")
    @app_commands.autocomplete(title=rated_autocomplete)
    async def unrate(
        self, interaction: discord.Interaction, title: app_commands.Range[str, 1, 200]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.service.unrate_title(interaction.user.id, title)
        await answer(interaction, outcome, fmt.unrated)

    @app_commands.command(name="myratings", description="See your ratings (only you can see them).")
    async def myratings(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        page = await self.service.my_ratings(interaction.user.id, 0)
        view = RatingsPageView(interaction.user.id, self.service, page)
        await interaction.followup.send(embed=view.embed(), view=view, ephemeral=True)

    @app_commands.command(name="export", description="Download your ratings as a CSV file.")
    async def export(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        ratings = await self.service.export(interaction.user.id)
        hidden = await self.service.export_dismissals(interaction.user.id)
        files = [
            discord.File(io.BytesIO(text.encode("utf-8")), filename=name)
            for text, name in (
                (ratings, "moviebot-ratings.csv"),
                (hidden, "moviebot-not-interested.csv"),
            )
        ]
        await interaction.followup.send(
            "Here are your ratings (movieId, title, rating, timestamp) and the films you marked "
            "“Not interested” (movieId, title, dismissed_at).",
            files=files,
            ephemeral=True,
        )

    @app_commands.command(name="forgetme", description="Delete all your ratings.")
    async def forgetme(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "This deletes all your ratings and removes them from your picks right away and from "
            "the model at the next retrain. It can't be undone.",
            view=ForgetView(interaction.user.id, self.service),
            ephemeral=True,
        )


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Ratings(bot))
