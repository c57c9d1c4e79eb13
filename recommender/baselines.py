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


class EASERecommender(Recommender):
    """EASE (Steck 2019): a closed-form item-item model, the strong linear baseline.

    ``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹`` over the binary users x movies matrix ``X``
    (rated or not); a user's scores are ``x B``. The inverse comes from one Cholesky
    factorization, so fitting costs ``O(m³)`` time and ``O(m²)`` memory in the ``m`` catalog
    movies: the catalog is capped to movies with at least ``min_ratings`` ratings, and movies
    outside it score ``-inf`` (never recommended).

    Parameters
    ----------
    l2 : float, default=30000.0
        The ridge λ added to the Gram matrix's diagonal; a larger λ leans toward popular movies.
        Chosen with ``moviebot evaluate --ease-l2`` on the new-member protocol (docs/tuning.md).
    min_ratings : int, default=5
        Ratings a movie needs to be in the catalog.
    """

    def __init__(self, l2: float = 30_000.0, min_ratings: int = 5) -> None:
        self.l2 = l2
        self.min_ratings = min_ratings

    def fit(self, ratings: pd.DataFrame) -> EASERecommender:
        """Solve for the item-item weights of the capped catalog."""
        from scipy.linalg import cho_factor, cho_solve

        matrix, self.item_ids_ = build_matrix(ratings)
        self.item_counts_ = _item_counts(matrix)
        self.catalog_ = np.flatnonzero(self.item_counts_ >= self.min_ratings)
        self.position_ = np.full(len(self.item_ids_), -1, dtype=np.int64)
        self.position_[self.catalog_] = np.arange(self.catalog_.size)
        binary = matrix.tocsc()[:, self.catalog_].astype(np.float64)
        binary.data[:] = 1.0
        gram = (binary.T @ binary).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        if gram.size:
            factor = cho_factor(gram, overwrite_a=True, check_finite=False)
            inverse = cho_solve(factor, np.eye(gram.shape[0]), overwrite_b=True, check_finite=False)
            weights = inverse / -np.diag(inverse)
            np.fill_diagonal(weights, 0.0)
        else:
            weights = gram
        self.weights_ = np.ascontiguousarray(weights, dtype=np.float32)
        return self

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Return ``x B`` over the catalog (most rated first for no ratings); ``-inf`` outside."""
        scores = np.full(len(self.item_ids_), -np.inf)
        inside = self.position_[cols]
        inside = inside[inside >= 0]
        if inside.size == 0:
            scores[self.catalog_] = self.item_counts_[self.catalog_]
        else:
            scores[self.catalog_] = self.weights_[inside].sum(axis=0)
        return scores
