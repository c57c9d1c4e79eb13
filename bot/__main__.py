"""The ``moviebot`` command: run the bot or the console, and the recommender's tools.

``moviebot`` alone runs the Discord bot when ``DISCORD_TOKEN`` is set, else the local console.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.errors import UserFacingError
from bot.ratings import parse_rating
from bot.settings import Settings
from recommender import (
    KNOWN_DATASETS,
    DataError,
    ModelFileError,
    fetch_dataset,
    fit_bundle,
    load_bundle,
    load_dataset,
    resolve_source,
    save_bundle,
)

log = logging.getLogger("bot")


class CommandError(Exception):
    """A command-line mistake; printed as one line, exit status 2."""


def setup_logging(level: str) -> None:
    """Log to stderr with timestamps; quiet the chattier libraries."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("discord.gateway").setLevel(max(logging.getLevelName(level), logging.INFO))


# ---------------------------------------------------------------------------- bot and console


async def _open_service(settings: Settings) -> Any:
    from bot import db as database
    from bot.service import MovieService, ServiceConfig

    db = await database.connect(settings.database_path)
    service = MovieService(
        db,
        ServiceConfig(
            movielens_source=settings.movielens_source,
            data_dir=settings.data_dir,
            model_path=settings.model_path,
            refit_min_new_ratings=settings.refit_min_new_ratings,
        ),
    )
    try:
        await service.start()
    except BaseException:
        await service.close()
        await db.close()
        raise
    return service


async def _console_main(settings: Settings) -> None:
    from bot.console import run_console

    service = await _open_service(settings)
    try:
        if service.bundle is None:
            print(
                "Fitting the recommendation model for the first time (a few seconds)…",
                file=sys.stderr,
            )
            await service.wait_until_ready()
        await run_console(service)
    finally:
        await service.close()
        await service.db.close()


async def _bot_main(settings: Settings, *, sync_only: bool = False) -> None:
    from bot.client import MovieBot

    service = await _open_service(settings)
    bot = MovieBot(service, settings, sync_only=sync_only)
    try:
        assert settings.discord_token is not None
        async with bot:
            await bot.start(settings.discord_token.get_secret_value())
    finally:
        await service.close()
        await service.db.close()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.has_token:
        raise CommandError(
            "DISCORD_TOKEN is not set. Put it in .env (see .env.example) or the environment, "
            "or use `moviebot console` to try the bot locally."
        )
    asyncio.run(_bot_main(settings))
    return 0


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.has_token:
        raise CommandError("DISCORD_TOKEN is not set; syncing commands needs the bot's token.")
    asyncio.run(_bot_main(settings, sync_only=True))
    return 0


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_console_main(settings))
    return 0


def cmd_default(args: argparse.Namespace, settings: Settings) -> int:
    if settings.has_token:
        return cmd_run(args, settings)
    print(
        "No DISCORD_TOKEN configured, so starting the local console. To run the Discord bot, "
        "copy .env.example to .env and set DISCORD_TOKEN.",
        file=sys.stderr,
    )
    return cmd_console(args, settings)


# ---------------------------------------------------------------------------- recommender tools


def _emit(args: argparse.Namespace, payload: Any, lines: Sequence[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        for line in lines:
            print(line)


def cmd_data_fetch(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name or settings.movielens_source
    if name in KNOWN_DATASETS:
        path = fetch_dataset(name, settings.data_dir)
    else:
        path = resolve_source(name, settings.data_dir)
    dataset = load_dataset(path, settings.data_dir, progress=False)
    _emit(
        args,
        {
            "path": str(path),
            "name": dataset.name,
            "movies": len(dataset.movies),
            "ratings": len(dataset.ratings),
            "users": dataset.n_users,
        },
        [
            f"{dataset.name}: {len(dataset.movies):,} movies, {len(dataset.ratings):,} ratings "
            f"by {dataset.n_users:,} users",
            f"cached at {path} (checksum verified)" if name in KNOWN_DATASETS else f"read {path}",
        ],
    )
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    source = args.dataset or settings.movielens_source
    output = Path(args.output) if args.output else settings.model_path
    started = time.perf_counter()
    dataset = load_dataset(source, settings.data_dir)
    loaded = time.perf_counter()
    params = {
        "n_components": args.components,
        "alpha": args.alpha,
        "max_iter": args.max_iter,
        "random_state": args.seed,
    }
    chat = None
    if args.with_chat:
        chat = asyncio.run(_chat_ratings(settings))
    bundle = fit_bundle(dataset, chat, **params)
    fitted = time.perf_counter()
    save_bundle(bundle, output)
    saved = time.perf_counter()
    size = output.stat().st_size
    meta = bundle.metadata
    _emit(
        args,
        {
            "path": str(output),
            "bytes": size,
            "load_seconds": loaded - started,
            "fit_seconds": fitted - loaded,
            "save_seconds": saved - fitted,
            "metadata": asdict(meta),
        },
        [
            f"Loaded {meta.dataset} in {loaded - started:.2f} s: {meta.n_users:,} users "
            f"({meta.n_chat_users} from chat), {meta.n_movies:,} movies, "
            f"{meta.n_ratings:,} ratings",
            f"Fitted NMF (k={bundle.model.n_components}, alpha={bundle.model.alpha}) "
            f"in {fitted - loaded:.2f} s, {bundle.model.n_iter_} iterations",
            f"Saved {output} ({size / 1e6:.1f} MB) in {saved - fitted:.2f} s",
        ],
    )
    return 0


async def _chat_ratings(settings: Settings) -> Any:
    from bot import db as database
    from bot.db import ratings as rating_store
    from bot.service import ratings_frame

    db = await database.connect(settings.database_path)
    try:
        return ratings_frame(await rating_store.all_ratings(db))
    finally:
        await db.close()


def _load_model(settings: Settings, path: str | None) -> Any:
    return load_bundle(Path(path) if path else settings.model_path)


def _resolve_or_fail(catalog: Any, title: str) -> Any:
    resolution = catalog.resolve(title)
    if resolution.movie is not None:
        return resolution.movie
    if resolution.candidates:
        options = "; ".join(m.label for m in resolution.candidates[:5])
        raise CommandError(
            f"“{title}” is ambiguous: {options}. "
            f"Add the year, e.g. “{resolution.candidates[0].label}”."
        )
    raise CommandError(f"No movie matches “{title}”.")


def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    bundle = _load_model(settings, args.model)
    catalog = bundle.catalog
    ratings: dict[int, float] = {}
    if args.user is not None:
        dataset = load_dataset(
            args.dataset or settings.movielens_source, settings.data_dir, progress=False
        )
        own = dataset.ratings.loc[dataset.ratings["user_id"] == args.user]
        if own.empty:
            raise CommandError(f"MovieLens user {args.user} has no ratings in {dataset.name}.")
        ratings.update(
            zip(own["movie_id"].tolist(), own["rating"].astype(float).tolist(), strict=True)
        )
    for item in args.rate or []:
        title, sep, value = item.rpartition("=")
        if not sep or not title.strip():
            raise CommandError(f'--rate takes TITLE=STARS, like "Heat=4.5" (got {item!r}).')
        try:
            stars = parse_rating(value)
        except UserFacingError as exc:
            raise CommandError(f"{title.strip()}: {exc}") from exc
        ratings[_resolve_or_fail(catalog, title.strip()).movie_id] = stars
    years = None
    if args.years:
        first, _, last = args.years.partition("-")
        try:
            years = (int(first) if first else None, int(last) if last else None)
        except ValueError as exc:
            raise CommandError("--years takes FIRST-LAST, like 1990-1999 or 2000-") from exc
    model = bundle.model
    if args.genre and args.genre.casefold() not in {g.casefold() for g in model.genre_names_}:
        raise CommandError(f"Unknown genre {args.genre!r}; known: {', '.join(model.genre_names_)}")
    recs = model.recommend(
        ratings, args.n, genres=[args.genre] if args.genre else None, years=years
    )
    rows = []
    for rec in recs:
        movie = catalog.get(rec.movie_id)
        rows.append(
            {
                "movie_id": rec.movie_id,
                "title": movie.label if movie else str(rec.movie_id),
                "genres": list(movie.genres) if movie else [],
                "score": rec.score,
            }
        )
    based = len(model.columns(ratings))
    header = (
        f"Top {len(rows)} for {based} rating(s) (scores rank movies; they are not stars):"
        if based
        else f"Top {len(rows)} popular movies (no ratings given):"
    )
    _emit(
        args,
        {"based_on": based, "recommendations": rows},
        [
            header,
            *(f"{i:2}. {r['title']}  [{', '.join(r['genres'])}]" for i, r in enumerate(rows, 1)),
        ],
    )
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    catalog = _catalog_for_tools(args, settings)
    matches = catalog.search(args.query, args.n)
    resolution = catalog.resolve(args.query)
    _emit(
        args,
        {
            "resolved": resolution.movie.movie_id if resolution.movie else None,
            "matches": [
                {
                    "movie_id": m.movie.movie_id,
                    "title": m.movie.label,
                    "score": m.score,
                    "ratings": m.movie.rating_count,
                }
                for m in matches
            ],
        },
        [
            f"{m.movie.movie_id:>7}  {m.movie.label}  "
            f"(match {m.score}, {m.movie.rating_count} ratings)"
            for m in matches
        ]
        or [f"No movie matches “{args.query}”."],
    )
    return 0 if matches else 1


def cmd_similar(args: argparse.Namespace, settings: Settings) -> int:
    bundle = _load_model(settings, args.model)
    movie = _resolve_or_fail(bundle.catalog, args.title)
    recs = bundle.model.similar(movie.movie_id, args.n)
    rows = [(r, bundle.catalog.get(r.movie_id)) for r in recs]
    _emit(
        args,
        {
            "movie_id": movie.movie_id,
            "similar": [
                {"movie_id": r.movie_id, "title": m.label if m else "", "cosine": r.score}
                for r, m in rows
            ],
        },
        [
            f"Movies like {movie.label}:",
            *(
                f"{i:2}. {m.label if m else r.movie_id}  (cosine {r.score:.2f})"
                for i, (r, m) in enumerate(rows, 1)
            ),
        ],
    )
    return 0


def _catalog_for_tools(args: argparse.Namespace, settings: Settings) -> Any:
    from recommender import Catalog

    path = Path(args.model) if getattr(args, "model", None) else settings.model_path
    if path.is_file() and not getattr(args, "dataset", None):
        with contextlib.suppress(ModelFileError):
            return load_bundle(path).catalog
    dataset = load_dataset(
        args.dataset or settings.movielens_source, settings.data_dir, progress=False
    )
    return Catalog(dataset.movies, dataset.ratings)


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Return the ``moviebot`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="moviebot",
        description="Movie recommendations for a Discord server, "
        "from MovieLens plus members' ratings.",
    )
    parser.set_defaults(handler=cmd_default)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    sub.add_parser("run", help="run the Discord bot (needs DISCORD_TOKEN)").set_defaults(
        handler=cmd_run
    )
    sub.add_parser("console", help="use the bot's commands locally, without Discord").set_defaults(
        handler=cmd_console
    )
    sub.add_parser(
        "sync", help="publish the slash commands to Discord globally, then exit"
    ).set_defaults(handler=cmd_sync)

    data = sub.add_parser("data", help="manage MovieLens data")
    data_sub = data.add_subparsers(title="data commands", metavar="ACTION", required=True)
    fetch = data_sub.add_parser("fetch", help="download (checksum-verified) and check a data set")
    fetch.add_argument(
        "name", nargs="?", help=f"one of {', '.join(KNOWN_DATASETS)}, a path or a URL"
    )
    fetch.add_argument("--json", action="store_true", help="print JSON")
    fetch.set_defaults(handler=cmd_data_fetch)

    train = sub.add_parser("train", help="fit the model and save it")
    train.add_argument("--dataset", help="data set name, path or URL (default: MOVIELENS_SOURCE)")
    train.add_argument("--components", type=int, default=100, help="latent factors (default 100)")
    train.add_argument("--alpha", type=float, default=0.03, help="regularization (default 0.03)")
    train.add_argument("--max-iter", type=int, default=100, help="solver iterations (default 100)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument(
        "--with-chat", action="store_true", help="include the members' ratings from DATABASE_PATH"
    )
    train.add_argument("--output", help="where to save (default: MODEL_PATH)")
    train.add_argument("--json", action="store_true", help="print JSON")
    train.set_defaults(handler=cmd_train)

    rec = sub.add_parser("recommend", help="recommend movies for some ratings")
    rec.add_argument(
        "--rate",
        action="append",
        metavar="TITLE=STARS",
        help='a rating, e.g. --rate "Heat=4.5" (repeatable)',
    )
    rec.add_argument("--user", type=int, help="use this MovieLens user's ratings")
    rec.add_argument("-n", type=int, default=10, help="how many (default 10)")
    rec.add_argument("--genre", help="only this genre")
    rec.add_argument("--years", help="only these release years, e.g. 1990-1999")
    rec.add_argument("--model", help="model file (default: MODEL_PATH)")
    rec.add_argument("--dataset", help="data set for --user (default: MOVIELENS_SOURCE)")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(handler=cmd_recommend)

    search = sub.add_parser("search", help="find movies by title")
    search.add_argument("query")
    search.add_argument("-n", type=int, default=10, help="how many (default 10)")
    search.add_argument("--model", help="model file whose catalog to search (default: MODEL_PATH)")
    search.add_argument("--dataset", help="search this data set instead of the model's")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(handler=cmd_search)

    similar = sub.add_parser("similar", help="movies close to one movie in the model")
    similar.add_argument("title")
    similar.add_argument("-n", type=int, default=10, help="how many (default 10)")
    similar.add_argument("--model", help="model file (default: MODEL_PATH)")
    similar.add_argument("--json", action="store_true", help="print JSON")
    similar.set_defaults(handler=cmd_similar)

    from bot.cli_evaluate import add_evaluation_commands

    add_evaluation_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``moviebot`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"moviebot: configuration error: {problems}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        return int(args.handler(args, settings))
    except CommandError as exc:
        print(f"moviebot: {exc}", file=sys.stderr)
        return 2
    except (DataError, ModelFileError, UserFacingError) as exc:
        print(f"moviebot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
