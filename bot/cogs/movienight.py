"""/movienight and /watched: group picks for a voice channel (or a lobby), a vote, a watched list.

The night's message lives in the channel (not in the interaction), so it can be edited for the
whole vote, hours after the command. Its buttons are dynamic items whose custom ids carry the
night id, so they keep working after a restart; the state is in the database. A loop closes
lobbies and votes whose time is up.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import formatting as fmt
from bot.cogs.errors import NO_MENTIONS, report
from bot.cogs.views import PagedView, answer, title_autocomplete
from bot.errors import UserFacingError
from bot.nights import MAX_PICKS, NightView, WatchedPage
from recommender.catalog import Movie

if TYPE_CHECKING:
    from bot.client import MovieBot

log = logging.getLogger(__name__)

EMBED_LIMIT = 4096


def mention(user_id: int) -> str:
    """Show a member by mention (the bot never pings: allowed mentions are off)."""
    return f"<@{user_id}>"


def night_embed(view: NightView) -> discord.Embed:
    """Return a night's message as an embed."""
    text = "\n".join(fmt.night_lines(view, mention))
    return discord.Embed(
        title=fmt.night_title(view)[:256],
        description=text[:EMBED_LIMIT],
        colour=discord.Colour.dark_magenta(),
    )


def night_buttons(view: NightView) -> discord.ui.View | None:
    """Return the buttons a night shows now (none once it is closed)."""
    night = view.night
    if not view.open:
        return None
    buttons = discord.ui.View(timeout=None)
    if night.state == "lobby":
        buttons.add_item(NightButton(night.id, "join", label="I'm in"))
        buttons.add_item(NightButton(night.id, "start", label="Start the vote"))
        return buttons
    for choice in view.choices:
        label = f"{choice.position}. {choice.movie.label}"[:80]
        buttons.add_item(NightButton(night.id, "vote", choice.position, label=label))
    buttons.add_item(NightButton(night.id, "close", label="Close the vote"))
    return buttons


class NightButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"night:(?P<night>[0-9]{1,19}):(?P<action>join|start|vote|close)(?::(?P<pos>[0-9]))?",
):
    """A movie night's button; its custom id says which night and what to do."""

    def __init__(self, night_id: int, action: str, position: int = 0, *, label: str) -> None:
        custom_id = f"night:{night_id}:{action}" + (f":{position}" if action == "vote" else "")
        style = {
            "join": discord.ButtonStyle.success,
            "start": discord.ButtonStyle.primary,
            "vote": discord.ButtonStyle.secondary,
            "close": discord.ButtonStyle.danger,
        }[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id))
        self.night_id = night_id
        self.action = action
        self.position = position

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> NightButton:
        """Rebuild the button from its custom id (also after a restart)."""
        label = item.label if isinstance(item, discord.ui.Button) else None
        return cls(int(match["night"]), match["action"], int(match["pos"] or 0), label=label or "")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Join, start, vote or close; then show the night as it is now."""
        bot: MovieBot = interaction.client
        track = getattr(bot, "track", None)
        if track is not None:
            track(asyncio.current_task())  # shutdown lets the click finish
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            nights = bot.service.nights
            user = interaction.user.id
            admin = bool(interaction.permissions.manage_guild)
            if self.action == "join":
                view = await nights.join(self.night_id, user)
                note = "You're in. The vote starts when the lobby closes."
            elif self.action == "start":
                view = await nights.begin_vote(self.night_id, user, admin)
                note = "The vote is open."
            elif self.action == "vote":
                view, previous = await nights.vote(self.night_id, user, self.position)
                choice = next(c for c in view.choices if c.position == self.position)
                note = f"You voted for {fmt.movie_name(choice.movie)}" + (
                    " (your vote moved)." if previous not in (None, self.position) else "."
                )
            else:
                view = await nights.close(self.night_id, user, admin)
                note = "Closed." if view.winner is None else f"Closed: {view.winner.label} wins."
            await show_night(bot, view)
            await interaction.followup.send(note, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except Exception as exc:  # the one error home answers and logs
            await report(interaction, exc, f"The movie night {self.action} button")


async def show_night(bot: MovieBot, view: NightView) -> None:
    """Edit the night's message in its channel to show the night as it is now."""
    if view.night.message_id is None:
        return
    message = bot.get_partial_messageable(view.night.channel_id).get_partial_message(
        view.night.message_id
    )
    buttons = night_buttons(view)
    try:
        await message.edit(
            embed=night_embed(view),
            view=buttons,
            allowed_mentions=NO_MENTIONS,
        )
    except discord.HTTPException:
        log.warning("Could not update the message of movie night %s", view.night.id, exc_info=True)


class WatchedPageView(PagedView):
    """Previous/next over a server's watched list."""

    def __init__(self, owner_id: int, bot: MovieBot, guild_id: int, page: WatchedPage) -> None:
        super().__init__(owner_id)
        self.bot = bot
        self.guild_id = guild_id
        self.page = page
        self.sync()

    def position(self) -> tuple[int, int]:
        return self.page.page, self.page.pages

    async def load(self, page: int) -> None:
        self.page = await self.bot.service.nights.watched(self.guild_id, page)

    def embed(self) -> discord.Embed:
        embed = discord.Embed(
            title=f"Watched here ({self.page.total})",
            description="\n".join(fmt.watched_lines(self.page, mention))[:EMBED_LIMIT],
        )
        embed.set_footer(text=f"Page {self.page.page + 1} of {self.page.pages}")
        return embed


class MovieNight(commands.Cog):
    """Movie nights."""

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot
        self.service = bot.service

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(NightButton)
        self.timers.change_interval(seconds=self.bot.settings.movie_night_check_seconds)
        self.timers.start()

    async def cog_unload(self) -> None:
        self.timers.cancel()
        self.bot.remove_dynamic_items(NightButton)

    @tasks.loop(seconds=30, reconnect=True)
    async def timers(self) -> None:
        """Close lobbies and votes whose time is up (also ones that ran out while offline)."""
        try:
            for view in await self.service.nights.due(serves=self.serves):
                await show_night(self.bot, view)
        except Exception:
            log.exception("Closing due movie nights failed; will retry")

    def serves(self, guild_id: int) -> bool:
        """Return True when a server is on one of this process's gateway shards."""
        shard_ids = self.bot.shard_ids
        if shard_ids is None:
            return True
        return (guild_id >> 22) % (self.bot.shard_count or 1) in shard_ids

    @timers.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    @app_commands.command(
        name="movienight", description="Picks for everyone in your voice channel, and a vote."
    )
    @app_commands.describe(
        count="How many films to vote on (1-5, default 5)", genre="Only this genre"
    )
    @app_commands.guild_only()
    async def movienight(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 1, MAX_PICKS] = MAX_PICKS,
        genre: app_commands.Range[str, 1, 40] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        assert interaction.channel_id is not None
        voice = getattr(interaction.user, "voice", None)
        channel = voice.channel if voice is not None else None
        members = list(channel.voice_states) if channel is not None else None
        view = await self.service.nights.start(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            invoker=interaction.user.id,
            voice_members=members,
            count=count,
            genre=genre,
        )
        messageable = self.bot.get_partial_messageable(interaction.channel_id)
        buttons = night_buttons(view)
        assert buttons is not None  # a night that just started is open
        message = await messageable.send(
            embed=night_embed(view), view=buttons, allowed_mentions=NO_MENTIONS
        )
        await self.service.nights.set_message(view.night.id, message.id)
        started = (
            f"Movie night for the {len(view.members)} members in {channel.mention}: vote below."
            if channel is not None
            else "You're not in a voice channel, so I opened a lobby below: members press "
            "“I'm in”, then you start the vote."
        )
        await interaction.followup.send(started, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="watched", description="This server's watched list.")
    @app_commands.describe(
        add="Admins: put a film on the list", remove="Admins: take a film off the list"
    )
    @app_commands.autocomplete(add=title_autocomplete, remove=title_autocomplete)
    @app_commands.guild_only()
    async def watched(
        self,
        interaction: discord.Interaction,
        add: app_commands.Range[str, 1, 200] | None = None,
        remove: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        if add is None and remove is None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            page = await self.service.nights.watched(guild_id)
            view = WatchedPageView(interaction.user.id, self.bot, guild_id, page)
            await interaction.followup.send(embed=view.embed(), view=view, ephemeral=True)
            return
        if add is not None and remove is not None:
            raise UserFacingError("Add or remove one film at a time.")
        if not interaction.permissions.manage_guild:
            raise UserFacingError(
                "Only members with the Manage Server permission can edit the watched list."
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        nights = self.service.nights
        adding = add is not None
        change = nights.add_watched if adding else nights.remove_watched

        async def edit(movie: Movie) -> str:
            await change(guild_id, movie.movie_id, interaction.user.id)
            return fmt.watched_changed(movie, added=adding)

        title = add if add is not None else remove
        assert title is not None
        await answer(interaction, await self.service.on_title(title, edit), str)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(MovieNight(bot))
