from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommender.group as group
from recommender.group import (
    fairness_weights,
    group_satisfaction,
    recommend_for_group,
    satisfaction,
    simulate_nights,
)
from recommender.model import NMFRecommender

ACTION, ROMANCE, CROWD = range(100, 110), range(200, 210), range(300, 310)


def three_tastes() -> pd.DataFrame:
    """Users 0-19 love action, 20-39 romance; everybody rates the crowd-pleasers 3-3.5 stars.

    So an action fan ranks action first, crowd-pleasers next and romance last, and a romance fan
    the other way round: a crowd-pleaser is what a mixed group can all sit through.
    """
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        own = ACTION if user < 20 else ROMANCE
        rows += [(user, m, float(rng.choice([4.0, 4.5, 5.0]))) for m in own if rng.random() < 0.7]
        rows += [(user, m, float(rng.choice([3.0, 3.5]))) for m in CROWD if rng.random() < 0.5]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])


def two_camps(block: int = 40) -> pd.DataFrame:
    """Users 0-19 rate films 100.. and users 20-39 films 200..; a checkerboard with big blocks.

    Blocks of 40 keep eight nights from using up either camp's films, which would otherwise
    push the rule toward the other camp by itself.
    """
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        first = 100 if user < 20 else 200
        for movie in range(first, first + block):
            if rng.random() < 0.7:
                rows.append((user, movie, float(rng.choice([4.0, 4.5, 5.0]))))
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])


@pytest.fixture(scope="module")
def tastes() -> NMFRecommender:
    return NMFRecommender(n_components=2, alpha=0.0, max_iter=200, blend_below=1).fit(
        three_tastes()
    )


@pytest.fixture(scope="module")
def camps() -> NMFRecommender:
    return NMFRecommender(n_components=2, alpha=0.0, max_iter=200, blend_below=1).fit(two_camps())


ACTION_FANS = [{100: 5.0}, {101: 4.5}, {102: 4.0}]
ROMANCE_FAN = {200: 5.0}
MIXED = [*ACTION_FANS, ROMANCE_FAN]


# ---------------------------------------------------------------- picks


def test_rated_and_excluded_movies_are_never_picked(tastes: NMFRecommender) -> None:
    result = recommend_for_group(tastes, MIXED, n=100, exclude=[300, 201, 999_999])
    picked = {p.movie_id for p in result.picks}
    assert picked.isdisjoint({100, 101, 102, 200, 300, 201})
    assert result.candidates == tastes.n_items - 6
    assert len(result.picks) == result.candidates


def test_allowed_mask_is_respected(tastes: NMFRecommender) -> None:
    romance = np.isin(tastes.item_ids_, list(ROMANCE))
    result = recommend_for_group(tastes, ACTION_FANS, n=100, allowed=romance)
    assert {p.movie_id for p in result.picks} == set(ROMANCE)
    assert result.candidates == len(ROMANCE)
    nothing = recommend_for_group(tastes, ACTION_FANS, allowed=np.zeros(tastes.n_items, bool))
    assert nothing.picks == ()
    assert nothing.candidates == 0


def test_ranks_are_within_the_candidates_and_ordered(tastes: NMFRecommender) -> None:
    result = recommend_for_group(tastes, [*MIXED, {}], n=100)
    for pick in result.picks:
        assert 1 <= pick.best_rank <= pick.worst_rank <= result.candidates
    scores = [p.score for p in result.picks]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_rank_one_is_each_members_own_top_pick(tastes: NMFRecommender) -> None:
    seen = [movie for member in MIXED for movie in member]
    for i, member in enumerate(MIXED):
        own_top = tastes.recommend(member, 1, exclude=seen)[0].movie_id
        assert group_satisfaction(tastes, MIXED, own_top)[i] == 1.0


def test_an_anyone_member_ranks_by_popularity(tastes: NMFRecommender) -> None:
    result = recommend_for_group(tastes, [{}], n=5)
    assert [p.movie_id for p in result.picks] == list(tastes.recommend({}, 5).movie_ids)
    assert [(p.best_rank, p.worst_rank) for p in result.picks] == [(i, i) for i in range(1, 6)]
    # Ratings of films the model does not know leave a member "anyone" too.
    assert recommend_for_group(tastes, [{999_999: 5.0}], n=5).picks == result.picks


def test_a_film_one_member_would_hate_loses_to_one_everybody_likes(
    tastes: NMFRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = recommend_for_group(tastes, MIXED, n=1).picks[0]
    assert top.movie_id in CROWD
    # On the mean alone an action film wins: three love it, the romance fan ranks it near last.
    monkeypatch.setattr(group, "MISERY_SHARE", 0.0)
    mean_only = recommend_for_group(tastes, MIXED, n=1).picks[0]
    assert mean_only.movie_id in ACTION
    assert top.worst_rank < mean_only.worst_rank


def test_no_members_is_an_error_and_weights_must_fit(tastes: NMFRecommender) -> None:
    with pytest.raises(ValueError, match="at least one member"):
        recommend_for_group(tastes, [])
    with pytest.raises(ValueError, match="one weight per member"):
        recommend_for_group(tastes, MIXED, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        recommend_for_group(tastes, MIXED, weights=[1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="allowed"):
        recommend_for_group(tastes, MIXED, allowed=np.ones(3, bool))


def test_weights_are_reported_with_mean_one(tastes: NMFRecommender) -> None:
    result = recommend_for_group(tastes, MIXED, weights=[1.0, 1.0, 1.0, 5.0])
    assert result.weights == pytest.approx((0.5, 0.5, 0.5, 2.5))
    assert recommend_for_group(tastes, MIXED).weights == (1.0, 1.0, 1.0, 1.0)


# ---------------------------------------------------------------- satisfaction


def test_satisfaction_is_one_for_the_best_candidate_and_zero_for_the_worst(
    tastes: NMFRecommender,
) -> None:
    ranking = recommend_for_group(tastes, [ROMANCE_FAN], n=100).picks
    assert satisfaction(tastes, ROMANCE_FAN, ranking[0].movie_id) == 1.0
    assert satisfaction(tastes, ROMANCE_FAN, ranking[-1].movie_id) == 0.0
    middle = ranking[len(ranking) // 2]
    expected = (len(ranking) - middle.best_rank) / (len(ranking) - 1)
    assert satisfaction(tastes, ROMANCE_FAN, middle.movie_id) == pytest.approx(expected)


def test_satisfaction_of_an_unknown_film_is_neutral(tastes: NMFRecommender) -> None:
    assert satisfaction(tastes, ROMANCE_FAN, 999_999) == 0.5


def test_group_satisfaction_is_the_normalized_rank_the_group_score_used(
    tastes: NMFRecommender,
) -> None:
    result = recommend_for_group(tastes, MIXED, n=3, exclude=[300])
    for pick in result.picks:
        values = group_satisfaction(tastes, MIXED, pick.movie_id, exclude=[300])
        count = result.candidates
        assert max(values) == pytest.approx((count - pick.best_rank) / (count - 1))
        assert min(values) == pytest.approx((count - pick.worst_rank) / (count - 1))
        assert pick.score == pytest.approx(0.5 * np.mean(values) + 0.5 * min(values))


# ---------------------------------------------------------------- fairness across nights


def last_each_night(satisfactions: list[tuple[float, ...]]) -> list[set[int]]:
    return [{i for i, s in enumerate(row) if s == min(row)} for row in satisfactions]


def test_without_fairness_weights_the_outlier_is_last_every_night(camps: NMFRecommender) -> None:
    nights = simulate_nights(camps, MIXED, 8, fair=False)
    assert len(nights) == 8
    assert last_each_night([n.satisfaction for n in nights]) == [{3}] * 8


def test_with_fairness_weights_nobody_is_last_every_night(camps: NMFRecommender) -> None:
    nights = simulate_nights(camps, MIXED, 8)
    assert len(nights) == 8
    lasts = last_each_night([n.satisfaction for n in nights])
    for member in range(len(MIXED)):
        assert not all(member in last for last in lasts), f"member {member} was always last"
    # The outlier's films win some nights, but the majority's still win most.
    outlier_nights = sum(n.movie_id >= 200 for n in nights)
    assert 1 <= outlier_nights <= 4
    for night in nights:
        assert all(0.5 <= w <= 2.0 for w in night.weights)
        assert np.mean(night.weights) == pytest.approx(1.0)


def test_no_history_gives_everyone_weight_one() -> None:
    assert fairness_weights([], n_members=3) == [1.0, 1.0, 1.0]
    assert fairness_weights([[None, None], [None, None]]) == [1.0, 1.0]
    assert fairness_weights([[0.3, 0.3, 0.3]]) == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="n_members"):
        fairness_weights([])


def test_members_served_worst_recently_get_more_weight() -> None:
    weights = fairness_weights([[0.9, 0.6, 0.3]])
    assert weights[0] < weights[1] < weights[2]
    assert np.mean(weights) == pytest.approx(1.0)
    # A recent bad night counts more than an older one.
    recent_bad = fairness_weights([[0.9, 0.2], [0.2, 0.9]])
    assert recent_bad[0] > recent_bad[1]


@pytest.mark.parametrize(
    ("history", "floor", "ceiling"),
    [
        ([[1.0, 1.0, 1.0, 0.0]], 0.5, 2.0),
        ([[0.0, 1.0, 1.0, 1.0, 1.0, 1.0]], 0.5, 2.0),
        ([[0.0, 0.1, 1.0]], 0.8, 1.25),
        ([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], 0.5, 2.0),
    ],
)
def test_weights_stay_within_their_bounds(
    history: list[list[float | None]], floor: float, ceiling: float
) -> None:
    weights = fairness_weights(history, floor=floor, ceiling=ceiling, gain=10.0)
    assert all(floor - 1e-12 <= w <= ceiling + 1e-12 for w in weights)
    assert np.mean(weights) == pytest.approx(1.0)


def test_absence_is_neither_penalized_nor_rewarded() -> None:
    once = fairness_weights([[0.8, 0.4, 0.6]])
    then_absent = fairness_weights([[0.8, 0.4, 0.6], [None, 0.4, 0.6]])
    assert then_absent == pytest.approx(once)
    # Never there: counted as the group's average, exactly like a member who was.
    assert fairness_weights([[None, 0.2, 0.8]]) == pytest.approx(
        fairness_weights([[0.5, 0.2, 0.8]])
    )


def test_bad_histories_are_refused() -> None:
    with pytest.raises(ValueError, match="one column per current member"):
        fairness_weights([[0.5, 0.5], [0.5]])
    with pytest.raises(ValueError, match="one column per current member"):
        fairness_weights([[0.5, 0.5]], n_members=3)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        fairness_weights([[0.5, 1.5]])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        fairness_weights([[0.5, float("nan")]])
    with pytest.raises(ValueError, match="floor"):
        fairness_weights([[0.5]], floor=0.0)
