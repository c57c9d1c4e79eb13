"""The recommender's tools: ``data fetch``, ``train``, ``recommend``, ``search``, ``similar``.

Titles and genres go through the same functions as the bot's (:func:`bot.service.find_movie`,
:func:`bot.service.find_genre`), so a title the bot understands is one these understand.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import (
    CommandError,
    chat_ratings,
    emit,
    load_model,
    member_id,
    non_negative_float,
    positive_int,
)

if TYPE_CHECKING:
    from bot.settings import Settings
    from recommender import Catalog, Movie


def cmd_data_fetch(args: argparse.Namespace, settings: Settings) -> int:
    """Download (checksum-verified) and check a data set."""
    from recommender import KNOWN_DATASETS, fetch_dataset, load_dataset, resolve_source

    name = args.name or settings.movielens_source
    if name in KNOWN_DATASETS:
        path = fetch_dataset(name, settings.data_dir)
    else:
        path = resolve_source(name, settings.data_dir)
    dataset = load_dataset(path, settings.data_dir, progress=False)
    emit(
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
    """Fit a model and save it, with timings and sizes (holding the refit lease for MODEL_PATH)."""
    output = Path(args.output) if args.output else settings.model_path
    if output.is_dir():
        raise CommandError(f"--output {output} is a folder; give the model file's path.")
    if output.resolve() != settings.model_path.resolve():
        return _train(args, settings, output)
    return asyncio.run(_train_holding_lease(args, settings, output))


async def _train_holding_lease(args: argparse.Namespace, settings: Settings, output: Path) -> int:
    """Train into the live MODEL_PATH while holding the database's refit lease."""
    from bot import db as database
    from bot.db import redact

    db = await database.connect(settings.database)
    try:
        lease = db.refit_lease()
        if not await lease.acquire():
            holder = await lease.holder()
            raise CommandError(
                f"Another moviebot (process {holder or 'unknown'}) is refitting the model for "
                f"{redact(settings.database)} into {settings.model_path}; save elsewhere with "
                "--output, or wait for it to finish."
            )
        try:
            return await asyncio.to_thread(_train, args, settings, output)
        finally:
            await lease.release()
    finally:
        await db.close()


def _train(args: argparse.Namespace, settings: Settings, output: Path) -> int:
    from recommender import fit_bundle, load_dataset, save_bundle
    from recommender.training import previous_fit

    params, tune = settings.model_params()
    overrides = {
        name: value
        for name, value in (
            ("n_components", args.components),
            ("alpha", args.alpha),
            ("max_iter", args.max_iter),
        )
        if value is not None
    }
    if overrides:
        params.update(overrides)
        tune = tune and not {"n_components", "alpha"} & overrides.keys()
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
        print(
            f"Using {shown} for this run only (the MODEL_* settings stay as they are).",
            file=sys.stderr,
        )
    started = time.perf_counter()
    dataset = load_dataset(args.dataset or settings.movielens_source, settings.data_dir)
    loaded = time.perf_counter()
    chat = asyncio.run(chat_ratings(settings)) if args.with_chat else None
    previous_model, previous_tuning = previous_fit(dataset, output)
    bundle = fit_bundle(
        dataset,
        chat,
        tune=tune,
        previous_tuning=previous_tuning,
        previous_model=previous_model,
        random_state=args.seed,
        **params,
    )
    fitted = time.perf_counter()
    save_bundle(bundle, output)
    saved = time.perf_counter()
    size = output.stat().st_size
    meta = bundle.metadata
    from bot import formatting as fmt

    emit(
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
            f"Fitted NMF in {fitted - loaded:.2f} s, {bundle.model.n_iter_} iterations. "
            + fmt.model_settings(meta.params, meta.tuning),
            f"Saved {output} ({size / 1e6:.1f} MB) in {saved - fitted:.2f} s",
        ],
    )
    return 0


def _movie(catalog: Catalog, title: str) -> Movie:
    from bot.errors import AmbiguousTitleError
    from bot.lookup import find_movie

    try:
        return find_movie(catalog, title)
    except AmbiguousTitleError as exc:
        options = "; ".join(m.label for m in exc.candidates[:5])
        raise CommandError(
            f"{exc} {options}. Add the year, e.g. “{exc.candidates[0].label}”."
        ) from exc


def _years(text: str | None) -> tuple[int | None, int | None] | None:
    if not text:
        return None
    first, _, last = text.partition("-")
    if not all(
        part.isascii() and part.isdigit() and len(part) <= 4 for part in (first, last) if part
    ):
        raise CommandError("--years takes FIRST-LAST, like 1990-1999 or 2000-")
    return (int(first) if first else None, int(last) if last else None)


def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    """Print recommendations for some ratings, from the saved model."""
    from bot.errors import UserFacingError
    from bot.lookup import find_genre
    from bot.stars import parse_rating
    from recommender import load_dataset

    bundle = load_model(settings, args.model)
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
        ratings[_movie(catalog, title.strip()).movie_id] = stars
    years = _years(args.years)
    try:
        genre = find_genre(catalog, args.genre)
    except UserFacingError as exc:
        raise CommandError(str(exc)) from exc
    model = bundle.model
    genres = [genre] if genre else None
    allowed = catalog.allowed(model.item_ids_, genres=genres, years=years)
    from recommender.base import DISCOVER

    picks = model.recommend(
        ratings, args.n, allowed=allowed, discover=DISCOVER if args.discover else 0.0
    )
    rows: list[dict[str, Any]] = []
    for rec in picks:
        movie = catalog.get(rec.movie_id)
        rows.append(
            {
                "movie_id": rec.movie_id,
                "title": movie.label if movie else str(rec.movie_id),
                "genres": list(movie.genres) if movie else [],
                "score": rec.score,
            }
        )
    header = (
        f"Top {len(rows)} for {picks.n_used} rating(s) (scores rank movies; they are not stars):"
        if picks.n_used
        else f"Top {len(rows)} popular movies (no ratings given):"
    )
    emit(
        args,
        {"based_on": picks.n_used, "recommendations": rows},
        [
            header,
            *(f"{i:2}. {r['title']}  [{', '.join(r['genres'])}]" for i, r in enumerate(rows, 1)),
        ],
    )
    return 0


def _catalog_for_search(args: argparse.Namespace, settings: Settings) -> Catalog:
    from recommender import Catalog, ModelFileError, load_dataset

    if args.model and not args.dataset:
        return load_model(settings, args.model).catalog  # an explicit model must load
    if not args.dataset and settings.model_path.is_file():
        try:
            return load_model(settings, None).catalog
        except ModelFileError:
            pass  # no usable saved model: search the data set instead
    dataset = load_dataset(
        args.dataset or settings.movielens_source, settings.data_dir, progress=False
    )
    return Catalog(dataset.movies, dataset.ratings)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Find movies by title."""
    catalog = _catalog_for_search(args, settings)
    matches = catalog.search(args.query, args.n)
    resolution = catalog.resolve(args.query)
    emit(
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
    """Print the movies closest to one movie in the model's factor space."""
    bundle = load_model(settings, args.model)
    movie = _movie(bundle.catalog, args.title)
    rows = [
        (r, bundle.catalog.get(r.movie_id)) for r in bundle.model.similar(movie.movie_id, args.n)
    ]
    emit(
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


def _undo_import(args: argparse.Namespace, settings: Settings) -> int:
    from bot import formatting as fmt
    from bot.cli.common import service_config
    from bot.service import MovieService

    async def run() -> tuple[int, int]:
        service = await MovieService.open(service_config(settings), fit_in_background=False)
        try:
            return await service.onboarding.undo_import(args.member)
        finally:
            await service.close()

    outcome = asyncio.run(run())
    emit(
        args,
        {"taken_back": outcome[0], "kept_rerated": outcome[1]},
        [fmt.plain(fmt.undone(outcome))],
    )
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Import a member's Letterboxd, IMDb or moviebot export into the database."""
    from bot.cli.common import service_config
    from bot.imports import read_export
    from bot.service import MovieService

    path = Path(args.file).expanduser()
    if args.unmatched and (
        Path(args.unmatched).is_dir() or not Path(args.unmatched).parent.is_dir()
    ):
        raise CommandError(f"--unmatched {args.unmatched}: that is not a file I can write.")
    try:
        data, size = read_export(str(path))
    except OSError as exc:
        raise CommandError(f"Could not read {path}: {exc.strerror or exc}") from exc
    replace = True if args.replace else (False if args.keep else None)

    async def run() -> Any:
        from bot.onboarding import ImportDecision

        service = await MovieService.open(service_config(settings), fit_in_background=False)
        try:
            outcome = await service.onboarding.import_file(
                args.member, data, path.name, replace=replace, size=size
            )
            if isinstance(outcome, ImportDecision):
                raise CommandError(
                    f"The file rates {outcome.conflicts} film(s) differently from member "
                    f"{args.member}'s ratings; run again with --keep or --replace."
                )
            return outcome
        finally:
            await service.close()

    from bot import formatting as fmt

    result = asyncio.run(run())
    if result.unmatched_csv and args.unmatched:
        Path(args.unmatched).write_text(result.unmatched_csv, encoding="utf-8")
    emit(
        args,
        {
            "format": result.format,
            "added": result.counts.added,
            "replaced": result.counts.replaced,
            "unchanged": result.counts.unchanged,
            "kept": result.counts.kept,
            "unmatched": result.unmatched,
            "skipped": result.skipped,
        },
        [
            fmt.plain(
                fmt.imported(result, args.unmatched or "the CSV that --unmatched FILE would write")
            )
        ],
    )
    return 0


def cmd_db_copy(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the configured database (every table) into another, empty one."""
    from bot.db import redact

    if str(args.to) == str(settings.database):
        raise CommandError("--to names the database moviebot already uses; give another one.")
    copied = asyncio.run(_copy(settings.database, args.to))
    print(f"Copied {redact(settings.database)} to {redact(args.to)}:")
    for table, count in copied.items():
        print(f"  {table:<20} {count:>9,} rows")
    print(
        "Point DATABASE_URL at the new database (and remove DATABASE_PATH) to use it; "
        "the old one is unchanged."
    )
    return 0


async def _copy(source_target: str | Path, destination: str) -> dict[str, int]:
    from bot import db as database
    from bot.db import StorageError, check_copy_target, newest_schema, redact
    from bot.db.copy import copy_database

    try:
        check_copy_target(destination)
    except StorageError as exc:
        raise CommandError(str(exc)) from exc
    if not database.exists(source_target):
        raise CommandError(
            f"There is no database at {redact(source_target)} to copy. Check DATABASE_PATH "
            "(or DATABASE_URL) and the folder you run moviebot in."
        )
    source = await database.connect(source_target, read_only=True)  # changes nothing there
    try:
        version, newest = await source.schema_version(), newest_schema(source.kind)
        if version > newest:
            raise CommandError(
                f"The database at {redact(source_target)} was written by a newer moviebot "
                f"(schema {version}; this one knows up to {newest}). Copy it with that moviebot."
            )
        if version < newest:
            raise CommandError(
                f"The database at {redact(source_target)} is at schema {version} and this "
                f"moviebot's is {newest}. Start moviebot on it once (it upgrades the database "
                "by itself), then copy."
            )
        target = await database.connect(destination)
        try:
            return await copy_database(source, target)
        finally:
            await target.close()
    finally:
        await source.close()


def add_commands(sub: Any) -> None:
    """Add ``data``, ``db``, ``train``, ``recommend``, ``search`` and ``similar``."""
    data = sub.add_parser("data", help="manage MovieLens data")
    data_sub = data.add_subparsers(title="data commands", metavar="ACTION", required=True)
    fetch = data_sub.add_parser("fetch", help="download (checksum-verified) and check a data set")
    fetch.add_argument(
        "name",
        nargs="?",
        help="ml-latest-small, ml-100k, ml-latest, ml-25m, ml-32m, a path or a URL",
    )
    fetch.add_argument("--json", action="store_true", help="print JSON")
    fetch.set_defaults(handler=cmd_data_fetch)

    db = sub.add_parser("db", help="manage the ratings database")
    db_sub = db.add_subparsers(title="db commands", metavar="ACTION", required=True)
    copy = db_sub.add_parser(
        "copy", help="copy the database (DATABASE_URL or DATABASE_PATH) into another, empty one"
    )
    copy.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the empty target: postgresql://user:password@host/db or sqlite:///path.db",
    )
    copy.set_defaults(handler=cmd_db_copy)

    train = sub.add_parser("train", help="fit the model and save it")
    train.add_argument("--dataset", help="data set name, path or URL (default: MOVIELENS_SOURCE)")
    train.add_argument(
        "--components", type=positive_int, help="latent factors, this run only (MODEL_COMPONENTS)"
    )
    train.add_argument(
        "--alpha", type=non_negative_float, help="regularization, this run only (MODEL_ALPHA)"
    )
    train.add_argument(
        "--max-iter", type=positive_int, help="solver iterations, this run only (MODEL_MAX_ITER)"
    )
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
    rec.add_argument("-n", type=positive_int, default=10, help="how many (default 10)")
    rec.add_argument("--genre", help="only this genre")
    rec.add_argument("--years", help="only these release years, e.g. 1990-1999")
    rec.add_argument(
        "--discover", action="store_true", help="fewer blockbusters: push popular films down"
    )
    rec.add_argument("--model", help="model file (default: MODEL_PATH)")
    rec.add_argument("--dataset", help="data set for --user (default: MOVIELENS_SOURCE)")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(handler=cmd_recommend)

    search = sub.add_parser("search", help="find movies by title")
    search.add_argument("query")
    search.add_argument("-n", type=positive_int, default=10, help="how many (default 10)")
    search.add_argument("--model", help="model file whose catalog to search (default: MODEL_PATH)")
    search.add_argument("--dataset", help="search this data set instead of the model's")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(handler=cmd_search)

    similar = sub.add_parser("similar", help="movies close to one movie in the model")
    similar.add_argument("title")
    similar.add_argument("-n", type=positive_int, default=10, help="how many (default 10)")
    similar.add_argument("--model", help="model file (default: MODEL_PATH)")
    similar.add_argument("--json", action="store_true", help="print JSON")
    similar.set_defaults(handler=cmd_similar)

    imp = sub.add_parser("import", help="import a member's Letterboxd, IMDb or moviebot ratings")
    imp.add_argument(
        "file", nargs="?", help="Letterboxd zip or ratings.csv, IMDb ratings CSV, /export CSV"
    )
    imp.add_argument("--member", type=member_id, required=True, help="the member's id (console: 0)")
    choice = imp.add_mutually_exclusive_group()
    choice.add_argument("--keep", action="store_true", help="keep the member's own ratings")
    choice.add_argument("--replace", action="store_true", help="take the file's ratings")
    choice.add_argument("--undo", action="store_true", help="take back the member's last import")
    imp.add_argument("--unmatched", help="write the rows that matched no film to this CSV")
    imp.add_argument("--json", action="store_true", help="print JSON")
    imp.set_defaults(handler=cmd_import)
