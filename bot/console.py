"""The local console: the bot's commands at a prompt (or from a pipe), without Discord.

It speaks to the same service and database as the Discord bot and prints the same reply text,
as a local member with user id 0 (no Discord id is 0).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot import formatting as fmt
from bot.errors import AmbiguousTitleError, UserFacingError
from bot.ratings import parse_rating
from bot.service import MovieService
from bot.text import escape
from recommender import Movie

CONSOLE_USER_ID = 0
PROMPT = "moviebot> "


@dataclass
class _Pending:
    """An action waiting for the member to pick one of several movies."""

    candidates: tuple[Movie, ...]
    run: Callable[[Movie], Awaitable[None]]


class Console:
    """Parse console lines into service calls and print the replies."""

    def __init__(
        self, service: MovieService, out: TextIO = sys.stdout, user_id: int = CONSOLE_USER_ID
    ) -> None:
        self.service = service
        self.out = out
        self.user_id = user_id
        self._pending: _Pending | None = None
        self._confirm_forget = False
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "rate": self._rate,
            "unrate": self._unrate,
            "recommend": self._recommend,
            "myratings": self._myratings,
            "retrain": self._retrain,
            "forgetme": self._forgetme,
            "export": self._export,
            "search": self._search,
            "stats": self._stats,
            "help": self._help,
        }

    def say(self, text: str = "") -> None:
        """Print reply text (Markdown made plain)."""
        print(fmt.plain(text), file=self.out, flush=True)

    async def handle(self, line: str) -> bool:
        """Run one input line; return False when the member asked to quit."""
        text = line.strip()
        if not text:
            return True
        if text in {"/quit", "/exit", "quit", "exit"}:
            return False
        if self._pending is not None and text.isdigit():
            pending, self._pending = self._pending, None
            choice = int(text)
            if 1 <= choice <= len(pending.candidates):
                await self._guard(pending.run(pending.candidates[choice - 1]))
            else:
                self.say(f"Pick a number from 1 to {len(pending.candidates)}.")
            return True
        self._pending = None
        if not text.startswith("/"):
            self.say("Commands start with a slash, like /rate Heat 4.5. Type /help for the list.")
            return True
        name, _, rest = text[1:].partition(" ")
        command = self._commands.get(name.lower())
        if command is None:
            self.say(f"Unknown command /{escape(name, 30)}. Type /help for the list.")
            return True
        if name.lower() != "forgetme":
            self._confirm_forget = False
        await self._guard(command(rest.strip()))
        return True

    async def _guard(self, action: Awaitable[None]) -> None:
        try:
            await action
        except AmbiguousTitleError as exc:
            self.say(str(exc))
            for line in fmt.candidates_lines(exc.candidates):
                self.say(line)
            self.say("Type the number of the one you mean.")
        except UserFacingError as exc:
            self.say(str(exc))

    def _choose(
        self, candidates: tuple[Movie, ...], run: Callable[[Movie], Awaitable[None]]
    ) -> None:
        self._pending = _Pending(candidates, run)

    async def _with_movie(self, title: str, run: Callable[[Movie], Awaitable[None]]) -> None:
        try:
            movie = self.service.find(title)
        except AmbiguousTitleError as exc:
            self._choose(exc.candidates, run)
            raise
        await run(movie)

    async def _rate(self, args: str) -> None:
        title, _, rating = args.rpartition(" ")
        if not title.strip() or not rating:
            raise UserFacingError("Usage: /rate <title> <rating>, for example /rate Heat 4.5")

        async def run(movie: Movie) -> None:
            result = await self.service.rate(self.user_id, movie.movie_id, rating)
            self.say(fmt.rated(result))

        parse_rating(rating)
        await self._with_movie(title, run)

    async def _unrate(self, args: str) -> None:
        if not args:
            raise UserFacingError("Usage: /unrate <title>")

        async def run(movie: Movie) -> None:
            found, removed = await self.service.unrate(self.user_id, movie.movie_id)
            self.say(fmt.unrated(found, removed))

        await self._with_movie(args, run)

    async def _recommend(self, args: str) -> None:
        count, genre = 10, None
        first, _, rest = args.partition(" ")
        if first.isdigit():
            count, genre = int(first), rest.strip() or None
        elif args:
            genre = args
        picks = await self.service.recommend(self.user_id, count, genre)
        self.say(fmt.picks_title(picks))
        for line in fmt.picks_lines(picks):
            self.say(line)
        self.say(fmt.picks_note(picks))

    async def _myratings(self, args: str) -> None:
        page_number = int(args) - 1 if args.isdigit() and int(args) > 0 else 0
        page = await self.service.my_ratings(self.user_id, page_number)
        self.say(fmt.ratings_title(page))
        for line in fmt.ratings_lines(page):
            self.say(line)
        if page.pages > 1:
            self.say(f"{fmt.ratings_footer(page)} — /myratings <page> for more")

    async def _retrain(self, args: str) -> None:
        self.say("Retraining the model on MovieLens plus your ratings…")
        result = await self.service.retrain("console", self.user_id)
        self.say(fmt.retrained(result))

    async def _forgetme(self, args: str) -> None:
        if not self._confirm_forget and args.lower() != "confirm":
            self._confirm_forget = True
            self.say(
                "This deletes all your ratings and can't be undone. "
                "Type /forgetme again (or /forgetme confirm) to go ahead."
            )
            return
        self._confirm_forget = False
        self.say(fmt.forgot(await self.service.forget(self.user_id)))

    async def _export(self, args: str) -> None:
        data = await self.service.export(self.user_id)
        if not args:
            self.out.write(data)
            self.out.flush()
            return
        try:
            path = await asyncio.to_thread(_write_text, args, data)
        except OSError as exc:
            raise UserFacingError(f"Could not write {args}: {exc.strerror}") from exc
        self.say(f"Saved your ratings to {path}.")

    async def _search(self, args: str) -> None:
        if not args:
            raise UserFacingError("Usage: /search <title>")
        movies = self.service.complete(args, 10)
        if not movies:
            raise UserFacingError(f"No movie matches “{escape(args)}”.")
        for line in fmt.candidates_lines(tuple(movies)):
            self.say(line)

    async def _stats(self, args: str) -> None:
        stats = await self.service.stats(None)
        self.say("Ratings in this database")
        for line in fmt.stats_lines(stats):
            self.say(line)
        if stats.chart_png is not None and args:
            await asyncio.to_thread(Path(args).write_bytes, stats.chart_png)
            self.say(f"Chart saved to {args}.")

    async def _help(self, args: str) -> None:
        self.say("Commands:")
        for line in fmt.help_lines():
            self.say(line)
        self.say("/search <title> — List matching movies.   /quit — Leave the console.")


def _write_text(name: str, data: str) -> Path:
    path = Path(name).expanduser()
    path.write_text(data, encoding="utf-8")
    return path


async def run_console(
    service: MovieService, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> None:
    """Read commands until end of input or /quit; prompt only when a person is typing."""
    console = Console(service, out)
    interactive = stdin.isatty()
    if interactive:
        console.say("moviebot console — type /help for commands, /quit to leave.")
    while True:
        if interactive:
            out.write(PROMPT)
            out.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        if not await console.handle(line):
            break
