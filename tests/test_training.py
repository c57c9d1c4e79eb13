from __future__ import annotations

import pytest

from recommender import Dataset, fit_bundle
from recommender.training import split_users


def test_split_users_keeps_each_user_whole(movielens: Dataset) -> None:
    train, held = split_users(movielens.ratings, 0.1, seed=3)
    assert set(train["user_id"]).isdisjoint(set(held["user_id"]))
    assert len(train) + len(held) == len(movielens.ratings)
    assert held["user_id"].nunique() == 61


@pytest.mark.movielens
def test_holdout_quality_is_measured_and_beats_popular_picks(movielens: Dataset) -> None:
    bundle = fit_bundle(movielens, holdout=0.1, n_components=40, max_iter=60)
    quality = bundle.metadata.quality
    assert quality["users"] >= 50
    assert quality["ndcg_model"] > quality["ndcg_popular"] > 0
    assert bundle.metadata.n_users == 610 - 61
