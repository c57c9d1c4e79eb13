"""/rate, /unrate, /myratings, /export and /forgetme."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt
from bot.cogs.errors import NO_MENTIONS, report
from bot.results import Choice, RatingsPage
from bot.service import MovieService
from bot.stars import parse_rating
from recommender.catalog import Movie

if TYPE_CHECKING:
    from bot.client import MovieBot

T = TypeVar("T")
VIEW_TIMEOUT = 180.0


class OwnedView(discord.ui.View):
    """A view only the member who opened it may use."""

    def __init__(self, owner_id: int) -> None:
        super().__init__(timeout=VIEW_TIMEOUT)
        self.owner_id = owner_id

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(
                "These buttons belong to someone else's command.", ephemeral=True
            )
            return False
        track = getattr(interaction.client, "track", None)
        if track is not None:
            track(asyncio.current_task())  # shutdown lets the click's callback finish
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item, /
    ) -> None:
        await report(interaction, error, f"The {type(self).__name__} component")


class ChooseMovieView(OwnedView):
    """A menu of candidate movies for an ambiguous title."""

    def __init__(
        self,
        owner_id: int,
        candidates: tuple[Movie, ...],
        on_pick: Callable[[Movie], Awaitable[str]],
    ) -> None:
        super().__init__(owner_id)
        self.candidates = {str(m.movie_id): m for m in candidates[:25]}
        self.on_pick = on_pick
        select: discord.ui.Select[ChooseMovieView] = discord.ui.Select(
            placeholder="Choose the movie you mean",
            options=[
                discord.SelectOption(
                    label=m.label[:100], value=key, description=", ".join(m.genres)[:100] or None
                )
                for key, m in self.candidates.items()
            ],
        )
        select.callback = self._picked  # type: ignore[method-assign]
        self.select = select
        self.add_item(select)

    async def _picked(self, interaction: discord.Interaction) -> None:
        movie = self.candidates[self.select.values[0]]
        # Answer Discord first: the write may wait on a busy database longer than 3 s.
        await interaction.response.defer()
        text = await self.on_pick(movie)
        self.stop()
        await interaction.edit_original_response(
            content=text, view=None, allowed_mentions=NO_MENTIONS
        )


class RatingsPageView(OwnedView):
    """Previous/next buttons over a member's ratings."""

    def __init__(self, owner_id: int, service: MovieService, page: RatingsPage) -> None:
        super().__init__(owner_id)
        self.service = service
        self.page = page
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page.page <= 0
        self.next.disabled = self.page.page >= self.page.pages - 1

    def embed(self) -> discord.Embed:
        embed = discord.Embed(
            title=fmt.ratings_title(self.page), description="\n".join(fmt.ratings_lines(self.page))
        )
        embed.set_footer(text=fmt.ratings_footer(self.page))
        return embed

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        self.page = await self.service.my_ratings(self.owner_id, page)
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.embed(), view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.page.page - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.page.page + 1)


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

    async def title_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Suggest catalog titles as the member types; the value carries the movie id."""
        return [
            app_commands.Choice(name=m.label[:100], value=f"#{m.movie_id}")
            for m in self.service.complete(current, 25)
        ]

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
        await self._answer(interaction, outcome, fmt.rated)

    @app_commands.command(name="unrate", description="Remove one of your ratings.")
    @app_commands.describe(title="The movie whose rating to remove")
    @app_commands.autocomplete(title=rated_autocomplete)
    async def unrate(
        self, interaction: discord.Interaction, title: app_commands.Range[str, 1, 200]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.service.unrate_title(interaction.user.id, title)
        await self._answer(interaction, outcome, fmt.unrated)

    async def _answer(
        self, interaction: discord.Interaction, outcome: T | Choice[T], show: Callable[[T], str]
    ) -> None:
        """Send the result, or the menu that finishes the job once the member picks a movie."""
        if isinstance(outcome, Choice):
            choice = outcome

            async def pick(movie: Movie) -> str:
                return show(await choice.run(movie))

            view = ChooseMovieView(interaction.user.id, choice.candidates, pick)
            await interaction.followup.send(
                choice.question, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        await interaction.followup.send(show(outcome), ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="myratings", description="See your ratings (only you can see them).")
    async def myratings(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        page = await self.service.my_ratings(interaction.user.id, 0)
        view = RatingsPageView(interaction.user.id, self.service, page)
        if page.pages > 1:
            await interaction.followup.send(embed=view.embed(), view=view, ephemeral=True)
        else:
            await interaction.followup.send(embed=view.embed(), ephemeral=True)

    @app_commands.command(name="export", description="Download your ratings as a CSV file.")
    async def export(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.service.export(interaction.user.id)
        file = discord.File(io.BytesIO(data.encode("utf-8")), filename="moviebot-ratings.csv")
        await interaction.followup.send(
            "Here are your ratings (movieId, title, rating, timestamp).", file=file, ephemeral=True
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
