"""``moviebot evaluate`` and ``moviebot report``: quality next to baselines, and charts."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import CommandError, chat_ratings, non_negative_float, positive_int

if TYPE_CHECKING:
    from bot.settings import Settings
    from recommender import NMFRecommender
    from recommender.evaluation import ModelFactory

DEFAULT_REVEAL = (1, 3, 5, 10, 20)  # recommender.evaluation.DEFAULT_REVEAL, without importing it
EASE_L2 = 30000.0  # recommender.baselines.EASERecommender's default, without importing it


def _listed(text: str, parse: Callable[[str], Any]) -> tuple[Any, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a list separated by commas, got {text!r}")
    return tuple(parse(part) for part in parts)


def _ints(text: str) -> tuple[int, ...]:
    """Parse whole numbers of at least 1, separated by commas."""
    return _listed(text, positive_int)


def _floats(text: str) -> tuple[float, ...]:
    """Parse numbers of at least 0, separated by commas."""
    return _listed(text, non_negative_float)


def _folds(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("expected at least 2 folds (one to fit, one to test)")
    return value


def _nmf(**params: Any) -> Callable[[], NMFRecommender]:
    from recommender import NMFRecommender

    return lambda: NMFRecommender(**params)


def _discovering(strength: float, **params: Any) -> Callable[[], Any]:
    from recommender import NMFRecommender
    from recommender.evaluation import Discovering

    return lambda: Discovering(NMFRecommender(**params), strength)


def models_for(args: argparse.Namespace) -> dict[str, ModelFactory]:
    """Return the models to compare: the baselines plus one NMF per swept setting."""
    from recommender.baselines import (
        EASERecommender,
        ItemKNNRecommender,
        PopularityRecommender,
        PureSVDRecommender,
    )

    models: dict[str, ModelFactory] = {
        "most popular": lambda: PopularityRecommender("count"),
        "damped mean": lambda: PopularityRecommender("damped_mean"),
        "PureSVD k=50": lambda: PureSVDRecommender(50),
    }
    if not args.no_knn:
        models["item-kNN cosine"] = lambda: ItemKNNRecommender()
    if not args.no_ease:
        for l2 in args.ease_l2:
            models[f"EASE l2={l2:g}"] = functools.partial(EASERecommender, l2=l2)
    first = {
        "n_components": args.components[0],
        "alpha": args.alpha[0],
        "max_iter": args.max_iter[0],
    }
    if args.tuned:
        from recommender.tuning import TunedNMFRecommender

        models["NMF tuned"] = functools.partial(TunedNMFRecommender, start=first)
    for strength in args.discover:
        models[f"NMF discover={strength:g}"] = _discovering(strength, **first)
    for components, alpha, iterations, reg in itertools.product(
        args.components, args.alpha, args.max_iter, args.fold_in_reg
    ):
        name = f"NMF k={components} alpha={alpha:g} it={iterations}"
        name += f" reg={reg:g}" if reg != 1 else ""
        models[name] = _nmf(
            n_components=components, alpha=alpha, max_iter=iterations, fold_in_reg=reg
        )
    return models


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Measure recommendation quality against baselines on the same splits."""
    from recommender import load_dataset
    from recommender.evaluation import evaluate, new_user_folds, per_user_folds, results_table
    from recommender.layouts import apply_layout

    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise CommandError(f"--output {args.output}: its folder does not exist.")
    dataset = load_dataset(args.dataset or settings.movielens_source, settings.data_dir)
    dataset = apply_layout(dataset, args.layout)
    if dataset.ratings.empty:
        raise CommandError(
            f"The {args.layout} layout of this data set has no ratings left "
            "(no user has 20 or more ratings among its 1,700 most rated movies)."
        )
    if args.protocol == "questions":
        return _evaluate_questions(args, dataset)
    models = models_for(args)
    folds: list[Any] = []
    if args.protocol in {"new-users", "both"}:
        folds += list(
            new_user_folds(dataset.ratings, args.folds, args.reveal, args.seed, args.max_folds)
        )
    if args.protocol in {"per-user", "both"}:
        folds += list(per_user_folds(dataset.ratings, args.folds, args.seed, args.max_folds))
    results = evaluate(models, folds, n=args.n, progress=not args.json)
    table = results_table(results)
    payload = {
        "dataset": dataset.name,
        "layout": args.layout,
        "folds": args.folds,
        "max_folds": args.max_folds,
        "seed": args.seed,
        "n": args.n,
        "results": [asdict(r) for r in results],
    }
    if _saved_or_printed(args, payload):
        return 0
    print(
        f"{dataset.name}: top-{args.n} measures, relevant = held-out rating >= 4, "
        f"{args.folds}-fold splits (ran {len(folds)} folds in all), seed {args.seed}; "
        "± is one standard error (per-user std / sqrt(users)); pop. rank = mean rank of the "
        "picks by number of ratings (1 = most rated)"
    )
    for scenario, group in table.groupby("scenario", sort=False):
        print(
            f"\n{scenario}"
            + (
                "  (new users: k ratings revealed, fold-in, no refit)"
                if str(scenario).startswith("k=")
                else ""
            )
        )
        print(format_group(group).to_string(index=False))
    sys.stdout.flush()
    return 0


def _saved_or_printed(args: argparse.Namespace, payload: dict[str, Any]) -> bool:
    """Write the JSON results to ``--output``; print them for ``--json`` (then return True)."""
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(payload, indent=2))
    if args.json:
        print(json.dumps(payload, indent=2))
    return bool(args.json)


def _evaluate_questions(args: argparse.Namespace, dataset: Any) -> int:
    """The /quickrate protocol: which question rule teaches the model most (docs/onboarding.md)."""
    from recommender.questions import evaluate_questions

    components = args.components[0] if args.components else 100
    rows = evaluate_questions(
        dataset.ratings,
        n_folds=args.folds,
        max_folds=args.max_folds,
        questions=args.questions,
        seed=args.seed,
        model_factory=_nmf(n_components=components),
        n=args.n,
    )
    payload = {"dataset": dataset.name, "protocol": "questions", "results": rows}
    if _saved_or_printed(args, payload):
        return 0
    print(
        f"{dataset.name}: held-out members answer up to Q questions from 80% of their ratings "
        f"(other films: haven't seen it); NDCG@{args.n} on the other 20%; ± is one standard "
        "error; gain is paired against asking the most popular films"
    )
    for row in rows:
        gain = f"  gain {row['gain']:+.4f} ± {row['gain_se']:.4f}" if "gain" in row else ""
        print(
            f"Q={row['questions']:>2}  {row['rule']:<16} NDCG {row['ndcg']:.4f} ± "
            f"{row['ndcg_se']:.4f}  seen {row['answered']:.2f}{gain}"
        )
    return 0


def format_group(group: Any) -> Any:
    """Return one scenario's results as printable columns, each mean with its standard error."""
    shown = group[["model", "users"]].copy()
    for measure in ("precision", "recall", "ndcg", "map"):
        shown[f"{measure} ± se"] = [
            f"{mean:.4f} ± {se:.4f}"
            for mean, se in zip(group[measure], group[f"{measure}_se"], strict=True)
        ]
    shown["coverage"] = [f"{v:.4f}" for v in group["coverage"]]
    shown["pop. rank ± se"] = [
        f"{mean:.0f} ± {se:.0f}"
        for mean, se in zip(group["popularity_rank"], group["popularity_rank_se"], strict=True)
    ]
    return shown


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the HTML report with charts of the data, the server and the model."""
    import asyncio

    from bot import db as database
    from recommender import Catalog, ModelFileError, load_bundle, load_dataset
    from recommender.report import build_report

    dataset = load_dataset(args.dataset or settings.movielens_source, settings.data_dir)
    chat = None
    if database.exists(settings.database):  # never creates an empty database to chart
        chat = asyncio.run(chat_ratings(settings))
    model = catalog = None
    model_path = Path(args.model) if args.model else settings.model_path
    try:
        bundle = load_bundle(model_path)
        if bundle.metadata.data_fingerprint == dataset.fingerprint:
            model, catalog = bundle.model, Catalog(dataset.movies, dataset.ratings)
        else:
            print(f"(The model at {model_path} was fitted on other data; no factor map.)")
    except ModelFileError as exc:
        print(f"(No usable model, so no factor map: {exc})")
    evaluation = None
    if args.evaluation:
        try:
            evaluation = json.loads(Path(args.evaluation).read_text())
        except (OSError, ValueError) as exc:
            print(f"(Could not read {args.evaluation}: {exc}; no evaluation section.)")
    path = build_report(
        Path(args.output),
        dataset.movies,
        dataset.ratings,
        dataset_name=dataset.name,
        chat=chat,
        model=model,
        catalog=catalog,
        evaluation=evaluation,
    )
    print(f"Wrote {path} and its PNG charts in {path.parent}")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``evaluate`` and ``report`` to the ``moviebot`` parser."""
    rep = sub.add_parser("report", help="write an HTML report with charts of the data and model")
    rep.add_argument("--dataset", help="data set name, path or URL (default: MOVIELENS_SOURCE)")
    rep.add_argument("--model", help="model file for the factor map (default: MODEL_PATH)")
    rep.add_argument("--evaluation", help="JSON from `moviebot evaluate --output` to include")
    rep.add_argument("--output", default="reports", help="output folder (default reports/)")
    rep.set_defaults(handler=cmd_report)

    ev = sub.add_parser("evaluate", help="measure recommendation quality against baselines")
    ev.add_argument("--dataset", help="data set name, path or URL (default: MOVIELENS_SOURCE)")
    ev.add_argument(
        "--layout",
        choices=("full", "dense"),
        default="full",
        help="the data set as it is (default), or dense: its 1,700 most rated movies and the "
        "users with 20+ ratings of them (an ml-100k-like shape)",
    )
    ev.add_argument(
        "--protocol",
        choices=("new-users", "per-user", "both", "questions"),
        default="both",
        help="new users with k ratings revealed, per-user k-fold, both (default), or "
        "questions: /quickrate's question rule against popular and random questions",
    )
    ev.add_argument(
        "--questions",
        type=_ints,
        default=(10, 20),
        help="questions asked per member with --protocol questions (default 10,20)",
    )
    ev.add_argument("--folds", type=_folds, default=5, help="number of folds (default 5)")
    ev.add_argument("--max-folds", type=positive_int, help="run only the first N folds (quicker)")
    ev.add_argument(
        "--reveal",
        type=_ints,
        default=DEFAULT_REVEAL,
        help="ratings revealed per new user (default 1,3,5,10,20)",
    )
    ev.add_argument("--components", type=_ints, default=(100,), help="NMF factors; a list sweeps")
    ev.add_argument(
        "--alpha", type=_floats, default=(0.03,), help="NMF regularization; a list sweeps"
    )
    ev.add_argument("--max-iter", type=_ints, default=(100,), help="NMF iterations; a list sweeps")
    ev.add_argument(
        "--fold-in-reg",
        type=_floats,
        default=(1.0,),
        help="NMF fold-in regularization, times alpha (default 1); a list sweeps",
    )
    ev.add_argument(
        "--tuned",
        action="store_true",
        help="add an NMF whose settings are tuned on each fold's training users, "
        "starting from the first --components/--alpha",
    )
    ev.add_argument(
        "--discover",
        type=_floats,
        default=(),
        help="add the first NMF setting's 'fewer blockbusters' lists at these strengths "
        "(e.g. 0.1,0.3)",
    )
    ev.add_argument(
        "--no-knn", action="store_true", help="skip item-kNN (memory grows with movies²)"
    )
    ev.add_argument(
        "--ease-l2",
        type=_floats,
        default=(EASE_L2,),
        help=f"EASE ridge λ (default {EASE_L2:g}); a list sweeps",
    )
    ev.add_argument(
        "--no-ease", action="store_true", help="skip EASE (memory grows with catalog movies²)"
    )
    ev.add_argument("-n", type=positive_int, default=10, help="list length (default 10)")
    ev.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    ev.add_argument("--output", help="also write the JSON results to this file")
    ev.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ev.set_defaults(handler=cmd_evaluate)
