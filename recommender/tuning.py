"""Choose the NMF model's ``n_components``, ``alpha``, ``blend_below`` and ``fold_in_reg``.

scikit-learn scales ``alpha`` by the matrix shape, so a value tuned on one data set is wrong on
another. :func:`tune_nmf` re-chooses them on held-out users of the data at hand, the way
``moviebot evaluate`` measures quality:

* A share of the training users (``share``, default 25%) becomes the tuning group; the caller
  passes only the ratings the model will be trained on, so the tuning users are disjoint from
  the users :func:`~recommender.training.fit_bundle` holds out for its quality figure.
* Two thirds of the tuning group are **new members**: left out of the fit, ``k`` of their
  ratings revealed (k in 1, 3, 5, 10, 20) and folded in, the rest to find (NDCG@10). The other
  third are **warm members**: 80% of their ratings are in the fit, the other 20% to find.
* The score is the documented blend :data:`NEW_MEMBER_WEIGHT` x new-member NDCG@10 (the mean
  over k) + (1 - :data:`NEW_MEMBER_WEIGHT`) x warm-member NDCG@10. New members weigh more: the
  bot's everyday request is a member who rated a handful of movies in chat.
* The grid is coarse-to-fine around the previous choice: ``alpha`` walks in steps of x3 (try
  x1/3 and x3; move to the winner; repeat, at most ``max_moves`` times), then
  ``n_components`` walks in steps of x2/3 and x3/2 at that ``alpha``, then, only if ``alpha``
  moved, ``alpha`` x {1/√3, √3} around the new one. When the previous choice still holds that
  is 5 fits, so re-tuning a stable data set stays cheap; a far-off start takes more. Last, on
  the chosen fit, two settings that change only scoring and so cost no fit: ``blend_below``
  (below how many ratings scores are blended toward popularity, from :data:`BLEND_BELOW`),
  then ``fold_in_reg`` (the fold-in's regularization as a multiple of ``alpha``) walking on
  :data:`FOLD_IN_REGS`, then ``blend_below`` again, as the two interact. For these a
  challenger needs to win by one standard error rather than ``margin``. Each
  score has a standard error (per-user std / sqrt(users)); a point replaces the previous choice
  only if it beats it by more than ``margin`` (default 2) standard errors of the paired
  difference (the same users, both settings), so re-tuning does not chase noise.

On a large data set the tuning works on a sample: whole users drawn at random until
:data:`TUNING_MAX_RATINGS` ratings, the new and warm members among them. scikit-learn scales
the penalties by the matrix shape so that ``alpha`` means the same on a sample of the users as
on all of them, which is what lets a choice made on the sample carry over; each point of the
walk then costs a fit of the sample, not of the whole set. The sample may favour a smaller
``n_components`` than all the data would support (more data carries more factors).

The result, :class:`Tuning`, is small and frozen, goes into the model's metadata
(:meth:`Tuning.as_dict`) and is cached per data set with :func:`tuning_key`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommender.base import Recommender
from recommender.evaluation import RELEVANT, Case, case_measures, reveal_cases
from recommender.model import NMFRecommender

log = logging.getLogger(__name__)

TUNING_VERSION = 2
"""Bumped whenever the protocol changes, so cached choices made the old way are not reused."""
NEW_MEMBER_WEIGHT = 0.75
"""Weight of new-member quality in the tuning score; warm-member quality has the rest."""
TUNING_REVEAL = (1, 3, 5, 10, 20)
BLEND_BELOW = (2, 3, 4, 5, 6, 8)
"""Candidates for ``blend_below`` (how many ratings before the model is trusted alone)."""
FOLD_IN_REGS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""The ladder ``fold_in_reg`` walks on, one rung at a time (a value off it starts at 1)."""
Point = tuple[int, float, int, float]
"""A grid point: (``n_components``, ``alpha``, ``blend_below``, ``fold_in_reg``)."""
TUNING_MAX_RATINGS = 500_000
"""Above this many ratings the tuning works on a random sample of whole users this size."""
WARM_SHARE = 0.2
"""Share of each warm member's ratings held out of the fit for them to find."""


@dataclass(frozen=True)
class Score:
    """The tuning score of one grid point, with its parts and standard errors."""

    n_components: int
    alpha: float
    blend_below: int
    score: float
    score_se: float
    new_member: float
    new_member_se: float
    warm_member: float
    warm_member_se: float
    diff_se: float = 0.0
    """Standard error of the paired difference to the chosen point (0 for the chosen one)."""
    fold_in_reg: float = 1.0


@dataclass(frozen=True)
class Tuning:
    """The chosen NMF parameters and the evidence for them.

    ``params`` is every :class:`NMFRecommender` parameter (the tuned ones and the start's
    others); ``score`` is the chosen point's, ``grid`` every point measured, best first.
    """

    params: dict[str, Any]
    score: Score
    grid: tuple[Score, ...]
    new_members: int
    warm_members: int
    seconds: float
    key: str = ""
    version: int = TUNING_VERSION
    ratings: int = 0
    """Size of the sample the tuning worked on; 0 when it used all the training data."""

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for the model metadata (JSON-friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tuning:
        """Rebuild a :class:`Tuning` from :meth:`as_dict`'s output."""
        return cls(
            params=dict(data["params"]),
            score=Score(**data["score"]),
            grid=tuple(Score(**point) for point in data["grid"]),
            new_members=int(data["new_members"]),
            warm_members=int(data["warm_members"]),
            seconds=float(data["seconds"]),
            key=str(data.get("key", "")),
            version=int(data.get("version", 0)),
            ratings=int(data.get("ratings", 0)),
        )


@dataclass(frozen=True)
class TuningSplit:
    """Who the tuning is scored on: the fit's ratings and the two groups' cases."""

    train: pd.DataFrame
    new_cases: dict[int, list[Case]] = field(default_factory=dict)  # user -> one case per k
    warm_cases: list[Case] = field(default_factory=list)


def tuning_key(
    fingerprint: str,
    start: Mapping[str, Any],
    *,
    share: float = 0.25,
    seed: int = 0,
    margin: float = 2.0,
    max_ratings: int = TUNING_MAX_RATINGS,
) -> str:
    """Return the cache key of a tuning: same data, start point and protocol, same choice."""
    payload = json.dumps(
        {
            "fingerprint": fingerprint,
            "start": {k: start[k] for k in sorted(start)},
            "share": share,
            "seed": seed,
            "margin": margin,
            "max_ratings": max_ratings,
            "version": TUNING_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(payload.encode(), usedforsecurity=False).hexdigest()[:16]


def sample_users(ratings: pd.DataFrame, max_ratings: int, seed: int = 0) -> pd.DataFrame:
    """Return the ratings of random whole users, as many as fit in ``max_ratings``.

    All of ``ratings`` when it is no larger. Users are drawn in a seeded random order and kept
    while the running total of their ratings stays within the limit.
    """
    if len(ratings) <= max_ratings:
        return ratings
    counts = ratings.groupby("user_id").size()
    order = np.random.default_rng(seed).permutation(len(counts))
    within = np.cumsum(counts.to_numpy()[order]) <= max_ratings
    kept = counts.index.to_numpy()[order[within]]
    return ratings.loc[ratings["user_id"].isin(kept)]


def split_for_tuning(ratings: pd.DataFrame, share: float = 0.25, seed: int = 0) -> TuningSplit:
    """Return the fit's ratings and the new- and warm-member cases of a ``share`` of users."""
    ratings = ratings.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    users = np.sort(ratings["user_id"].unique())
    n_tuning = min(len(users) - 1, max(2, round(len(users) * share)))
    if n_tuning < 2:
        raise ValueError("Too few users to tune on.")
    chosen = rng.choice(users, n_tuning, replace=False)
    n_new = max(1, round(n_tuning * 2 / 3))
    new_users, warm_users = set(chosen[:n_new].tolist()), set(chosen[n_new:].tolist())
    tuning_rows = ratings.loc[ratings["user_id"].isin(new_users | warm_users)]
    groups = {int(u): g for u, g in tuning_rows.groupby("user_id")}  # type: ignore[arg-type]
    new_cases: dict[int, list[Case]] = {}
    for user in sorted(new_users):
        cases = reveal_cases(user, groups[user], TUNING_REVEAL, rng)
        if cases:
            new_cases[user] = [cases[k] for k in sorted(cases)]
    held_rows: list[np.ndarray] = []
    warm_cases: list[Case] = []
    for user in sorted(warm_users):
        frame = groups[user]
        held = rng.random(len(frame)) < WARM_SHARE
        relevant = frozenset(frame.loc[held & (frame["rating"] >= RELEVANT), "movie_id"].tolist())
        if not relevant or held.all():
            continue
        kept = frame.loc[~held]
        known = dict(
            zip(kept["movie_id"].tolist(), kept["rating"].astype(float).tolist(), strict=True)
        )
        warm_cases.append(Case(user, known, relevant))
        held_rows.append(frame.index[held].to_numpy())
    drop = ratings["user_id"].isin(new_users)
    if held_rows:
        drop |= ratings.index.isin(np.concatenate(held_rows))
    return TuningSplit(ratings.loc[~drop], new_cases, warm_cases)


def _per_user(model: Recommender, split: TuningSplit) -> tuple[np.ndarray, np.ndarray]:
    """Return new members' NDCG@10 (mean over their k) and warm members' NDCG@10."""
    new = np.array(
        [case_measures(model, cases)["ndcg"].mean() for cases in split.new_cases.values()]
    )
    warm = case_measures(model, split.warm_cases)["ndcg"]
    return new, warm


def _round(alpha: float) -> float:
    return float(f"{alpha:.4g}")


def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0


def _blend_se(new_se: float, warm_se: float) -> float:
    return math.hypot(NEW_MEMBER_WEIGHT * new_se, (1 - NEW_MEMBER_WEIGHT) * warm_se)


def tune_nmf(
    ratings: pd.DataFrame,
    start: Mapping[str, Any] | None = None,
    *,
    share: float = 0.25,
    seed: int = 0,
    fingerprint: str = "",
    max_components: int = 300,
    margin: float = 2.0,
    max_moves: int = 3,
    max_ratings: int = TUNING_MAX_RATINGS,
    fixed: Collection[str] = (),
) -> Tuning:
    """Choose ``n_components``, ``alpha``, ``blend_below`` and ``fold_in_reg`` for the model.

    Parameters
    ----------
    ratings : pandas.DataFrame
        The ratings the final model will be fitted on (never the users held out to measure it).
    start : mapping, optional
        The previous choice (and any other NMF parameters, kept as they are); the grid is
        centred on it. Default: the model's defaults.
    share : float, default=0.25
        Share of the users in the tuning group (two thirds new members, one third warm).
    seed : int, default=0
        Seed of the tuning split.
    fingerprint : str, optional
        The data set's fingerprint, recorded as the result's cache key (:func:`tuning_key`).
    max_components : int, default=300
        Upper bound on ``n_components`` (fit time grows with it).
    margin : float, default=2.0
        How many standard errors of the paired difference a challenger must win by.
    max_moves : int, default=3
        How many steps each walk (``alpha``, then ``n_components``) may take.
    max_ratings : int, default=TUNING_MAX_RATINGS
        Above this many ratings, tune on a random sample of whole users this size.
    fixed : collection of str, optional
        ``"blend_below"`` and/or ``"fold_in_reg"``: kept at ``start``'s value, not tuned.
    """
    started = time.perf_counter()
    base = NMFRecommender().get_params()
    base.update(start or {})
    sample = sample_users(ratings, max_ratings, seed)
    split = split_for_tuning(sample, share, seed)
    if not split.new_cases or not split.warm_cases:
        raise ValueError("Too few users with relevant ratings to tune on.")
    measured: dict[Point, tuple[np.ndarray, np.ndarray]] = {}
    fitted: dict[tuple[int, float], NMFRecommender] = {}

    def measure(point: Point) -> None:
        if point in measured:
            return
        n_components, alpha, blend_below, fold_in_reg = point
        if (n_components, alpha) not in fitted:
            params = {**base, "n_components": n_components, "alpha": alpha}
            fitted[(n_components, alpha)] = NMFRecommender(**params).fit(split.train)
        model = fitted[(n_components, alpha)]
        model.set_params(blend_below=blend_below, fold_in_reg=fold_in_reg)  # scoring only
        measured[point] = _per_user(model, split)

    def blend(point: Point) -> float:
        new, warm = measured[point]
        return NEW_MEMBER_WEIGHT * float(new.mean()) + (1 - NEW_MEMBER_WEIGHT) * float(warm.mean())

    def diff_se(a: Point, b: Point) -> float:
        new = measured[a][0] - measured[b][0]
        warm = measured[a][1] - measured[b][1]
        return _blend_se(_se(new), _se(warm))

    def better(candidate: Point, incumbent: Point, by: float) -> bool:
        return blend(candidate) - blend(incumbent) > by * diff_se(candidate, incumbent)

    def step(incumbent: Point, points: Sequence[Point], by: float = margin) -> Point:
        for point in points:
            measure(point)
        challengers = [p for p in points if p != incumbent]
        best = max(challengers, key=blend, default=incumbent)
        return best if best != incumbent and better(best, incumbent, by) else incumbent

    def walk(
        incumbent: Point, neighbours: Callable[[Point], list[Point]], by: float = margin
    ) -> Point:
        """Step to the best neighbour while one wins, at most ``max_moves`` times."""
        for _ in range(max_moves):
            moved = step(incumbent, [incumbent, *neighbours(incumbent)], by)
            if moved == incumbent:
                break
            incumbent = moved
        return incumbent

    def alphas(factor: float) -> Callable[[Point], list[Point]]:
        # Rounded, so a walk back (0.3 / 3 vs 0.0333 x 3) lands on a point already measured.
        return lambda p: [
            (p[0], _round(p[1] / factor), p[2], p[3]),
            (p[0], _round(p[1] * factor), p[2], p[3]),
        ]

    def sizes(p: Point) -> list[Point]:
        smaller, larger = max(2, round(p[0] * 2 / 3)), min(max_components, round(p[0] * 3 / 2))
        return [(k, p[1], p[2], p[3]) for k in (smaller, larger) if k != p[0]]

    def fold_in_regs(p: Point) -> list[Point]:
        rung = FOLD_IN_REGS.index(p[3]) if p[3] in FOLD_IN_REGS else FOLD_IN_REGS.index(1.0)
        near = FOLD_IN_REGS[max(0, rung - 1) : rung + 2]
        return [(p[0], p[1], p[2], r) for r in near if r != p[3]]

    def blends(p: Point) -> list[Point]:
        return [(p[0], p[1], b, p[3]) for b in BLEND_BELOW if b != p[2]]

    start_point = (
        int(base["n_components"]),
        float(base["alpha"]),
        int(base["blend_below"]),
        float(base["fold_in_reg"]),
    )
    chosen = walk(start_point, alphas(3.0))
    chosen = walk(chosen, sizes)
    if chosen[1] != start_point[1]:  # alpha moved whole steps: look between them
        chosen = step(chosen, [chosen, *alphas(math.sqrt(3))(chosen)])
    # fold_in_reg and blend_below change only scoring: a wrong call costs little, so one
    # standard error will do. They interact (blending toward popularity is another way to rein
    # in a member's few ratings): blend_below, then fold_in_reg with it, then blend_below again.
    light = min(margin, 1.0)
    blend_fixed, reg_fixed = "blend_below" in fixed, "fold_in_reg" in fixed
    if not blend_fixed:
        chosen = step(chosen, [chosen, *blends(chosen)], by=light)
    if not reg_fixed:
        chosen = walk(chosen, fold_in_regs, by=light)
    if not blend_fixed and not reg_fixed:
        chosen = step(chosen, [chosen, *blends(chosen)], by=light)

    grid = []
    for point in measured:
        new, warm = measured[point]
        grid.append(
            Score(
                n_components=point[0],
                alpha=point[1],
                blend_below=point[2],
                fold_in_reg=point[3],
                score=blend(point),
                score_se=_blend_se(_se(new), _se(warm)),
                new_member=float(new.mean()),
                new_member_se=_se(new),
                warm_member=float(warm.mean()),
                warm_member_se=_se(warm),
                diff_se=0.0 if point == chosen else diff_se(point, chosen),
            )
        )
    grid.sort(key=lambda s: -s.score)
    params = {
        **base,
        "n_components": chosen[0],
        "alpha": chosen[1],
        "blend_below": chosen[2],
        "fold_in_reg": chosen[3],
    }
    result = Tuning(
        params=params,
        score=next(
            s for s in grid if (s.n_components, s.alpha, s.blend_below, s.fold_in_reg) == chosen
        ),
        grid=tuple(grid),
        new_members=len(split.new_cases),
        warm_members=len(split.warm_cases),
        seconds=time.perf_counter() - started,
        key=(
            tuning_key(
                fingerprint,
                start or {},
                share=share,
                seed=seed,
                margin=margin,
                max_ratings=max_ratings,
            )
            if fingerprint
            else ""
        ),
        ratings=len(sample) if len(sample) < len(ratings) else 0,
    )
    log.info(
        "Tuned NMF: k=%d alpha=%.4g blend_below=%d fold_in_reg=%g, score %.4f ± %.4f (%d new, "
        "%d warm members; %d of %d ratings) in %.1fs",
        *chosen,
        result.score.score,
        result.score.score_se,
        result.new_members,
        result.warm_members,
        len(sample),
        len(ratings),
        result.seconds,
    )
    return result


class TunedNMFRecommender(Recommender):
    """An :class:`NMFRecommender` whose settings are tuned (:func:`tune_nmf`) at each fit.

    What ``moviebot evaluate --tuned`` measures: the tuning sees only the fold's training users.

    Parameters
    ----------
    start : dict, optional
        The grid's centre and the other NMF parameters (see :func:`tune_nmf`).
    share : float, default=0.25
    seed : int, default=0
    """

    def __init__(
        self, start: dict[str, Any] | None = None, share: float = 0.25, seed: int = 0
    ) -> None:
        self.start = start
        self.share = share
        self.seed = seed

    def fit(self, ratings: pd.DataFrame) -> TunedNMFRecommender:
        """Tune on a share of the users, then fit on all of ``ratings`` with the choice."""
        self.tuning_ = tune_nmf(ratings, self.start, share=self.share, seed=self.seed)
        self.model_ = NMFRecommender(**self.tuning_.params).fit(ratings)
        self.item_ids_ = self.model_.item_ids_
        self.item_counts_ = self.model_.item_counts_
        return self

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Return the tuned model's scores."""
        return self.model_._score_known(cols, vals)
