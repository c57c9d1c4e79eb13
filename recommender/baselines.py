"""Baseline recommenders that give the NMF model's numbers context.

Each is a :class:`~recommender.base.Recommender`: ``fit(ratings)``, ``score_items`` and the shared
``recommend``, so evaluation ranks every model exactly as the bot ranks its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recommender.base import POPULARITY_DAMPING, Recommender, damped_mean
from recommender.model import build_matrix


def _item_counts(matrix: sp.csr_matrix) -> np.ndarray:
    return np.diff(matrix.tocsc().indptr).astype(np.int64)


class PopularityRecommender(Recommender):
    """Rank movies by popularity, the same for everyone.

    Parameters
    ----------
    kind : {"count", "damped_mean"}, default="count"
        ``count`` ranks by number of ratings (the classic most-popular baseline); ``damped_mean``
        by the mean rating pulled toward the global mean by ``damping`` pseudo-ratings.
    damping : float, default=POPULARITY_DAMPING (50)
    """

    def __init__(self, kind: str = "count", damping: float = POPULARITY_DAMPING) -> None:
        self.kind = kind
        self.damping = damping

    def fit(self, ratings: pd.DataFrame) -> PopularityRecommender:
        """Count and average each movie's ratings."""
        if self.kind not in {"count", "damped_mean"}:
            raise ValueError(f"Unknown popularity kind {self.kind!r}")
        grouped = ratings.groupby("movie_id")["rating"].agg(["count", "sum"]).sort_index()
        self.item_ids_ = grouped.index.to_numpy(np.int64)
        self.item_counts_ = grouped["count"].to_numpy(np.int64)
        sums = grouped["sum"].to_numpy(np.float64)
        if self.kind == "count":
            self.scores_ = self.item_counts_.astype(np.float64)
        else:
            self.scores_ = damped_mean(sums, self.item_counts_.astype(np.float64), self.damping)
        return self

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Return the popularity scores (the user's ratings are ignored)."""
        return self.scores_.copy()


class ItemKNNRecommender(Recommender):
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
        self.item_counts_ = _item_counts(matrix)
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

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Return the rating-weighted sum of similarities to the user's movies."""
        if cols.size == 0:
            return np.zeros(len(self.item_ids_))
        weights = vals - 2.5  # liked movies pull neighbours up, disliked ones push them down
        return np.asarray(self.similarity_[cols].T @ weights).ravel()


class PureSVDRecommender(Recommender):
    """PureSVD (Cremonesi et al. 2010): truncated SVD of the rating matrix, fold-in by projection.

    Parameters
    ----------
    n_components : int, default=50
    random_state : int, default=0
        Seed of the sparse SVD solver's start vector.
    """

    def __init__(self, n_components: int = 50, random_state: int = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, ratings: pd.DataFrame) -> PureSVDRecommender:
        """Compute the top singular vectors of the users x movies matrix."""
        matrix, self.item_ids_ = build_matrix(ratings)
        self.item_counts_ = _item_counts(matrix)
        k = min(self.n_components, min(matrix.shape) - 1)
        if k < 1:  # a single user or movie: nothing to factorize, every score is 0
            self.components_ = np.zeros((0, matrix.shape[1]))
            return self
        _, _, vt = svds(matrix.astype(np.float64), k=k, random_state=self.random_state)
        self.components_ = vt
        return self

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Return ``x Vᵀ V``, the user's ratings projected on the item space."""
        if cols.size == 0:
            return np.zeros(len(self.item_ids_))
        return (self.components_[:, cols] @ vals) @ self.components_
