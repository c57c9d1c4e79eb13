"""/import, /quickrate, and the one-time welcome: from no ratings to good picks in a minute."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt
from bot.cogs.errors import NO_MENTIONS
from bot.cogs.recommend import HALF_STARS, picks_embed
from bot.cogs.views import OwnedView
from bot.errors import UserFacingError
from bot.onboarding import QUICKRATE_ANSWERS, ImportDecision, ImportResult
from bot.service import MovieService
from bot.stars import stars
from recommender.catalog import Movie

if TYPE_CHECKING:
    from bot.client import MovieBot

QUICKRATE_MINUTES = 15
SKIP, DONE = "skip", "done"
PERSONAL_COMMANDS = frozenset(
    {"rate", "unrate", "recommend", "similar", "myratings", "export", "quickrate", "import"}
)


def import_files(result: ImportResult) -> list[discord.File]:
    """Return the unmatched rows as a CSV attachment, if any."""
    if not result.unmatched_csv:
        return []
    data = io.BytesIO(result.unmatched_csv.encode("utf-8"))
    return [discord.File(data, filename="moviebot-unmatched.csv")]


class ImportChoiceView(OwnedView):
    """Keep the member's ratings made here, or take the file's, before an import is written."""

    def __init__(self, owner_id: int, decision: ImportDecision) -> None:
        super().__init__(owner_id)
        self.decision = decision

    async def _finish(self, interaction: discord.Interaction, replace: bool) -> None:
        self.stop()  # before any wait: a second click must not apply the import again
        await interaction.response.defer()  # the import writes thousands of rows
        result = await self.decision.apply(replace)
        await interaction.edit_original_response(
            content=fmt.imported(result),
            attachments=import_files(result),
            view=None,
            allowed_mentions=NO_MENTIONS,
        )

    @discord.ui.button(label="Keep my ratings here", style=discord.ButtonStyle.primary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._finish(interaction, replace=False)

    @discord.ui.button(label="Take the file's", style=discord.ButtonStyle.secondary)
    async def take(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._finish(interaction, replace=True)


class QuickRateView(OwnedView):
    """One film at a time: ten half-star values, "Haven't seen it" and "Done"."""

    def __init__(self, owner_id: int, service: MovieService, movie: Movie) -> None:
        super().__init__(owner_id)
        self.timeout = QUICKRATE_MINUTES * 60
        self.service = service
        self.movie = movie
        self.answered = 0
        select: discord.ui.Select[QuickRateView] = discord.ui.Select(
            placeholder="Your rating",
            options=[
                *(
                    discord.SelectOption(label=f"{stars(v)} ({v:g})", value=f"{v:g}")
                    for v in HALF_STARS
                ),
                discord.SelectOption(label="Haven't seen it", value=SKIP),
                discord.SelectOption(label="Done: show my picks", value=DONE),
            ],
        )
        select.callback = self._answer  # type: ignore[method-assign]
        self.select = select
        self.add_item(select)

    def embed(self) -> discord.Embed:
        title, lines = fmt.quickrate_card(self.movie, self.answered)
        return discord.Embed(title=title, description="\n".join(lines))

    async def _answer(self, interaction: discord.Interaction) -> None:
        answer = self.select.values[0]
        await interaction.response.defer()  # the answer is saved before the next card
        onboarding = self.service.onboarding
        if answer == SKIP:
            await onboarding.haven_t_seen(self.owner_id, self.movie.movie_id)
        elif answer != DONE:
            await self.service.rate(self.owner_id, self.movie.movie_id, answer)
        if answer != DONE:
            self.answered += 1
        following = None
        if answer != DONE and self.answered < QUICKRATE_ANSWERS:
            following = await onboarding.next_question(self.owner_id)
        if following is None:
            self.stop()
            picks = await self.service.recommend(self.owner_id, 10)
            await interaction.edit_original_response(
                content=f"Thanks! {fmt.plural_of(self.answered, 'answer')} saved. Your picks:",
                embed=picks_embed(picks),
                view=None,
            )
            return
        self.movie = following
        await interaction.edit_original_response(embed=self.embed(), view=self)


class Onboarding(commands.Cog):
    """Imports, quick rating and the welcome."""

    imports = app_commands.Group(name="import", description="Bring in ratings from elsewhere.")

    def __init__(self, bot: MovieBot) -> None:
        self.bot = bot
        self.service = bot.service

    @imports.command(name="file", description="Import your Letterboxd or IMDb ratings.")
    @app_commands.describe(
        file="Letterboxd's export zip or ratings.csv, IMDb's ratings CSV, or a /export CSV",
        conflicts="When the file rates a film differently from you here (default: ask me)",
    )
    @app_commands.choices(
        conflicts=[
            app_commands.Choice(name="keep my ratings made here", value="keep"),
            app_commands.Choice(name="take the file's", value="replace"),
        ]
    )
    async def import_file(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment,
        conflicts: app_commands.Choice[str] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        onboarding = self.service.onboarding
        await onboarding.check_import_allowed(interaction.user.id, file.size)
        try:
            data = await file.read()
        except discord.HTTPException as exc:
            raise UserFacingError("I couldn't download that file from Discord; try again.") from exc
        outcome = await onboarding.import_file(
            interaction.user.id,
            data,
            file.filename,
            replace=None if conflicts is None else conflicts.value == "replace",
            guild_id=interaction.guild_id,
        )
        if isinstance(outcome, ImportDecision):
            view = ImportChoiceView(interaction.user.id, outcome)
            await interaction.followup.send(fmt.import_question(outcome), view=view, ephemeral=True)
            return
        await interaction.followup.send(
            fmt.imported(outcome),
            files=import_files(outcome),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @imports.command(name="undo", description="Put your ratings back as before your last import.")
    async def import_undo(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        restored = await self.service.onboarding.undo_import(interaction.user.id)
        await interaction.followup.send(fmt.undone(restored), ephemeral=True)

    @app_commands.command(
        name="quickrate", description="Rate a few well-chosen films, one at a time."
    )
    async def quickrate(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        movie = await self.service.onboarding.next_question(interaction.user.id)
        if movie is None:
            await interaction.followup.send("You've answered every film I'd ask. Try /recommend!")
            return
        view = QuickRateView(interaction.user.id, self.service, movie)
        await interaction.followup.send(embed=view.embed(), view=view, ephemeral=True)

    @commands.Cog.listener()
    async def on_app_command_completion(
        self,
        interaction: discord.Interaction,
        command: app_commands.Command | app_commands.ContextMenu,
    ) -> None:
        """End a member's first private reply with one line pointing to /quickrate and /import."""
        if command.qualified_name.split(" ")[0] not in PERSONAL_COMMANDS:
            return
        line = await self.service.onboarding.welcome(interaction.user.id)
        if line:
            await interaction.followup.send(line, ephemeral=True)


async def setup(bot: MovieBot) -> None:
    """Load the cog."""
    await bot.add_cog(Onboarding(bot))
