"""Which movie to ask a new member about next (/quickrate), and how well that teaches the model.

A new member answers one movie at a time: a half-star rating, or "haven't seen it". A question
teaches the model something only when it is answered, so the rule asks about films the member
has most likely seen, and among those about the film the model would recommend them right now:

* the candidates are the ``pool`` most rated films not yet asked or rated (and allowed);
* the next question is the candidate with the highest :meth:`NMFRecommender.score_items
  <recommender.model.NMFRecommender.score_items>` for the answers so far (with no answers, the
  damped-mean popularity list; below ``blend_below`` answers, the blend toward it).

NMF treats a missing rating as 0, so its scores grow with the chance a member has rated a film at
all; asking about the top of the current list finds seen films far more often than a diverse
question does, and each "seen" answer both adds a rating and clears a film the member already
knows off their list. Max-min diversity in factor space was tried and lost clearly; a
log-popularity prior and a touch of diversity only tied (``docs/onboarding.md``).
:func:`evaluate_questions` measures the rule against asking the most popular films in order and
random films.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from recommender.evaluation import RELEVANT, metrics_at
from recommender.model import NMFRecommender

log = logging.getLogger(__name__)

HOLDOUT = 0.2
DEFAULT_QUESTIONS = (10, 20)
BASELINE = "most popular"


def _candidates(
    model: NMFRecommender,
    ratings: Mapping[int, float],
    asked: Collection[int],
    allowed: np.ndarray | None,
) -> np.ndarray:
    """Return a mask of the columns that may still be asked about."""
    model._check_fitted()
    mask = model.item_counts_ > 0
    if allowed is not None:
        mask &= np.asarray(allowed, dtype=bool)
    done = model.columns([*asked, *ratings])
    mask[done] = False
    return mask


def _popular_first(model: NMFRecommender, columns: np.ndarray) -> np.ndarray:
    """Order ``columns`` by rating count, most rated first, then by lowest movie id."""
    order = np.lexsort((model.item_ids_[columns], -model.item_counts_[columns]))
    return columns[order]


def next_question(
    model: NMFRecommender,
    ratings: Mapping[int, float],
    asked: Collection[int],
    *,
    allowed: np.ndarray | None = None,
    pool: int = 500,
) -> int | None:
    """Return the movie to ask a member about next, or None when nothing is left to ask.

    Parameters
    ----------
    model : NMFRecommender
        The fitted model; its scores for the answers so far pick the question.
    ratings : mapping of movie id to stars
        The member's ratings so far (answers included); never asked about again.
    asked : collection of movie ids
        Films already asked about, answered or not; never asked again.
    allowed : ndarray of bool, optional
        One flag per model column; only allowed films are asked about.
    pool : int, default=500
        How many of the most rated remaining films are candidates (the rest are rarely seen).
    """
    remaining = np.flatnonzero(_candidates(model, ratings, asked, allowed))
    if remaining.size == 0:
        return None
    likely = _popular_first(model, remaining)[: max(pool, 1)]
    scores = model.score_items(ratings)[likely]
    # argmax takes the first of equal scores: the most rated film, then the lowest id.
    return int(model.item_ids_[likely[int(np.argmax(scores))]])


def popular_order_question(
    model: NMFRecommender,
    ratings: Mapping[int, float],
    asked: Collection[int],
    *,
    allowed: np.ndarray | None = None,
    pool: int = 500,
) -> int | None:
    """Return the most rated film not yet asked or rated (baseline); ``pool`` is unused."""
    remaining = np.flatnonzero(_candidates(model, ratings, asked, allowed))
    if remaining.size == 0:
        return None
    return int(model.item_ids_[_popular_first(model, remaining)[0]])


def random_question(
    model: NMFRecommender,
    ratings: Mapping[int, float],
    asked: Collection[int],
    *,
    allowed: np.ndarray | None = None,
    pool: int = 500,
    rng: np.random.Generator | None = None,
) -> int | None:
    """Return a random film not yet asked or rated (baseline); ``pool`` is unused.

    Pass ``rng`` (a seeded :class:`numpy.random.Generator`) for reproducible draws.
    """
    remaining = np.flatnonzero(_candidates(model, ratings, asked, allowed))
    if remaining.size == 0:
        return None
    generator = rng if rng is not None else np.random.default_rng()
    return int(model.item_ids_[remaining[int(generator.integers(remaining.size))]])


# ---------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class QuestionCase:
    """A held-out user: the ratings questions may be answered from, and the part to find."""

    user_id: int
    pool: dict[int, float]
    held_out: frozenset[int]
    relevant: frozenset[int]


def question_case(
    user_id: int, frame: pd.DataFrame, rng: np.random.Generator, holdout: float = HOLDOUT
) -> QuestionCase | None:
    """Split a user's ratings into an answer pool and a held-out part (``holdout`` share).

    Returns None when the held-out part has nothing relevant (rating >= 4) to find.
    """
    order = rng.permutation(len(frame))
    movies = frame["movie_id"].to_numpy(np.int64)[order]
    stars = frame["rating"].to_numpy(np.float64)[order]
    n_pool = len(frame) - max(1, round(len(frame) * holdout))
    relevant = frozenset(movies[n_pool:][stars[n_pool:] >= RELEVANT].tolist())
    if not relevant or n_pool < 1:
        return None
    answers = dict(zip(movies[:n_pool].tolist(), stars[:n_pool].tolist(), strict=True))
    return QuestionCase(user_id, answers, frozenset(movies[n_pool:].tolist()), relevant)


@dataclass(frozen=True)
class Session:
    """What a rule asked one user and what they answered, after ``questions`` questions."""

    questions: int
    asked: tuple[int, ...]
    answers: dict[int, float]


def ask(
    rule: Callable[..., int | None],
    model: NMFRecommender,
    case: QuestionCase,
    questions: Sequence[int],
) -> Iterator[Session]:
    """Run a /quickrate session, yielding its state after each count in ``questions``.

    A question about a film in the user's answer pool is answered with its rating; any other
    film (the held-out part included) is "haven't seen it": it counts as asked, adds nothing.
    """
    asked: list[int] = []
    answers: dict[int, float] = {}
    for target in sorted(set(questions)):
        while len(asked) < target:
            movie = rule(model, answers, asked)
            if movie is None:
                break
            asked.append(movie)
            if movie in case.pool:
                answers[movie] = case.pool[movie]
        yield Session(target, tuple(asked), dict(answers))


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return 0.0, 0.0
    se = float(array.std(ddof=1) / np.sqrt(array.size)) if array.size > 1 else 0.0
    return float(array.mean()), se


def default_rules(seed: int = 0) -> dict[str, Callable[..., int | None]]:
    """Return the rule and the two baselines, the random one seeded with ``seed``."""
    return {
        "next_question": next_question,
        BASELINE: popular_order_question,
        "random": partial(random_question, rng=np.random.default_rng(seed)),
    }


def evaluate_questions(
    ratings: pd.DataFrame,
    *,
    n_folds: int = 5,
    max_folds: int | None = None,
    questions: Sequence[int] = DEFAULT_QUESTIONS,
    seed: int = 0,
    model_factory: Callable[[], NMFRecommender] = NMFRecommender,
    n: int = 10,
    rules: Mapping[str, Callable[..., int | None]] | None = None,
) -> list[dict[str, float | int | str]]:
    """Compare question rules on held-out users; return one row per rule and question count.

    Users are split into ``n_folds`` groups; each group is left out of training in turn. Each
    held-out user's ratings are split 80/20 (fixed ``seed``); a rule asks up to each count in
    ``questions``, answered from the 80% only, and NDCG@``n`` of ``model.recommend(answers, n)``
    is scored on the 20% (relevant = rating >= 4).

    Each row has ``rule``, ``questions``, ``users``, the mean ``ndcg`` and its standard error
    ``ndcg_se``, the mean number of ``answered`` (seen) questions, and, when the ``"most
    popular"`` baseline is among the rules, the paired difference to it (``gain``, ``gain_se``:
    same users, same questions asked).
    """
    rng = np.random.default_rng(seed)
    users = np.array(sorted(ratings["user_id"].unique()))
    rng.shuffle(users)
    groups: dict[int, pd.DataFrame] = {
        int(user): frame  # type: ignore[arg-type]
        for user, frame in ratings.groupby("user_id", sort=True)
    }
    chosen = dict(rules) if rules is not None else default_rules(seed + 1)
    ndcg: dict[tuple[str, int], list[float]] = {}
    answered: dict[tuple[str, int], list[int]] = {}
    for fold_index, test_users in enumerate(np.array_split(users, n_folds)):
        if max_folds is not None and fold_index >= max_folds:
            break
        test_set = {int(u) for u in test_users.tolist()}
        model = model_factory().fit(ratings.loc[~ratings["user_id"].isin(test_set)])
        cases = [question_case(u, groups[u], rng) for u in sorted(test_set)]
        for case in cases:
            if case is None:
                continue
            for name, rule in chosen.items():
                for session in ask(rule, model, case, questions):
                    picks = np.array(model.recommend(session.answers, n).movie_ids, dtype=np.int64)
                    key = (name, session.questions)
                    ndcg.setdefault(key, []).append(metrics_at(picks, case.relevant, n)["ndcg"])
                    answered.setdefault(key, []).append(len(session.answers))
        log.info("Questions fold %d: %d users", fold_index, sum(c is not None for c in cases))
    rows: list[dict[str, float | int | str]] = []
    for (name, count), values in ndcg.items():
        mean, se = _mean_se(values)
        row: dict[str, float | int | str] = {
            "rule": name,
            "questions": count,
            "users": len(values),
            "ndcg": mean,
            "ndcg_se": se,
            "answered": float(np.mean(answered[(name, count)])),
        }
        baseline = ndcg.get((BASELINE, count))
        if baseline is not None:
            row["gain"], row["gain_se"] = _mean_se(np.subtract(values, baseline).tolist())
        rows.append(row)
    rows.sort(key=lambda r: (int(r["questions"]), -float(r["ndcg"])))
    return rows
