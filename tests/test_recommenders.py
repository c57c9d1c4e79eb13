"""Contract tests every recommender passes: NMF and each baseline, on the checkerboard data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from recommender.base import Recommender
from recommender.baselines import (
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    PureSVDRecommender,
)
from recommender.model import NMFRecommender
from recommender.tuning import TunedNMFRecommender
from tests.test_model import N_ITEMS, checkerboard

FACTORIES: dict[str, Callable[[int], Recommender]] = {
    "nmf": lambda seed: NMFRecommender(n_components=2, max_iter=50, random_state=seed),
    "popular count": lambda seed: PopularityRecommender("count"),
    "popular damped mean": lambda seed: PopularityRecommender("damped_mean"),
    "puresvd": lambda seed: PureSVDRecommender(2, random_state=seed),
    "item knn": lambda seed: ItemKNNRecommender(n_neighbors=5),
    "ease": lambda seed: EASERecommender(l2=10.0),
    "tuned nmf": lambda seed: TunedNMFRecommender(
        start={"n_components": 2, "max_iter": 50, "random_state": seed}
    ),
}
USER = {100: 5.0, 101: 4.5, 115: 1.0}


@pytest.fixture(params=sorted(FACTORIES), scope="module")
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def model(kind: str) -> Recommender:
    return FACTORIES[kind](0).fit(checkerboard()[0])


def test_unknown_movies_are_ignored(model: Recommender) -> None:
    with_unknown = model.recommend({**USER, 999_999: 5.0, -3: 1.0}, n=5)
    assert with_unknown == model.recommend(USER, n=5)
    assert with_unknown.n_used == len(USER)


def test_rated_and_excluded_movies_are_never_returned(model: Recommender) -> None:
    picks = model.recommend(USER, n=N_ITEMS, exclude=[102])
    assert set(picks.movie_ids).isdisjoint({*USER, 102})
    assert len(picks) == N_ITEMS - len(USER) - 1
    assert list(picks.scores) == sorted(picks.scores, reverse=True)


def test_empty_input_gives_a_full_list(model: Recommender) -> None:
    picks = model.recommend({}, n=5)
    assert len(picks) == 5
    assert picks.n_used == 0
    assert len(model.recommend(USER, n=0)) == 0


def test_allowed_mask_is_respected(model: Recommender) -> None:
    allowed = model.item_ids_ >= 110
    picks = model.recommend(USER, n=N_ITEMS, allowed=allowed)
    assert picks.movie_ids
    assert all(m >= 110 for m in picks.movie_ids)


def test_many_members_at_once_get_what_each_would_get_alone(model: Recommender) -> None:
    from recommender.base import RecommendRequest

    requests = [
        RecommendRequest(USER, 5),
        RecommendRequest({}, 5),
        RecommendRequest({110: 5.0}, 3, exclude=[111]),  # one rating: blended with popularity
        RecommendRequest({**USER, 112: 2.0, 999_999: 5.0}, 8, allowed=model.item_ids_ >= 105),
        RecommendRequest(USER, N_ITEMS, discover=0.5),
        RecommendRequest({}, 0),
    ]
    together = model.recommend_many(requests)
    for request, picks in zip(requests, together, strict=True):
        alone = model.recommend(
            request.ratings,
            request.n,
            exclude=request.exclude,
            allowed=request.allowed,
            discover=request.discover,
        )
        assert picks.movie_ids == alone.movie_ids
        assert picks.n_used == alone.n_used
        assert np.allclose(picks.scores, alone.scores, rtol=1e-5, atol=1e-6)
    assert model.recommend_many([]) == []


def test_save_and_load_give_the_same_ranking(model: Recommender, tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    assert np.array_equal(loaded.score_items(USER), model.score_items(USER))
    assert loaded.recommend(USER, n=10) == model.recommend(USER, n=10)


def test_same_seed_same_model(kind: str, model: Recommender) -> None:
    again = FACTORIES[kind](0).fit(checkerboard()[0])
    assert np.array_equal(again.score_items(USER), model.score_items(USER))


def test_a_different_seed_changes_nothing_in_these_deterministic_fits(
    kind: str, model: Recommender
) -> None:
    # NMF starts from NNDSVDa (no randomness), PureSVD's Lanczos start vector does not change
    # the singular vectors, and the other models use no randomness: the seed must not matter.
    other = FACTORIES[kind](12345).fit(checkerboard()[0])
    assert np.allclose(other.score_items(USER), model.score_items(USER), atol=1e-8)
    assert other.recommend(USER, n=8).movie_ids == model.recommend(USER, n=8).movie_ids


def test_unfitted_models_say_so(kind: str) -> None:
    from recommender.base import NotFittedError

    with pytest.raises(NotFittedError):
        FACTORIES[kind](0).recommend(USER)


def test_ease_weights_are_the_closed_form_solution() -> None:
    ratings = checkerboard()[0]
    model = EASERecommender(l2=7.0, min_ratings=1).fit(ratings)
    x = np.zeros((ratings["user_id"].nunique(), N_ITEMS))
    x[ratings["user_id"], ratings["movie_id"] - 100] = 1.0
    p = np.linalg.inv(x.T @ x + 7.0 * np.eye(N_ITEMS))
    expected = np.eye(N_ITEMS) - p / np.diag(p)
    assert np.allclose(model.weights_, expected, atol=1e-5)
    assert np.allclose(np.diag(model.weights_), 0.0)


def test_ease_never_recommends_movies_outside_its_catalog() -> None:
    ratings = checkerboard()[0]
    rare = ratings.iloc[:3].assign(movie_id=[500, 501, 501], rating=5.0)
    model = EASERecommender(l2=10.0, min_ratings=3).fit(pd.concat([ratings, rare]))
    assert model.n_items == N_ITEMS + 2
    picks = model.recommend({100: 5.0, 500: 5.0}, n=model.n_items)
    assert not {500, 501} & set(picks.movie_ids)
    assert len(picks) == N_ITEMS - 1
    assert all(m - 100 < 10 for m in picks.movie_ids[:5])  # its own block first


def test_discover_zero_is_the_usual_list_and_discovery_keeps_the_rules(model: Recommender) -> None:
    assert model.recommend(USER, n=8, discover=0.0) == model.recommend(USER, n=8)
    picks = model.recommend(USER, n=N_ITEMS, exclude=[102], discover=0.5)
    assert set(picks.movie_ids).isdisjoint({*USER, 102})
    assert list(picks.scores) == sorted(picks.scores, reverse=True)


def test_ties_at_the_cut_go_to_the_most_rated_then_the_lowest_id() -> None:
    import pandas as pd

    # Four films with the same count and the same mean: popularity ties everywhere.
    ratings = pd.DataFrame(
        [(u, m, 4.0) for u in range(5) for m in (40, 30, 20, 10)]
        + [(u, 50, 4.0) for u in range(3)],
        columns=["user_id", "movie_id", "rating"],
    )
    model = PopularityRecommender("count").fit(ratings)
    assert model.recommend({}, n=1).movie_ids == (10,)
    assert model.recommend({}, n=3).movie_ids == (10, 20, 30)
    assert model.recommend({}, n=9).movie_ids == (10, 20, 30, 40, 50)


def test_the_discovering_wrapper_batches_the_lists_it_serves_alone() -> None:
    from recommender.base import RecommendRequest
    from recommender.evaluation import Discovering

    model = Discovering(NMFRecommender(n_components=2, max_iter=50), 0.5).fit(checkerboard()[0])
    requests = [RecommendRequest(USER, 6), RecommendRequest({110: 4.0}, 4, discover=0.2)]
    for request, picks in zip(requests, model.recommend_many(requests), strict=True):
        alone = model.recommend(request.ratings, request.n, discover=request.discover)
        assert picks.movie_ids == alone.movie_ids
