"""The ``moviebot`` command: run the bot or the console, and the recommender's tools.

``moviebot`` alone runs the Discord bot when ``DISCORD_TOKEN`` is set, else the local console.
This module only builds the parser and dispatches; each group of commands lives in its own
module (:mod:`bot.cli.app`, :mod:`bot.cli.tools`, :mod:`bot.cli.evaluate`), which imports the
heavy libraries only when one of its commands runs, so ``moviebot --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from bot.cli import app, evaluate, tools
from bot.cli.common import CommandError

__all__ = ["CommandError", "build_parser", "main", "setup_logging"]


def setup_logging(level: str) -> None:
    """Log to stderr with timestamps; quiet the chattier libraries."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("discord.gateway").setLevel(max(logging.getLevelName(level), logging.INFO))


def build_parser() -> argparse.ArgumentParser:
    """Return the ``moviebot`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="moviebot",
        description="Movie recommendations for a Discord server, "
        "from MovieLens plus members' ratings.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    app.add_commands(sub, parser)
    tools.add_commands(sub)
    evaluate.add_commands(sub)
    return parser


def _settings_problem(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"] else e["msg"]
        for e in errors()
    )


def _stop_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)  # asked to stop before anything was running: nothing to clean up


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``moviebot`` command line; return the exit status.

    SIGTERM and Ctrl-C end it with status 0 and no traceback, also while it is still starting
    (the bot and the console then stop gracefully, see :mod:`bot.cli.app`).
    """
    previous = signal.signal(signal.SIGTERM, _stop_quietly)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from bot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"moviebot: configuration error: {_settings_problem(exc)}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    from bot.errors import UserFacingError
    from recommender.data import DataError
    from recommender.persistence import ModelFileError

    try:
        return int(args.handler(args, settings))
    except CommandError as exc:
        print(f"moviebot: {exc}", file=sys.stderr)
        return 2
    except (DataError, ModelFileError, UserFacingError) as exc:
        print(f"moviebot: {exc}", file=sys.stderr)
        return 1
