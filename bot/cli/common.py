"""What the command groups share: errors, output, validated argument types, the service."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings import regularization

if TYPE_CHECKING:
    import pandas as pd

    from bot.model_host import ServiceConfig
    from bot.settings import Settings
    from recommender import ModelBundle


class CommandError(Exception):
    """A command-line mistake; printed as one line, exit status 2."""


def emit(args: argparse.Namespace, payload: Any, lines: Sequence[str]) -> None:
    """Print ``payload`` as JSON with ``--json``, else the readable ``lines``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        for line in lines:
            print(line)
    sys.stdout.flush()


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1 (for counts and sizes)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def member_id(text: str) -> int:
    """Parse a member's id: a whole number from 0 to 2^63-1 (Discord ids fit)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) >= 2**63:
        raise argparse.ArgumentTypeError(f"expected a member id (0 or more), got {text!r}")
    return int(text)


def non_negative_float(text: str) -> float:
    """Parse a number from 0 to ``MAX_REGULARIZATION`` (for regularization and strengths)."""
    try:
        return regularization(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def service_config(settings: Settings) -> ServiceConfig:
    """Return the service's configuration from the settings."""
    from bot.model_host import ServiceConfig
    from bot.night_config import NightConfig

    params, tune = settings.model_params()
    return ServiceConfig(
        database_path=settings.database_path,
        database_url=None if settings.database_url is None else str(settings.database),
        model_params=params,
        tune=tune,
        movielens_source=settings.movielens_source,
        data_dir=settings.data_dir,
        model_path=settings.model_path,
        refit_min_new_ratings=settings.refit_min_new_ratings,
        stats_min_members=settings.stats_min_members,
        import_cooldown_seconds=round(settings.import_cooldown_minutes * 60),
        nights=NightConfig(
            lobby_seconds=round(settings.movie_night_lobby_minutes * 60),
            vote_seconds=round(settings.movie_night_vote_hours * 3600),
        ),
    )


async def chat_ratings(settings: Settings) -> pd.DataFrame:
    """Return every member's rating from the database, as the frame the model fits on."""
    from bot import db as database
    from bot.db import ratings as rating_store
    from bot.model_host import ratings_frame

    db = await database.connect(settings.database)
    try:
        return ratings_frame(await rating_store.all_ratings(db))
    finally:
        await db.close()


def load_model(settings: Settings, path: str | None) -> ModelBundle:
    """Load the saved model at ``path`` (default ``MODEL_PATH``)."""
    from recommender import load_bundle

    return load_bundle(Path(path) if path else settings.model_path)
