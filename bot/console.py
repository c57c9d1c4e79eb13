"""The local console: the bot's commands at a prompt (or from a pipe), without Discord.

It speaks to the same service and database as the Discord bot and prints the same reply text,
as a local member with user id 0 (no Discord id is 0).
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from bot import formatting as fmt
from bot.errors import UserFacingError
from bot.imports import read_export
from bot.nights import NightView
from bot.onboarding import QUICKRATE_ANSWERS, ImportDecision, ImportResult
from bot.results import Choice, SimilarMovies
from bot.service import MAX_RECOMMENDATIONS, MovieService
from bot.text import escape
from recommender.catalog import Movie

CONSOLE_USER_ID = 0
CONSOLE_GUILD = CONSOLE_CHANNEL = 0  # the console is one server with one channel
MAX_MEMBER_ID = 2**63 - 1  # Discord ids (and SQLite integers) fit in 63 bits
CONSOLE_HELP = (
    "Console only: /search <title> — matching movies. /hide N, /seen N <rating> — act on pick N "
    "of the last /recommend. /hidden, /unhide N — your “Not interested” list.",
    "Movie night: /as N — be local member N. /movienight @0 @1 @2 [count] [genre] — a night for "
    "those members (no @: a lobby; /join, then /start). /vote N, /close, /watched "
    "[add|remove <title>]. /import <file> [keep|replace], /import undo, /quickrate (answer "
    "with a rating, skip or done). /quit — leave.",
)
PROMPT = "moviebot> "
MAX_PAGE_DIGITS = 6

T = TypeVar("T")
FileWriter = Callable[[str, bytes], Path]


def write_file(name: str, data: bytes) -> Path:
    """Write ``data`` to the file a member named; return its path."""
    path = Path(name).expanduser()
    path.write_bytes(data)
    return path


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # not \t or \n


def member_number(text: str) -> int | None:
    """Return a local member number (0 to 2^63-1), or None for anything else."""
    number = small_number(text, 19)
    return number if number is not None and number <= MAX_MEMBER_ID else None


def small_number(text: str, limit: int) -> int | None:
    """Return ``text`` as a whole number if it is plain ASCII digits of sensible length."""
    if text.isascii() and text.isdigit() and len(text) <= limit:
        return int(text)
    return None


class Console:
    """Parse console lines into service calls and print the replies.

    ``write`` saves the files ``/export FILE`` and ``/stats FILE`` ask for (tests pass one that
    keeps them in memory).
    """

    def __init__(
        self,
        service: MovieService,
        out: TextIO = sys.stdout,
        user_id: int = CONSOLE_USER_ID,
        write: FileWriter = write_file,
    ) -> None:
        self.service = service
        self.out = out
        self.user_id = user_id
        self.write = write
        self._pending: Choice[None] | None = None
        self._last_picks: tuple[Movie, ...] = ()  # the last /recommend list, for /hide N
        self._last_hidden: tuple[Movie, ...] = ()  # the last /hidden list, for /unhide N
        self._card: Movie | None = None  # the /quickrate film waiting for an answer
        self._answered = 0
        self._decision: ImportDecision | None = None  # an import waiting for keep/replace
        self._welcomed: set[int] = set()
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
            "similar": self._similar,
            "hide": self._hide,
            "unhide": self._unhide,
            "hidden": self._hidden,
            "seen": self._seen,
            "as": self._as,
            "movienight": self._movienight,
            "join": self._join,
            "start": self._start,
            "vote": self._vote,
            "close": self._close,
            "watched": self._watched,
            "import": self._import,
            "quickrate": self._quickrate,
            "stats": self._stats,
            "help": self._help,
        }

    def say(self, text: str = "") -> None:
        """Print reply text (Markdown made plain, no terminal control characters)."""
        print(_CONTROL.sub("", fmt.plain(text)), file=self.out, flush=True)

    async def handle(self, line: str) -> bool:
        """Run one input line; return False when the member asked to quit."""
        text = line.strip()
        if not text:
            return True
        if text in {"/quit", "/exit", "quit", "exit"}:
            return False
        if self._card is not None and not text.startswith("/"):
            await self._guard(self._quickrate_answer(text))
            return True
        if self._decision is not None and not text.startswith("/"):
            decision, self._decision = self._decision, None
            await self._guard(self._decide(decision, text))
            return True
        self._card = None
        if self._decision is not None:
            self._decision = None
            self.say("(The import waiting for keep or replace was not applied.)")
        pending, self._pending = self._pending, None
        if pending is not None and (choice := small_number(text, 4)) is not None:
            if 1 <= choice <= len(pending.candidates):
                await self._guard(pending.run(pending.candidates[choice - 1]))
            else:
                self.say(f"Pick a number from 1 to {len(pending.candidates)}.")
            return True
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
        if name.lower() not in {"stats", "movienight", "help"}:
            await self._guard(self._welcome())
        return True

    async def _welcome(self) -> None:
        if self.user_id in self._welcomed:
            return
        self._welcomed.add(self.user_id)
        line = await self.service.onboarding.welcome(self.user_id)
        if line:
            self.say(line)

    async def _guard(self, action: Awaitable[None]) -> None:
        try:
            await action
        except UserFacingError as exc:
            self.say(str(exc))

    async def _show(self, outcome: T | Choice[T], show: Callable[[T], str]) -> None:
        """Print the result, or the numbered candidates to pick from with the next line."""
        if not isinstance(outcome, Choice):
            self.say(show(outcome))
            return
        choice = outcome

        async def pick(movie: Movie) -> None:
            self.say(show(await choice.run(movie)))

        self._pending = Choice(choice.question, choice.candidates, pick)
        self.say(choice.question)
        for line in fmt.candidates_lines(choice.candidates):
            self.say(line)
        self.say("Type the number of the one you mean.")

    async def _rate(self, args: str) -> None:
        title, _, rating = args.rpartition(" ")
        if not title.strip() or not rating:
            raise UserFacingError("Usage: /rate <title> <rating>, for example /rate Heat 4.5")
        await self._show(await self.service.rate_title(self.user_id, title, rating), fmt.rated)

    async def _unrate(self, args: str) -> None:
        if not args:
            raise UserFacingError("Usage: /unrate <title>")
        await self._show(await self.service.unrate_title(self.user_id, args), fmt.unrated)

    async def _recommend(self, args: str) -> None:
        words = args.split()
        discover = "discover" in (w.lower() for w in words)
        args = " ".join(w for w in words if w.lower() != "discover")
        count, genre = 10, args or None
        first, _, rest = args.partition(" ")
        if first[:1].isdigit():
            number = small_number(first, 3)
            if number is None:
                raise UserFacingError(
                    f"I can recommend 1 to {MAX_RECOMMENDATIONS} movies at a time."
                )
            count, genre = number, rest.strip() or None
        picks = await self.service.recommend(self.user_id, count, genre, discover=discover)
        self._last_picks = tuple(p.movie for p in picks.picks)
        self.say(fmt.picks_title(picks))
        for line in fmt.picks_lines(picks):
            self.say(line)
        self.say(fmt.picks_note(picks))
        if picks.picks:
            self.say("Not for you? /hide <number>. Seen it? /seen <number> <rating>.")

    async def _myratings(self, args: str) -> None:
        number = small_number(args, MAX_PAGE_DIGITS) if args else 1
        if number is None:
            raise UserFacingError("Usage: /myratings [page], for example /myratings 2")
        page = await self.service.my_ratings(self.user_id, max(number, 1) - 1)
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

    async def _save(self, name: str, data: bytes) -> Path:
        try:
            return await asyncio.to_thread(self.write, name, data)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UserFacingError(f"Could not write “{escape(name, 60)}”: {reason}.") from exc

    async def _export(self, args: str) -> None:
        data = await self.service.export(self.user_id)
        hidden = await self.service.export_dismissals(self.user_id)
        if not args:
            self.out.write(data + "\n" + hidden)
            self.out.flush()
            return
        path = await self._save(args, data.encode("utf-8"))
        target = Path(args)
        hidden_name = str(target.parent / f"{target.stem or 'moviebot'}-not-interested.csv")
        hidden_path = await self._save(hidden_name, hidden.encode("utf-8"))
        self.say(
            f"Saved your ratings to {escape(str(path), 200)} and the films you hid to "
            f"{escape(str(hidden_path), 200)}."
        )

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
            path = await self._save(args, stats.chart_png)
            self.say(f"Chart saved to {escape(str(path), 200)}.")

    async def _similar(self, args: str) -> None:
        if not args:
            raise UserFacingError("Usage: /similar <title>")

        def show(result: SimilarMovies) -> str:
            return "\n".join([fmt.similar_title(result), *fmt.similar_lines(result)])

        await self._show(await self.service.similar(args), show)

    def _numbered(self, text: str, listed: tuple[Movie, ...], command: str) -> Movie | None:
        """Return the movie a number names in the last list shown, None when text is a title."""
        number = small_number(text, 4)
        if number is None:
            return None
        if not 1 <= number <= len(listed):
            raise UserFacingError(
                f"There is no number {number} in your last list; use a title, like /{command} Heat."
            )
        return listed[number - 1]

    async def _hide(self, args: str) -> None:
        if not args:
            raise UserFacingError("Usage: /hide <number from /recommend> or /hide <title>")

        async def hide(movie: Movie) -> str:
            await self.service.dismiss(self.user_id, movie.movie_id)
            return fmt.dismissed(movie, "Undo it with /unhide.")

        movie = self._numbered(args, self._last_picks, "hide")
        if movie is not None:
            self.say(await hide(movie))
            return
        await self._show(await self.service.on_title(args, hide), str)

    async def _unhide(self, args: str) -> None:
        if not args:
            raise UserFacingError("Usage: /unhide <number from /hidden> or /unhide <title>")

        async def unhide(movie: Movie) -> str:
            return fmt.undismissed(await self.service.undismiss(self.user_id, movie.movie_id))

        movie = self._numbered(args, self._last_hidden, "unhide")
        if movie is not None:
            self.say(await unhide(movie))
            return
        await self._show(await self.service.on_title(args, unhide), str)

    async def _hidden(self, args: str) -> None:
        items = await self.service.dismissed(self.user_id)
        self._last_hidden = tuple(item.movie for item in items)
        self.say(f"Not interested ({len(items)})")
        for line in fmt.dismissed_lines(items):
            self.say(line)
        if items:
            self.say("Changed your mind? /unhide <number>.")

    async def _seen(self, args: str) -> None:
        number, _, rating = args.partition(" ")
        movie = self._numbered(number, self._last_picks, "rate")
        if movie is None or not rating.strip():
            raise UserFacingError("Usage: /seen <number from /recommend> <rating>, e.g. /seen 2 4")
        self.say(fmt.rated(await self.service.rate(self.user_id, movie.movie_id, rating.strip())))

    @staticmethod
    def _name(user_id: int) -> str:
        return f"member {user_id}"

    def _show_night(self, view: NightView) -> None:
        self.say(fmt.night_title(view))
        for line in fmt.night_lines(view, self._name):
            self.say(line)

    async def _as(self, args: str) -> None:
        number = member_number(args)
        if number is None:
            raise UserFacingError("Usage: /as N, a local member number, like /as 1")
        self.user_id = number
        self.say(f"You are member {number} now.")

    async def _movienight(self, args: str) -> None:
        words = args.split()
        members: list[int] = []
        while words and words[0].startswith("@"):
            number = member_number(words.pop(0)[1:])
            if number is None:
                raise UserFacingError("Name members as @N, like /movienight @0 @1 @2")
            members.append(number)
        count = 5
        if words and (number := small_number(words[0], 2)) is not None:
            count = number
            words.pop(0)
        view = await self.service.nights.start(
            guild_id=CONSOLE_GUILD,
            channel_id=CONSOLE_CHANNEL,
            invoker=self.user_id,
            voice_members=members or None,
            count=count,
            genre=" ".join(words) or None,
            source="console" if members else "lobby",
        )
        self._show_night(view)

    async def _open_night(self) -> int:
        view = await self.service.nights.open_in(CONSOLE_CHANNEL)
        if view is None:
            raise UserFacingError("No movie night is open. Start one with /movienight.")
        return view.night.id

    async def _join(self, args: str) -> None:
        self._show_night(await self.service.nights.join(await self._open_night(), self.user_id))

    async def _start(self, args: str) -> None:
        night_id = await self._open_night()
        self._show_night(await self.service.nights.begin_vote(night_id, self.user_id, admin=True))

    async def _vote(self, args: str) -> None:
        number = small_number(args, 2)
        if number is None:
            raise UserFacingError("Usage: /vote N, the number of a film on the night's list")
        view, previous = await self.service.nights.vote(
            await self._open_night(), self.user_id, number
        )
        self.say(
            f"Member {self.user_id} voted for {number}"
            + (f" (instead of {previous})." if previous not in (None, number) else ".")
        )
        self._show_night(view)

    async def _close(self, args: str) -> None:
        night_id = await self._open_night()
        self._show_night(await self.service.nights.close(night_id, self.user_id, admin=True))

    async def _watched(self, args: str) -> None:
        action, _, title = args.partition(" ")
        if action.lower() in {"add", "remove"}:
            if not title.strip():
                raise UserFacingError(f"Usage: /watched {action.lower()} <title>")
            nights = self.service.nights
            adding = action.lower() == "add"
            change = nights.add_watched if adding else nights.remove_watched

            async def edit(movie: Movie) -> str:
                await change(CONSOLE_GUILD, movie.movie_id, self.user_id)
                return fmt.watched_changed(movie, added=adding)

            await self._show(await self.service.on_title(title, edit), str)
            return
        number = small_number(args, MAX_PAGE_DIGITS) if args else 1
        if number is None:
            raise UserFacingError(
                "Usage: /watched [page], /watched add <title>, /watched remove <title>"
            )
        page = await self.service.nights.watched(CONSOLE_GUILD, max(number, 1) - 1)
        self.say(f"Watched here ({page.total})")
        for line in fmt.watched_lines(page, self._name):
            self.say(line)
        if page.pages > 1:
            self.say(f"Page {page.page + 1} of {page.pages} — /watched <page> for more")

    async def _import(self, args: str) -> None:
        words = args.split()
        if words == ["undo"]:
            self.say(fmt.undone(await self.service.onboarding.undo_import(self.user_id)))
            return
        replace: bool | None = None
        if words and words[-1].lower() in {"keep", "replace"}:
            replace = words.pop().lower() == "replace"
        if not words:
            raise UserFacingError(
                "Usage: /import <file> [keep|replace], or /import undo. The file is a Letterboxd "
                "export (zip or ratings.csv), an IMDb ratings CSV, or a /export CSV."
            )
        name = " ".join(words)
        try:
            data, size = await asyncio.to_thread(read_export, name)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UserFacingError(f"Could not read “{escape(name, 60)}”: {reason}.") from exc
        outcome = await self.service.onboarding.import_file(
            self.user_id, data, Path(name).name, replace=replace, size=size
        )
        if isinstance(outcome, ImportDecision):
            self._decision = outcome
            self.say(fmt.import_question(outcome))
            self.say("Type keep or replace.")
            return
        await self._report_import(outcome)

    async def _decide(self, decision: ImportDecision, answer: str) -> None:
        choice = answer.strip().lower()
        if choice not in {"keep", "replace"}:
            raise UserFacingError(
                "Nothing was imported. Run /import again and answer keep or replace."
            )
        await self._report_import(await decision.apply(choice == "replace"))

    async def _report_import(self, result: ImportResult) -> None:
        if result.unmatched_csv:
            path = await self._save("moviebot-unmatched.csv", result.unmatched_csv.encode("utf-8"))
            self.say(fmt.imported(result, escape(str(path), 200), "/import undo takes it back."))
        else:
            self.say(fmt.imported(result))

    async def _quickrate(self, args: str) -> None:
        self._answered = 0
        await self._ask()

    async def _ask(self) -> None:
        movie = await self.service.onboarding.next_question(self.user_id)
        if movie is None or self._answered >= QUICKRATE_ANSWERS:
            self._card = None
            self.say("That's enough to go on. Here are your picks:")
            await self._recommend("")
            return
        self._card = movie
        title, lines = fmt.quickrate_card(movie, self._answered)
        self.say(title)
        for line in lines:
            self.say(line)
        self.say("Type a rating (0.5-5), “skip” if you haven't seen it, or “done”.")

    async def _quickrate_answer(self, text: str) -> None:
        movie = self._card
        assert movie is not None
        answer = text.strip().lower()
        if answer == "done":
            self._answered = QUICKRATE_ANSWERS
        elif answer in {"skip", "haven't seen it", "havent seen it", "-"}:
            await self.service.onboarding.haven_t_seen(self.user_id, movie.movie_id)
            self._answered += 1
        else:
            result = await self.service.rate(self.user_id, movie.movie_id, answer)
            self.say(fmt.rated(result))
            self._answered += 1
        await self._ask()

    async def _help(self, args: str) -> None:
        self.say("Commands:")
        for line in fmt.help_lines():
            self.say(line)
        for line in CONSOLE_HELP:
            self.say(line)


def _read_lines(stdin: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
    """Feed lines into ``queue`` from a daemon thread, so Ctrl-C never waits on a blocked read."""
    try:
        for line in iter(stdin.readline, ""):
            loop.call_soon_threadsafe(queue.put_nowait, line)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def run_console(
    service: MovieService, stdin: TextIO | None = None, out: TextIO | None = None
) -> None:
    """Read commands until end of input or /quit; prompt only when a person is typing."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    console = Console(service, out)
    interactive = stdin.isatty()
    if interactive:
        console.say("moviebot console — type /help for commands, /quit to leave.")
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    reader = threading.Thread(
        target=_read_lines,
        args=(stdin, asyncio.get_running_loop(), queue),
        name="console-input",
        daemon=True,
    )
    reader.start()
    while True:
        if interactive:
            out.write(PROMPT)
            out.flush()
        line = await queue.get()
        if line is None or not await console.handle(line):
            break
