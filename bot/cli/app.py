"""``moviebot``, ``run``, ``console`` and ``sync``: the bot's and the console's lifetimes.

``main()`` owns the resources: it opens the service (database, data set, model) and hands it
to the Discord client or the console. SIGTERM (``docker stop``, systemd) and SIGINT (Ctrl-C)
stop either one gracefully: in-flight commands finish (a few seconds at most), a running
refit is stopped and recorded as interrupted, the database is closed, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bot.cli.common import CommandError, service_config

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Turn SIGTERM and SIGINT into an orderly stop of the running coroutine.

    Until :attr:`on_stop` is set, a signal cancels the main task (start-up is cut short and
    its ``finally`` blocks clean up). Once set, the first signal runs ``on_stop`` instead; a
    second signal cancels the main task whatever is going on.
    """

    def __init__(self) -> None:
        self.requested = False
        self.on_stop: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._stopping: asyncio.Task[None] | None = None

    def __enter__(self) -> GracefulStop:
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._fire, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in STOP_SIGNALS:
            self._loop.remove_signal_handler(sig)
            if self.requested:  # stopping already: a second signal must not kill the clean-up
                signal.signal(sig, signal.SIG_IGN)

    def _fire(self, sig: signal.Signals) -> None:
        log.info("Received %s: stopping", sig.name)
        first, self.requested = not self.requested, True
        if first and self.on_stop is not None:
            self._stopping = self._loop.create_task(self.on_stop(), name="graceful-stop")
        elif self._task is not None:
            self._task.cancel()


async def until_stopped(body: Callable[[GracefulStop], Coroutine[Any, Any, None]]) -> None:
    """Run ``body`` until it ends, or until a stop signal cuts it short (then return normally)."""
    with GracefulStop() as stop:
        try:
            await body(stop)
        except asyncio.CancelledError:
            if not stop.requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()


async def _console_main(settings: Settings) -> None:
    from bot.console import run_console
    from bot.service import MovieService

    async def body(stop: GracefulStop) -> None:
        service = await MovieService.open(service_config(settings))
        try:
            elsewhere = await service.fitting_elsewhere()
            if elsewhere is not None:
                print(
                    f"Note: another moviebot (process {elsewhere or 'unknown'}) is refitting "
                    "the model for this database right now; this console uses the model it "
                    "saves.",
                    file=sys.stderr,
                )
            elif service.bundle is None:
                print(
                    "Fitting the recommendation model for the first time"
                    + (
                        " (choosing its settings first: about half a minute)…"
                        if service.config.tune
                        else " (a few seconds)…"
                    ),
                    file=sys.stderr,
                )
                await service.wait_until_ready()
            await run_console(service)
        finally:
            await service.close()

    await until_stopped(body)


async def _bot_main(settings: Settings, *, sync_only: bool = False) -> None:
    from bot.client import MovieBot
    from bot.service import MovieService

    token = settings.discord_token
    assert token is not None

    async def body(stop: GracefulStop) -> None:
        service = await MovieService.open(service_config(settings))
        try:
            bot = MovieBot(service, settings, sync_only=sync_only)
            stop.on_stop = bot.shutdown
            async with bot:
                await bot.start(token.get_secret_value())
        finally:
            await service.close()

    await until_stopped(body)


def _run_bot(settings: Settings, *, sync_only: bool) -> int:
    import aiohttp
    import discord

    try:
        asyncio.run(_bot_main(settings, sync_only=sync_only))
    except discord.LoginFailure as exc:
        raise CommandError(
            "Discord refused the token. Copy it again from the developer portal "
            "(Bot → Reset Token) into DISCORD_TOKEN."
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        print(
            f"moviebot: could not reach Discord ({reason}). Check the network connection, "
            "or use `moviebot console` to try the bot locally.",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Discord bot."""
    if not settings.has_token:
        raise CommandError(
            "DISCORD_TOKEN is not set. Put it in .env (see .env.example) or the environment, "
            "or use `moviebot console` to try the bot locally."
        )
    return _run_bot(settings, sync_only=False)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Publish the slash commands globally, then exit."""
    if not settings.has_token:
        raise CommandError("DISCORD_TOKEN is not set; syncing commands needs the bot's token.")
    return _run_bot(settings, sync_only=True)


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    """Run the local console."""
    asyncio.run(_console_main(settings))
    return 0


def cmd_default(args: argparse.Namespace, settings: Settings) -> int:
    """Run the bot when a token is set, else the console."""
    if settings.has_token:
        return cmd_run(args, settings)
    print(
        "No DISCORD_TOKEN configured, so starting the local console. To run the Discord bot, "
        "copy .env.example to .env and set DISCORD_TOKEN.",
        file=sys.stderr,
    )
    return cmd_console(args, settings)


def add_commands(sub: Any, parser: argparse.ArgumentParser) -> None:
    """Add ``run``, ``console`` and ``sync``; plain ``moviebot`` picks one of the first two."""
    parser.set_defaults(handler=cmd_default)
    sub.add_parser("run", help="run the Discord bot (needs DISCORD_TOKEN)").set_defaults(
        handler=cmd_run
    )
    sub.add_parser("console", help="use the bot's commands locally, without Discord").set_defaults(
        handler=cmd_console
    )
    sub.add_parser(
        "sync", help="publish the slash commands to Discord globally, then exit"
    ).set_defaults(handler=cmd_sync)
