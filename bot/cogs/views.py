"""Views and helpers the cogs share: views only their owner may use, the "which movie?" menu,
sending a result or that menu, and title autocomplete."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot.cogs.errors import NO_MENTIONS, report
from bot.results import Choice
from recommender.catalog import Movie

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


class PagedView(OwnedView):
    """Previous/next buttons over a paged list; a subclass loads and draws a page."""

    def position(self) -> tuple[int, int]:
        """Return (this page, number of pages), 0-based page."""
        raise NotImplementedError

    async def load(self, page: int) -> None:
        """Fetch page ``page`` (0-based; out-of-range pages are clamped by the service)."""
        raise NotImplementedError

    def embed(self) -> discord.Embed:
        """Draw the current page."""
        raise NotImplementedError

    def sync(self) -> None:
        """Enable only the buttons that lead somewhere."""
        page, pages = self.position()
        self.previous.disabled = page <= 0
        self.next.disabled = page >= pages - 1

    async def show(self, interaction: discord.Interaction, page: int) -> None:
        """Acknowledge the click, load the page, and redraw the message."""
        await interaction.response.defer()  # loading reads the database
        await self.load(page)
        self.sync()
        await interaction.edit_original_response(embed=self.embed(), view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self.show(interaction, self.position()[0] - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self.show(interaction, self.position()[0] + 1)


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


async def answer(
    interaction: discord.Interaction, outcome: T | Choice[T], show: Callable[[T], str]
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


async def title_autocomplete(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Suggest catalog titles as the member types; the value carries the movie id."""
    service = interaction.client.service
    return [
        app_commands.Choice(name=m.label[:100], value=f"#{m.movie_id}")
        for m in service.complete(current, 25)
    ]
