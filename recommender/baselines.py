"""Baseline recommenders that give the NMF model's numbers context.

Each has the same surface as :class:`~recommender.model.NMFRecommender` where evaluation needs it:
``fit(ratings)``, ``item_ids_`` and ``score(user_ratings)`` returning one score per column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from sklearn.base import BaseEstimator

from recommender.model import UserRatings, build_matrix, damped_mean


def _user_row(item_ids: np.ndarray, user_ratings: UserRatings) -> tuple[np.ndarray, np.ndarray]:
    """Return the columns and stars of the user's ratings of known movies (ids are sorted)."""
    if not user_ratings or item_ids.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    movies = np.fromiter((int(m) for m in user_ratings), dtype=np.int64, count=len(user_ratings))
    stars = np.fromiter(
        (float(r) for r in user_ratings.values()), dtype=np.float64, count=len(user_ratings)
    )
    cols = np.minimum(np.searchsorted(item_ids, movies), item_ids.size - 1)
    known = item_ids[cols] == movies
    return cols[known], stars[known]


class PopularityRecommender(BaseEstimator):
    """Rank movies by popularity, the same for everyone.

    Parameters
    ----------
    kind : {"count", "damped_mean"}, default="count"
        ``count`` ranks by number of ratings (the classic most-popular baseline); ``damped_mean``
        by the mean rating pulled toward the global mean by ``damping`` pseudo-ratings.
    damping : float, default=10.0
    """

    def __init__(self, kind: str = "count", damping: float = 10.0) -> None:
        self.kind = kind
        self.damping = damping

    def fit(self, ratings: pd.DataFrame) -> PopularityRecommender:
        """Count and average each movie's ratings."""
        grouped = ratings.groupby("movie_id")["rating"].agg(["count", "sum"]).sort_index()
        self.item_ids_ = grouped.index.to_numpy(np.int64)
        counts = grouped["count"].to_numpy(np.float64)
        sums = grouped["sum"].to_numpy(np.float64)
        if self.kind == "count":
            self.scores_ = counts
        elif self.kind == "damped_mean":
            self.scores_ = damped_mean(sums, counts, self.damping)
        else:
            raise ValueError(f"Unknown popularity kind {self.kind!r}")
        return self

    def score(self, user_ratings: UserRatings) -> np.ndarray:
        """Return the popularity scores (the user's ratings are ignored)."""
        return self.scores_.copy()


class ItemKNNRecommender(BaseEstimator):
    """Item-based k-nearest-neighbours with cosine similarity on mean-centred ratings.

    Parameters
    ----------
    n_neighbors : int, default=50
        Neighbours kept per movie.
    shrinkage : float, default=10.0
        Shrinks similarities computed from few co-ratings.
    """

    def __init__(self, n_neighbors: int = 50, shrinkage: float = 10.0) -> None:
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage

    def fit(self, ratings: pd.DataFrame) -> ItemKNNRecommender:
        """Compute the pruned item-item similarity matrix."""
        matrix, self.item_ids_ = build_matrix(ratings)
        matrix = matrix.astype(np.float64).tocsc()
        binary = matrix.copy()
        binary.data[:] = 1.0
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        dot = (matrix.T @ matrix).toarray()
        co_counts = (binary.T @ binary).toarray()
        similarity = dot / np.outer(norms, norms) * (co_counts / (co_counts + self.shrinkage))
        np.fill_diagonal(similarity, 0.0)
        k = min(self.n_neighbors, similarity.shape[0] - 1)
        if k > 0:
            cutoff = -np.partition(-similarity, k - 1, axis=1)[:, k - 1 : k]
            similarity[similarity < cutoff] = 0.0
        self.similarity_ = sp.csr_matrix(similarity)
        return self

    def score(self, user_ratings: UserRatings) -> np.ndarray:
        """Return the rating-weighted sum of similarities to the user's movies."""
        cols, vals = _user_row(self.item_ids_, user_ratings)
        if cols.size == 0:
            return np.zeros(len(self.item_ids_))
        weights = vals - 2.5  # liked movies pull neighbours up, disliked ones push them down
        return np.asarray(self.similarity_[cols].T @ weights).ravel()


class PureSVDRecommender(BaseEstimator):
    """PureSVD (Cremonesi et al. 2010): truncated SVD of the rating matrix, fold-in by projection.

    Parameters
    ----------
    n_components : int, default=50
    """

    def __init__(self, n_components: int = 50) -> None:
        self.n_components = n_components

    def fit(self, ratings: pd.DataFrame) -> PureSVDRecommender:
        """Compute the top singular vectors of the users x movies matrix."""
        matrix, self.item_ids_ = build_matrix(ratings)
        k = min(self.n_components, min(matrix.shape) - 1)
        if k < 1:  # a single user or movie: nothing to factorize, every score is 0
            self.components_ = np.zeros((0, matrix.shape[1]))
            return self
        _, _, vt = svds(matrix.astype(np.float64), k=k, random_state=0)
        self.components_ = vt
        return self

    def score(self, user_ratings: UserRatings) -> np.ndarray:
        """Return ``x Vᵀ V``, the user's ratings projected on the item space."""
        cols, vals = _user_row(self.item_ids_, user_ratings)
        if cols.size == 0:
            return np.zeros(len(self.item_ids_))
        return (self.components_[:, cols] @ vals) @ self.components_
