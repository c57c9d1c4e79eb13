from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import pytest

from recommender.model import NMFRecommender
from recommender.questions import (
    QuestionCase,
    ask,
    evaluate_questions,
    next_question,
    popular_order_question,
    question_case,
    random_question,
)
from tests.helpers import ROMANCE, TINY_PARAMS, tiny_ratings

Rule = Callable[..., int | None]
RULES: dict[str, Rule] = {
    "next_question": next_question,
    "popular": popular_order_question,
    "random": partial(random_question, rng=np.random.default_rng(0)),
}


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return pd.DataFrame(tiny_ratings(), columns=["user_id", "movie_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def model(ratings: pd.DataFrame) -> NMFRecommender:
    return NMFRecommender(**TINY_PARAMS).fit(ratings)


def most_rated(model: NMFRecommender) -> list[int]:
    order = np.lexsort((model.item_ids_, -model.item_counts_))
    return [int(m) for m in model.item_ids_[order]]


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_never_reasks_and_stops_when_exhausted(model: NMFRecommender, name: str) -> None:
    rule = RULES[name]
    rated = {1: 5.0, 7: 1.0}
    asked: list[int] = []
    while (movie := rule(model, rated, asked)) is not None:
        assert movie not in asked
        assert movie not in rated
        asked.append(movie)
        assert len(asked) <= model.n_items
    assert sorted(asked) == sorted(set(model.item_ids_.tolist()) - set(rated))


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_respects_allowed(model: NMFRecommender, name: str) -> None:
    allowed = np.isin(model.item_ids_, ROMANCE)
    asked: list[int] = []
    while (movie := RULES[name](model, {}, asked, allowed=allowed)) is not None:
        asked.append(movie)
    assert sorted(asked) == sorted(ROMANCE)


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_returns_none_when_nothing_is_allowed(model: NMFRecommender, name: str) -> None:
    nothing = np.zeros(model.n_items, dtype=bool)
    assert RULES[name](model, {}, [], allowed=nothing) is None


def test_first_question_without_answers_is_the_models_popular_pick(model: NMFRecommender) -> None:
    # The whole list, not popular(1): top_n only breaks ties inside the partition it keeps.
    assert next_question(model, {}, []) == model.popular(model.n_items).movie_ids[0]


def test_question_follows_the_members_taste(model: NMFRecommender) -> None:
    # An action fan is asked about action films; a romance fan about romance films.
    action_fan = {2: 5.0, 3: 5.0, 4: 4.5}
    romance_fan = {7: 5.0, 9: 5.0, 10: 4.5}
    assert next_question(model, action_fan, []) in {1, 5, 6}
    assert next_question(model, romance_fan, []) in {8, 11}


def test_pool_limits_candidates_to_the_most_rated(model: NMFRecommender) -> None:
    assert next_question(model, {7: 5.0, 9: 5.0, 10: 4.5}, [], pool=1) == most_rated(model)[0]


def test_popular_order_asks_most_rated_first(model: NMFRecommender) -> None:
    asked: list[int] = []
    for _ in range(4):
        movie = popular_order_question(model, {}, asked)
        assert movie is not None
        asked.append(movie)
    assert asked == most_rated(model)[:4]


def test_random_question_is_reproducible_with_a_seed(model: NMFRecommender) -> None:
    def draw(seed: int) -> list[int | None]:
        rng = np.random.default_rng(seed)
        asked: list[int] = []
        for _ in range(6):
            movie = random_question(model, {}, asked, rng=rng)
            assert movie is not None
            asked.append(movie)
        return list(asked)

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_answers_never_come_from_the_held_out_part(model: NMFRecommender) -> None:
    # The held-out films are the most rated, so the popular rule asks about them first.
    popular = most_rated(model)
    held_out = frozenset(popular[:3])
    case = QuestionCase(
        user_id=99,
        pool={m: 4.0 for m in popular[3:6]},
        held_out=held_out,
        relevant=held_out,
    )
    sessions = list(ask(popular_order_question, model, case, questions=(3, 6, 13)))

    assert [s.questions for s in sessions] == [3, 6, 13]
    assert set(sessions[0].asked) == held_out
    assert sessions[0].answers == {}  # asked about, but "haven't seen it"
    assert sessions[1].answers == case.pool
    assert len(sessions[2].asked) == 13  # every film, answered or not, counts as a question
    for session in sessions:
        assert not held_out & set(session.answers)


def test_question_case_splits_80_20_without_overlap(ratings: pd.DataFrame) -> None:
    frame = ratings.loc[ratings["user_id"] == 3]
    case = question_case(3, frame, np.random.default_rng(0))
    assert case is not None
    assert not set(case.pool) & case.held_out
    assert set(case.pool) | case.held_out == set(frame["movie_id"].tolist())
    assert len(case.held_out) == round(len(frame) * 0.2)
    assert case.relevant <= case.held_out
    stars = dict(zip(frame["movie_id"], frame["rating"], strict=True))
    assert all(stars[m] == r for m, r in case.pool.items())


def test_question_case_without_relevant_held_out_films_is_skipped() -> None:
    frame = pd.DataFrame({"movie_id": [1, 2, 3, 4, 5], "rating": [2.0, 3.0, 1.0, 2.5, 3.5]})
    assert question_case(1, frame, np.random.default_rng(0)) is None


def test_evaluate_questions_is_deterministic_with_a_seed(ratings: pd.DataFrame) -> None:
    def run() -> list[dict[str, float | int | str]]:
        return evaluate_questions(
            ratings,
            n_folds=3,
            max_folds=2,
            questions=(2, 4),
            seed=7,
            model_factory=lambda: NMFRecommender(**TINY_PARAMS),
        )

    rows = run()
    assert rows == run()
    assert {(r["rule"], r["questions"]) for r in rows} == {
        (rule, q) for rule in ("next_question", "most popular", "random") for q in (2, 4)
    }
    for row in rows:
        assert 0.0 <= float(row["ndcg"]) <= 1.0
        assert float(row["answered"]) <= int(row["questions"])
        assert int(row["users"]) > 0
        assert "gain" in row
