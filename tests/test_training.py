from __future__ import annotations

from pathlib import Path

import pytest

from recommender import Dataset, fit_bundle, load_dataset
from recommender.training import split_users
from tests.helpers import write_tiny_csv
from tests.test_tuning import START


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


def test_fit_bundle_warm_starts_from_a_previous_model(tmp_path: Path) -> None:
    data = load_dataset(write_tiny_csv(tmp_path), progress=False)
    first = fit_bundle(data, **START).model
    again = fit_bundle(data, previous_model=first, **START).model
    assert again.warm_started_
    assert not fit_bundle(data, previous_model=first, **{**START, "alpha": 0.5}).model.warm_started_
