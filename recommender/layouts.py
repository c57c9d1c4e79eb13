"""Derived layouts of a data set, so quality can be checked on more than one shape of data.

ml-latest-small is sparse (610 users, 9.7k movies, 1.7% filled, most movies rated once or
twice); ml-100k is dense (943 users, 1,682 movies, 6.3% filled, every user with 20+ ratings).
:func:`dense_layout` builds the second shape from the first: a recipe, so the derived data never
needs to be stored or shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from recommender.data import Dataset, _fingerprint

DENSE_MOVIES = 1_700
DENSE_MIN_USER_RATINGS = 20


def dense_layout(
    dataset: Dataset,
    n_movies: int = DENSE_MOVIES,
    min_user_ratings: int = DENSE_MIN_USER_RATINGS,
) -> Dataset:
    """Return the ``n_movies`` most rated movies and the users with ``min_user_ratings`` of them.

    Ties in rating count go to the lower movie id, so the recipe is deterministic. The result is
    named ``<name>-dense`` and has its own fingerprint.
    """
    ratings = dataset.ratings
    counts = ratings.groupby("movie_id").size()
    order = np.lexsort((counts.index.to_numpy(), -counts.to_numpy()))
    kept_movies = counts.index.to_numpy()[order[:n_movies]]
    ratings = ratings.loc[ratings["movie_id"].isin(kept_movies)]
    per_user = ratings.groupby("user_id").size()
    ratings = ratings.loc[
        ratings["user_id"].isin(per_user.index[per_user >= min_user_ratings])
    ].reset_index(drop=True)
    movies = dataset.movies.loc[dataset.movies["movie_id"].isin(ratings["movie_id"])]
    movies = movies.reset_index(drop=True)
    users = dataset.users
    if users is not None and "user_id" in users:
        users = users.loc[users["user_id"].isin(ratings["user_id"])].reset_index(drop=True)
    return replace(
        dataset,
        name=f"{dataset.name}-dense",
        movies=movies,
        ratings=ratings,
        users=users,
        fingerprint=_fingerprint(movies, ratings),
    )


LAYOUTS: dict[str, Callable[[Dataset], Dataset]] = {
    "full": lambda dataset: dataset,
    "dense": dense_layout,
}
"""Layout name -> recipe; ``moviebot evaluate --layout`` takes these names."""


def apply_layout(dataset: Dataset, layout: str) -> Dataset:
    """Return ``dataset`` in the named layout (``full`` leaves it as it is)."""
    try:
        recipe = LAYOUTS[layout]
    except KeyError:
        raise ValueError(f"Unknown layout {layout!r}; known: {', '.join(LAYOUTS)}") from None
    return recipe(dataset)
