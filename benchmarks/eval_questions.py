"""Which /quickrate question rule teaches the model most: NDCG@10 after 10 and 20 questions.

Held-out users (never trained on) answer questions from 80% of their ratings ("haven't seen it"
for any other film); their recommendations are scored on the other 20%. See
``recommender/questions.py`` and ``docs/onboarding.md``.

    uv run python -m benchmarks.eval_questions [--folds 5] [--max-folds N] [--k 100] [--variants]

``--variants`` adds the rules that were tried and lost (factor-space diversity, a log-popularity
prior, keeping away from films the member hasn't seen), so the docs' numbers can be reproduced.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping

import numpy as np

from benchmarks._common import machine, movielens_source, table
from recommender import NMFRecommender, load_dataset
from recommender.questions import (
    _candidates,
    _popular_first,
    default_rules,
    evaluate_questions,
    next_question,
)


def _unit(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.ones_like(values)


def _distance(model: NMFRecommender, cols: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Return 1 - the largest cosine similarity (NMF factors) of each of ``cols`` to ``others``."""
    h, norms = model.components_, model.item_norms_
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = (h[:, cols].T @ h[:, others]) / np.outer(norms[cols], norms[others])
    return np.clip(1.0 - np.nan_to_num(cosine).max(axis=1), 0.0, 1.0)


def variant(
    seen_power: float, new_power: float, unseen_power: float = 0.0
) -> Callable[..., int | None]:
    """Return a tried rule: model score x log-popularity^seen_power x distance^new_power.

    The distance is to the closest film already asked about or rated (max-min diversity);
    ``unseen_power`` instead weighs the distance to the films answered "haven't seen it" only.
    """

    def rule(
        model: NMFRecommender,
        ratings: Mapping[int, float],
        asked: Collection[int],
        *,
        allowed: np.ndarray | None = None,
        pool: int = 500,
    ) -> int | None:
        remaining = np.flatnonzero(_candidates(model, ratings, asked, allowed))
        if remaining.size == 0:
            return None
        cols = _popular_first(model, remaining)[:pool]
        score = _unit(model.score_items(ratings)[cols]) + 1e-9
        counts = model.item_counts_.astype(np.float64)
        if seen_power:
            seen = np.log1p(counts[cols]) / math.log1p(float(counts.max()))
            score = score * seen**seen_power
        covered = np.union1d(model.columns(asked), model.known_ratings(ratings)[0])
        if new_power and covered.size:
            score = score * _distance(model, cols, covered) ** new_power
        unseen = model.columns([m for m in asked if m not in ratings])
        if unseen_power and unseen.size:
            score = score * _distance(model, cols, unseen) ** unseen_power
        return int(model.item_ids_[cols[int(np.argmax(score))]])

    return rule


def pure_diversity(new_power: float) -> Callable[..., int | None]:
    """Return a tried rule with no model score: log-popularity x distance^new_power."""

    def rule(
        model: NMFRecommender,
        ratings: Mapping[int, float],
        asked: Collection[int],
        *,
        allowed: np.ndarray | None = None,
        pool: int = 500,
    ) -> int | None:
        remaining = np.flatnonzero(_candidates(model, ratings, asked, allowed))
        if remaining.size == 0:
            return None
        cols = _popular_first(model, remaining)[:pool]
        score = np.log1p(model.item_counts_[cols].astype(np.float64))
        covered = np.union1d(model.columns(asked), model.known_ratings(ratings)[0])
        if covered.size:
            score = score * _distance(model, cols, covered) ** new_power
        return int(model.item_ids_[cols[int(np.argmax(score))]])

    return rule


def same_stars(
    model: NMFRecommender,
    ratings: Mapping[int, float],
    asked: Collection[int],
    *,
    allowed: np.ndarray | None = None,
    pool: int = 500,
) -> int | None:
    """Tried rule: next_question as if every answer were 4 stars (seen matters, not stars)."""
    return next_question(
        model, dict.fromkeys(ratings, 4.0), [*asked, *ratings], allowed=allowed, pool=pool
    )


def raw_early(
    model: NMFRecommender,
    ratings: Mapping[int, float],
    asked: Collection[int],
    *,
    allowed: np.ndarray | None = None,
    pool: int = 500,
) -> int | None:
    """Tried rule: most rated first, then raw fold-in scores while the model would still blend."""
    if len(ratings) >= model.blend_below:
        return next_question(model, ratings, asked, allowed=allowed, pool=pool)
    remaining = np.flatnonzero(_candidates(model, ratings, asked, allowed))
    if remaining.size == 0:
        return None
    cols = _popular_first(model, remaining)[:pool]
    if model.known_ratings(ratings)[0].size == 0:
        return int(model.item_ids_[cols[0]])
    raw = model.fold_in(ratings) @ model.components_[:, cols]
    return int(model.item_ids_[cols[int(np.argmax(raw))]])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=None)
    parser.add_argument("--k", type=int, default=100, help="NMF factors (default settings: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", action="store_true", help="add the rules that lost")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    dataset = load_dataset(movielens_source(), progress=False)
    rules = default_rules(args.seed + 1)
    if args.variants:
        rules |= {
            "diversity: popularity x distance": pure_diversity(1.0),
            "diversity: popularity x distance^0.5": pure_diversity(0.5),
            "score x distance^0.1": variant(0.0, 0.1),
            "score x popularity^0.5": variant(0.5, 0.0),
            "score x popularity^0.5 x distance^0.05": variant(0.5, 0.05),
            "score x distance-to-unseen^0.5": variant(0.0, 0.0, 0.5),
            "score x popularity^0.5 x distance-to-unseen^0.25": variant(0.5, 0.0, 0.25),
            "score as if every answer were 4 stars": same_stars,
            "most rated, then raw fold-in below 3 answers": raw_early,
        }
    started = time.perf_counter()
    rows = evaluate_questions(
        dataset.ratings,
        n_folds=args.folds,
        max_folds=args.max_folds,
        seed=args.seed,
        model_factory=lambda: NMFRecommender(n_components=args.k),
        rules=rules,
    )
    elapsed = time.perf_counter() - started
    folds = args.folds if args.max_folds is None else min(args.folds, args.max_folds)
    print(
        f"ml-latest-small, NMF k={args.k} (other settings default), {folds} of {args.folds} "
        f"user folds, 80/20 split per held-out user, seed {args.seed}, {elapsed:.0f} s on "
        f"{machine()}\n"
    )
    print(
        table(
            ["questions", "rule", "users", "NDCG@10", "± SE", "gain vs popular", "± SE", "seen"],
            [
                [
                    r["questions"],
                    r["rule"],
                    r["users"],
                    f"{float(r['ndcg']):.4f}",
                    f"{float(r['ndcg_se']):.4f}",
                    f"{float(r.get('gain', 0.0)):+.4f}",
                    f"{float(r.get('gain_se', 0.0)):.4f}",
                    f"{float(r['answered']):.2f}",
                ]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
