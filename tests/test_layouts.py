from __future__ import annotations

from pathlib import Path

import pytest

from recommender import Dataset, load_dataset
from recommender.layouts import apply_layout, dense_layout
from tests.helpers import write_tiny_csv


def test_dense_layout_keeps_the_most_rated_movies_and_their_active_users(tmp_path: Path) -> None:
    data = load_dataset(write_tiny_csv(tmp_path), progress=False)
    dense = dense_layout(data, n_movies=6, min_user_ratings=4)
    counts = data.ratings.groupby("movie_id").size()
    top = sorted(counts.index, key=lambda movie: (-counts[movie], movie))[:6]  # ties: lower id
    assert set(dense.ratings["movie_id"]) <= set(top)
    assert dense.ratings.groupby("user_id").size().min() >= 4
    assert set(dense.movies["movie_id"]) == set(dense.ratings["movie_id"])
    assert 0 < len(dense.ratings) < len(data.ratings)
    assert dense.name == "ml-tiny-dense"
    assert dense.fingerprint != data.fingerprint
    assert dense_layout(data, n_movies=6, min_user_ratings=4).fingerprint == dense.fingerprint


def test_full_layout_is_the_data_set_itself_and_unknown_layouts_are_refused(
    tmp_path: Path,
) -> None:
    data = load_dataset(write_tiny_csv(tmp_path), progress=False)
    assert apply_layout(data, "full") is data
    with pytest.raises(ValueError, match="Unknown layout"):
        apply_layout(data, "sparse")


def test_dense_layout_of_ml_latest_small_is_shaped_like_ml_100k(movielens: Dataset) -> None:
    dense = dense_layout(movielens)
    ratings = dense.ratings
    assert ratings["movie_id"].nunique() == 1_700
    assert 500 <= ratings["user_id"].nunique() <= 610
    assert ratings.groupby("user_id").size().min() >= 20
    density = len(ratings) / (ratings["user_id"].nunique() * 1_700)
    assert 0.05 < density < 0.1  # ml-100k: 6.3%; ml-latest-small itself: 1.7%
