"""Offline evaluation of top-N recommendations.

Two protocols, both scored with top-N measures (a held-out rating of 4 stars or more is relevant):

* **new users** (the bot's real situation): users are split into folds; each fold's users are
  left out of training entirely, ``k`` of their ratings are revealed to the model (folded in,
  no refit) and the rest are the targets. Reported for several ``k``.
* **k-fold per user**: every user's ratings are split into folds; the model is trained on the
  other folds and asked to find the held-out fold.

Every model is measured on the same splits so numbers can be compared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recommender.base import Picks, Recommender, RecommendRequest, UserRatings

log = logging.getLogger(__name__)

RELEVANT = 4.0
DEFAULT_REVEAL = (1, 3, 5, 10, 20)

ModelFactory = Callable[[], Recommender]


@dataclass(frozen=True)
class Case:
    """One user's query: what the model sees and what it should find."""

    user_id: int
    known: dict[int, float]
    relevant: frozenset[int]


@dataclass(frozen=True)
class Fold:
    """Training ratings and the cases to score, for one split."""

    train: pd.DataFrame
    cases: dict[str, list[Case]]  # scenario name (e.g. "k=5") -> cases


def _user_groups(ratings: pd.DataFrame) -> dict[int, pd.DataFrame]:
    return {int(u): g for u, g in ratings.groupby("user_id", sort=True)}  # type: ignore[arg-type]


def reveal_cases(
    user_id: int, frame: pd.DataFrame, reveal: Sequence[int], rng: np.random.Generator
) -> dict[int, Case]:
    """Return one case per ``k``: ``k`` of the user's ratings revealed, the relevant rest to find.

    One random order per user, so the ratings revealed at a larger ``k`` include those at a
    smaller one. A ``k`` that leaves nothing relevant to find has no case.
    """
    order = rng.permutation(len(frame))
    movies = frame["movie_id"].to_numpy()[order]
    stars = frame["rating"].to_numpy()[order]
    cases = {}
    for k in reveal:
        relevant = frozenset(movies[k:][stars[k:] >= RELEVANT].tolist())
        if relevant:
            known = dict(zip(movies[:k].tolist(), stars[:k].astype(float).tolist(), strict=True))
            cases[k] = Case(user_id, known, relevant)
    return cases


def new_user_folds(
    ratings: pd.DataFrame,
    n_folds: int = 5,
    reveal: Sequence[int] = DEFAULT_REVEAL,
    seed: int = 0,
    max_folds: int | None = None,
) -> Iterator[Fold]:
    """Yield folds in which one group of users is held out and ``k`` of their ratings revealed.

    The revealed ratings for a larger ``k`` include those for a smaller one (one random order per
    user), and the targets are the user's relevant ratings not revealed at that ``k``.
    """
    rng = np.random.default_rng(seed)
    users = np.array(sorted(ratings["user_id"].unique()))
    rng.shuffle(users)
    groups = _user_groups(ratings)
    for fold_index, test_users in enumerate(np.array_split(users, n_folds)):
        if max_folds is not None and fold_index >= max_folds:
            break
        test_set = set(test_users.tolist())
        train = ratings.loc[~ratings["user_id"].isin(test_set)]
        cases: dict[str, list[Case]] = {f"k={k}": [] for k in reveal}
        for user in sorted(test_set):
            for k, case in reveal_cases(int(user), groups[int(user)], reveal, rng).items():
                cases[f"k={k}"].append(case)
        yield Fold(train, cases)


def per_user_folds(
    ratings: pd.DataFrame, n_folds: int = 5, seed: int = 0, max_folds: int | None = None
) -> Iterator[Fold]:
    """Yield classic k-fold splits: each user's ratings are divided among the folds."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(ratings), dtype=np.int64)
    for _, index in ratings.groupby("user_id").indices.items():
        assignment[index] = rng.permutation(len(index)) % n_folds
    for fold_index in range(n_folds):
        if max_folds is not None and fold_index >= max_folds:
            break
        test_mask = assignment == fold_index
        train = ratings.loc[~test_mask]
        test = ratings.loc[test_mask]
        train_groups = _user_groups(train)
        cases = []
        for user, frame in test.groupby("user_id"):
            relevant = frozenset(frame.loc[frame["rating"] >= RELEVANT, "movie_id"].tolist())
            if not relevant or int(user) not in train_groups:
                continue
            known_frame = train_groups[int(user)]
            known = dict(
                zip(
                    known_frame["movie_id"].tolist(),
                    known_frame["rating"].astype(float).tolist(),
                    strict=True,
                )
            )
            cases.append(Case(int(user), known, relevant))
        yield Fold(train, {"per-user": cases})


def metrics_at(recommended: np.ndarray, relevant: frozenset[int], n: int) -> dict[str, float]:
    """Return precision, recall, NDCG and average precision at ``n`` for one list."""
    hits = np.array([m in relevant for m in recommended[:n].tolist()], dtype=bool)
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    ideal = discounts[: min(len(relevant), n)].sum()
    cumulative = np.cumsum(hits)
    precision_at = cumulative / np.arange(1, hits.size + 1)
    return {
        "precision": float(hits.sum() / n),
        "recall": float(hits.sum() / len(relevant)),
        "ndcg": float((discounts[: hits.size] * hits).sum() / ideal),
        "map": float((precision_at * hits).sum() / min(len(relevant), n)),
    }


MEASURES = ("precision", "recall", "ndcg", "map")
PER_USER = (*MEASURES, "popularity_rank")
"""What is measured per user: the top-N measures and the mean popularity rank of the list."""


def popularity_ranks(model: Recommender) -> np.ndarray:
    """Return each column's rank by number of training ratings (1 = the most rated movie).

    Ties are broken as :func:`~recommender.base.top_n` breaks them (lowest id first).
    """
    order = np.lexsort((model.item_ids_, -model.item_counts_))
    ranks = np.empty(order.size, dtype=np.float64)
    ranks[order] = np.arange(1, order.size + 1, dtype=np.float64)
    return ranks


def case_measures(
    model: Recommender, cases: Sequence[Case], n: int = 10, seen: set[int] | None = None
) -> dict[str, np.ndarray]:
    """Return each measure of :data:`PER_USER` for every case, one value per case.

    The list scored is exactly what :meth:`Recommender.recommend` serves a member. The movies
    recommended are added to ``seen`` (for coverage) when it is given.
    """
    ranks = popularity_ranks(model)
    values: dict[str, list[float]] = {measure: [] for measure in PER_USER}
    for case in cases:
        recommended = np.array(model.recommend(case.known, n).movie_ids, dtype=np.int64)
        if seen is not None:
            seen.update(recommended.tolist())
        for measure, value in metrics_at(recommended, case.relevant, n).items():
            values[measure].append(value)
        picked = ranks[model.columns(recommended.tolist())]
        values["popularity_rank"].append(float(picked.mean()) if picked.size else np.nan)
    return {measure: np.asarray(v, dtype=np.float64) for measure, v in values.items()}


class Discovering(Recommender):
    """Serve ``model``'s "fewer blockbusters" lists (``discover=strength``), for evaluation.

    Fits and scores exactly as ``model``; only the ranking adds the popularity penalty.
    """

    def __init__(self, model: Recommender, strength: float) -> None:
        self.model = model
        self.strength = strength

    def fit(self, ratings: pd.DataFrame) -> Discovering:
        """Fit the wrapped model."""
        self.model.fit(ratings)
        self.item_ids_ = self.model.item_ids_
        self.item_counts_ = self.model.item_counts_
        return self

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        return self.model._score_known(cols, vals)

    def recommend(
        self,
        user_ratings: UserRatings,
        n: int = 10,
        *,
        exclude: Collection[int] = (),
        allowed: np.ndarray | None = None,
        discover: float = 0.0,
    ) -> Picks:
        """Return the wrapped model's list with this wrapper's ``strength`` (or ``discover``)."""
        return self.model.recommend(
            user_ratings, n, exclude=exclude, allowed=allowed, discover=discover or self.strength
        )

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[Picks]:
        """Return :meth:`recommend`'s list for each request, all scored together."""
        return self.model.recommend_many(
            [replace(r, discover=r.discover or self.strength) for r in requests]
        )


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Return the mean of per-user values and its standard error (std / sqrt(n)); NaN skipped."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return 0.0, 0.0
    se = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
    return float(values.mean()), se


def evaluate_cases(model: Recommender, cases: Sequence[Case], n: int = 10) -> dict[str, float]:
    """Return the mean measures at ``n`` of an already fitted model over ``cases``.

    Each measure ``m`` comes with its standard error as ``m_se``.
    """
    out: dict[str, float] = {}
    for measure, values in case_measures(model, cases, n).items():
        out[measure], out[f"{measure}_se"] = mean_and_se(values)
    return out


@dataclass(frozen=True)
class Result:
    """Mean measures of one model in one scenario, over all folds.

    Each ``*_se`` is the standard error of the mean above it (per-user std / sqrt(users)).
    ``coverage`` is the share of the catalog in anyone's list; ``popularity_rank`` the mean rank
    by number of training ratings of the movies recommended (1 = the most rated; lower means
    more blockbusters).
    """

    model: str
    scenario: str
    users: int
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    fit_seconds: float
    precision_se: float = 0.0
    recall_se: float = 0.0
    ndcg_se: float = 0.0
    map_se: float = 0.0
    popularity_rank: float = 0.0
    popularity_rank_se: float = 0.0


def evaluate(
    models: Mapping[str, ModelFactory],
    folds: Sequence[Fold] | Iterator[Fold],
    n: int = 10,
    progress: bool = False,
) -> list[Result]:
    """Fit every model on every fold and score it on the fold's cases."""
    from tqdm import tqdm

    values: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {}
    covered: dict[tuple[str, str], set[int]] = {}
    fit_time: dict[str, float] = {}
    n_items = 0
    for fold in tqdm(list(folds), desc="folds", disable=not progress):
        n_items = max(n_items, int(fold.train["movie_id"].nunique()))
        for name, factory in models.items():
            started = time.perf_counter()
            model = factory()
            model.fit(fold.train)
            fit_time[name] = fit_time.get(name, 0.0) + time.perf_counter() - started
            for scenario, cases in fold.cases.items():
                key = (name, scenario)
                measured = case_measures(model, cases, n, covered.setdefault(key, set()))
                kept = values.setdefault(key, {measure: [] for measure in PER_USER})
                for measure, per_case in measured.items():
                    kept[measure].append(per_case)
    results = []
    for (name, scenario), kept in values.items():
        stats: dict[str, float] = {}
        for measure, parts in kept.items():
            stats[measure], stats[f"{measure}_se"] = mean_and_se(np.concatenate(parts))
        results.append(
            Result(
                model=name,
                scenario=scenario,
                users=int(sum(part.size for part in kept["ndcg"])),
                coverage=len(covered[(name, scenario)]) / max(n_items, 1),
                fit_seconds=fit_time[name],
                **stats,
            )
        )
    return results


def results_table(results: Sequence[Result]) -> pd.DataFrame:
    """Return the results as a table, one row per scenario and model."""
    frame = pd.DataFrame([r.__dict__ for r in results])
    if frame.empty:
        return frame
    scenario_order = {s: i for i, s in enumerate(dict.fromkeys(frame["scenario"]))}
    frame["_order"] = frame["scenario"].map(scenario_order)
    return frame.sort_values(["_order", "ndcg"], ascending=[True, False]).drop(columns="_order")
