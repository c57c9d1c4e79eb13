"""Non-negative matrix factorization recommender with instant fold-in.

The model factorizes the users x movies rating matrix (MovieLens users plus chat users) with
scikit-learn's :class:`~sklearn.decomposition.NMF` and keeps only the movie factors ``H``. A user
is never looked up by id: their *current* ratings are folded into ``H`` at request time, with the
same multiplicative update that ``NMF.transform`` runs, but against a cached ``H Hᵀ``. So a rating
given a second ago changes the next recommendations, and a new chat user needs no refit.

NMF treats a missing rating as 0, so its scores *rank* movies; they are not predicted stars and
must never be shown as stars.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)

_THREADPOOLS = ThreadpoolController()

UserRatings = Mapping[int, float]
"""A user's ratings: MovieLens movie id -> stars (0.5-5.0)."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended movie and its rank score (not a rating; only comparable within a list)."""

    movie_id: int
    score: float


@dataclass(frozen=True)
class Explanation:
    """How much each of the user's rated movies pushed one recommendation up."""

    movie_id: int
    because: tuple[tuple[int, float], ...]  # (rated movie id, share of the score), largest first


class NotFittedError(RuntimeError):
    """The model was used before ``fit``."""


def single_threaded_blas() -> Any:
    """Return a context limiting BLAS to one thread (small request-path products run faster)."""
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def build_matrix(
    ratings: pd.DataFrame, extra_ratings: pd.DataFrame | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Build the users x movies matrix from MovieLens ratings plus any chat users' ratings.

    Users of the two frames get separate row ranges, so a chat user id can never collide with a
    MovieLens user id. Returns the matrix (float32) and the movie id of each column, sorted.
    """
    frames = [ratings] if extra_ratings is None or extra_ratings.empty else [ratings, extra_ratings]
    movie_ids = np.unique(np.concatenate([f["movie_id"].to_numpy(np.int64) for f in frames]))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    offset = 0
    for frame in frames:
        codes, uniques = pd.factorize(frame["user_id"])
        rows.append(codes.astype(np.int64) + offset)
        cols.append(np.searchsorted(movie_ids, frame["movie_id"].to_numpy(np.int64)))
        vals.append(frame["rating"].to_numpy(np.float32))
        offset += len(uniques)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(offset, len(movie_ids)),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    return matrix, movie_ids


class NMFRecommender(BaseEstimator):
    """Rank movies for any user from their ratings, by NMF with fold-in.

    Parameters
    ----------
    n_components : int, default=100
        Number of latent factors.
    alpha : float, default=0.03
        Regularization for both factor matrices (``alpha_W = alpha_H``). scikit-learn scales it
        by the matrix shape, so re-tune it with ``moviebot evaluate`` when the data grows.
    l1_ratio : float, default=0.0
        L1 share of the regularization (0 = pure L2).
    max_iter : int, default=100
        Iterations of the multiplicative-update solver, for fitting and for fold-in.
    tol : float, default=1e-4
        Relative improvement below which the solver stops (checked every 10 iterations).
    damping : float, default=50.0
        Pseudo-count of the damped mean used for popularity: a movie's mean is pulled toward the
        global mean as if it had ``damping`` extra average ratings.
    blend_below : int, default=3
        Users with fewer ratings than this get scores blended toward popularity (a user with one
        rating is mostly served the popular list; at ``blend_below`` ratings, the model alone).
    random_state : int or None, default=0
        Seed for the NMF initialization; the same seed and data give the same model.
    """

    def __init__(
        self,
        n_components: int = 100,
        alpha: float = 0.03,
        l1_ratio: float = 0.0,
        max_iter: int = 100,
        tol: float = 1e-4,
        damping: float = 50.0,
        blend_below: int = 3,
        random_state: int | None = 0,
    ) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.max_iter = max_iter
        self.tol = tol
        self.damping = damping
        self.blend_below = blend_below
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        ratings: pd.DataFrame,
        extra_ratings: pd.DataFrame | None = None,
        movies: pd.DataFrame | None = None,
    ) -> NMFRecommender:
        """Fit on MovieLens ratings plus optional chat ratings.

        Parameters
        ----------
        ratings : pandas.DataFrame
            ``user_id``, ``movie_id``, ``rating`` columns (MovieLens users).
        extra_ratings : pandas.DataFrame, optional
            The same columns for chat users; their ids live in a separate namespace.
        movies : pandas.DataFrame, optional
            The movie table (``movie_id``, ``genres``, ``year``) for genre and year filters.

        Returns
        -------
        self
        """
        started = time.perf_counter()
        matrix, movie_ids = build_matrix(ratings, extra_ratings)
        if matrix.shape[0] == 0 or matrix.nnz == 0:
            raise ValueError("Cannot fit a recommender on no ratings.")
        n_components = min(self.n_components, min(matrix.shape))
        nmf = NMF(
            n_components=n_components,
            init="nndsvda",
            solver="mu",
            beta_loss="frobenius",
            alpha_W=self.alpha,
            alpha_H="same",
            l1_ratio=self.l1_ratio,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=self.random_state,
        )
        # float64: with float32 the solver's values go subnormal and it runs about 4x slower.
        with warnings.catch_warnings():
            # Stopping at max_iter is a deliberate time budget, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            nmf.fit(matrix.astype(np.float64))
        self.components_ = np.ascontiguousarray(nmf.components_, dtype=np.float64)
        self.item_ids_ = movie_ids
        self.n_users_ = int(matrix.shape[0])
        self.n_ratings_ = int(matrix.nnz)
        self.n_iter_ = int(nmf.n_iter_)
        self.reconstruction_err_ = float(nmf.reconstruction_err_)
        self._set_item_statistics(matrix)
        self._set_metadata(movies)
        self._prepare()
        self.fit_seconds_ = time.perf_counter() - started
        log.info(
            "Fitted NMF: %d users x %d movies, %d ratings, k=%d, %d iterations in %.2fs",
            self.n_users_,
            len(movie_ids),
            self.n_ratings_,
            n_components,
            self.n_iter_,
            self.fit_seconds_,
        )
        return self

    def _set_item_statistics(self, matrix: sp.csr_matrix) -> None:
        csc = matrix.tocsc()
        counts = np.diff(csc.indptr).astype(np.int64)
        sums = np.asarray(csc.sum(axis=0)).ravel().astype(np.float64)
        self.item_counts_ = counts
        self.popularity_ = damped_mean(sums, counts, self.damping)

    def _set_metadata(self, movies: pd.DataFrame | None) -> None:
        n_items = len(self.item_ids_)
        self.genre_names_: tuple[str, ...] = ()
        self.item_genres_ = np.zeros(n_items, dtype=np.int64)
        self.item_years_ = np.full(n_items, -1, dtype=np.int32)
        if movies is None:
            return
        table = movies.set_index("movie_id")
        table = table.loc[table.index.isin(self.item_ids_)]
        names = sorted({g for gs in table["genres"] for g in gs})[:63]
        bit = {name: 1 << i for i, name in enumerate(names)}
        positions = np.searchsorted(self.item_ids_, table.index.to_numpy(np.int64))
        masks = [sum(bit.get(g, 0) for g in gs) for gs in table["genres"]]
        self.genre_names_ = tuple(names)
        self.item_genres_[positions] = masks
        if "year" in table:
            years = table["year"].astype("Int64").fillna(-1).to_numpy(np.int64)
            self.item_years_[positions] = years

    def _prepare(self) -> None:
        """Compute the caches that fold-in and similarity reuse on every call."""
        self.gram_ = self.components_ @ self.components_.T
        self._components32 = _flush_small(self.components_)
        norms = np.linalg.norm(self.components_, axis=0)
        self.item_norms_ = norms
        self._column = {int(m): i for i, m in enumerate(self.item_ids_.tolist())}
        n_items = len(self.item_ids_)
        self._l1 = n_items * self.alpha * self.l1_ratio
        self._l2 = n_items * self.alpha * (1.0 - self.l1_ratio)
        self._popularity_unit = _unit_scale(self.popularity_)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for cache in (
            "gram_",
            "item_norms_",
            "_column",
            "_l1",
            "_l2",
            "_popularity_unit",
            "_components32",
        ):
            state.pop(cache, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "components_" in state:
            self._prepare()

    # ------------------------------------------------------------------ fold-in

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("This recommender is not fitted yet; call fit() first.")

    def columns(self, movie_ids: Iterable[int]) -> np.ndarray:
        """Return the factor columns of the known movies among ``movie_ids`` (unknown ones drop)."""
        self._check_fitted()
        found = [self._column.get(int(m)) for m in movie_ids]
        return np.array([c for c in found if c is not None], dtype=np.int64)

    def _user_row(self, user_ratings: UserRatings) -> tuple[np.ndarray, np.ndarray]:
        cols: list[int] = []
        vals: list[float] = []
        for movie_id, rating in user_ratings.items():
            col = self._column.get(int(movie_id))
            if col is not None and np.isfinite(rating) and rating > 0:
                cols.append(col)
                vals.append(float(rating))
        return np.array(cols, dtype=np.int64), np.array(vals, dtype=np.float64)

    def fold_in(self, user_ratings: UserRatings) -> np.ndarray:
        """Return the user's factors ``w`` for the fixed movie factors, as ``NMF.transform`` would.

        Runs scikit-learn's multiplicative update for ``W`` (same initialization, regularization
        and stopping rule), using the cached ``H Hᵀ``. Unknown movie ids are ignored; a user with
        no known ratings gets a zero vector.
        """
        self._check_fitted()
        cols, vals = self._user_row(user_ratings)
        k = self.components_.shape[0]
        if cols.size == 0:
            return np.zeros(k)
        h_rated = self.components_[:, cols]
        xht = h_rated @ vals  # x Hᵀ, from the rated columns only
        n_items = self.components_.shape[1]
        w = np.full(k, np.sqrt(vals.sum() / n_items / k))
        x_norm = float(vals @ vals)

        def error(w: np.ndarray) -> float:
            return float(np.sqrt(max(x_norm - 2.0 * (w @ xht) + w @ self.gram_ @ w, 0.0)))

        initial = previous = error(w)
        for iteration in range(1, self.max_iter + 1):
            denominator = self.gram_ @ w
            if self._l1 > 0:
                denominator = denominator + self._l1
            if self._l2 > 0:
                denominator = denominator + self._l2 * w
            denominator[denominator == 0] = np.finfo(np.float64).eps
            w = w * (xht / denominator)
            if self.tol > 0 and iteration % 10 == 0:
                current = error(w)
                if initial == 0 or (previous - current) / initial < self.tol:
                    break
                previous = current
        return w

    # ------------------------------------------------------------------ scoring

    def score(self, user_ratings: UserRatings) -> np.ndarray:
        """Return a rank score for every movie column (higher is better), blended for new users.

        With no known ratings this is the damped-mean popularity; with fewer than ``blend_below``,
        a blend of the model's and popularity's scores, each scaled to [0, 1]; otherwise raw
        ``w·H``. Compare scores only within one call.
        """
        self._check_fitted()
        n_known = len(self.columns(user_ratings))
        if n_known == 0:
            return self.popularity_.copy()
        # Scoring in float32 is ~3x faster at 87k movies and ranks the same.
        raw = _flush_small(self.fold_in(user_ratings)) @ self._components32
        if n_known >= self.blend_below:
            return raw
        weight = n_known / self.blend_below
        return weight * _unit_scale(raw) + (1.0 - weight) * self._popularity_unit

    def _filter(
        self,
        genres: Collection[str] | None,
        years: tuple[int | None, int | None] | None,
    ) -> np.ndarray | None:
        """Return True for columns that pass the genre and year filters, or None if unfiltered."""
        if not genres and years is None:
            return None
        allowed = np.ones(len(self.item_ids_), dtype=bool)
        if genres:
            wanted = {g.casefold() for g in genres}
            bits = sum(1 << i for i, g in enumerate(self.genre_names_) if g.casefold() in wanted)
            allowed &= (self.item_genres_ & bits) != 0
        if years is not None:
            low, high = years
            if low is not None:
                allowed &= self.item_years_ >= low
            if high is not None:
                allowed &= (self.item_years_ <= high) & (self.item_years_ >= 0)
        return allowed

    def _top(
        self,
        scores: np.ndarray,
        n: int,
        exclude: Collection[int] = (),
        allowed: np.ndarray | None = None,
    ) -> list[Recommendation]:
        """Return the ``n`` best allowed columns by score, leaving out ``exclude`` (movie ids)."""
        if n <= 0:
            return []
        values = np.array(scores, dtype=np.float64)
        if exclude:
            values[self.columns(exclude)] = -np.inf
        if allowed is not None:
            values[~allowed] = -np.inf
        k = min(n, values.size)
        part = np.argpartition(values, values.size - k)[values.size - k :]
        part = part[np.isfinite(values[part])]
        # Ties (e.g. equal popularity) fall back to the most rated, then the lowest id.
        order = np.lexsort((self.item_ids_[part], -self.item_counts_[part], -values[part]))
        chosen = part[order]
        return [Recommendation(int(self.item_ids_[c]), float(values[c])) for c in chosen]

    def recommend(
        self,
        user_ratings: UserRatings,
        n: int = 10,
        *,
        exclude: Collection[int] = (),
        genres: Collection[str] | None = None,
        years: tuple[int | None, int | None] | None = None,
    ) -> list[Recommendation]:
        """Return the ``n`` best movies for a user with these ratings, best first.

        Parameters
        ----------
        user_ratings : mapping of movie id to rating
            The user's current ratings; folded in, never recommended back.
        n : int
            How many movies to return (fewer if the filters leave fewer).
        exclude : collection of movie ids
            Further movies not to recommend (e.g. ones the user dismissed).
        genres : collection of str, optional
            Keep only movies with at least one of these genres (case-insensitive).
        years : (first, last), optional
            Keep only movies released in this inclusive range; either end may be None.
        """
        self._check_fitted()
        scores = self.score(user_ratings)
        return self._top(scores, n, [*user_ratings, *exclude], self._filter(genres, years))

    def recommend_group(
        self,
        members: Sequence[UserRatings],
        n: int = 10,
        *,
        exclude: Collection[int] = (),
        genres: Collection[str] | None = None,
        years: tuple[int | None, int | None] | None = None,
    ) -> list[Recommendation]:
        """Return ``n`` movies for a group watching together (e.g. a voice channel).

        Each member's scores become ranks in [0, 1]; a movie's group score is the members' mean
        rank minus half their spread, so a pick that one member would hate loses to one everybody
        likes. Movies any member has rated are left out.
        """
        self._check_fitted()
        if not members:
            return self._top(self.popularity_, n, exclude, self._filter(genres, years))
        ranks = np.vstack([_rank_scores(self.score(m)) for m in members])
        group = ranks.mean(axis=0) - 0.5 * (ranks.max(axis=0) - ranks.min(axis=0))
        seen = {movie for member in members for movie in member}
        return self._top(group, n, [*seen, *exclude], self._filter(genres, years))

    def popular(
        self,
        n: int = 10,
        *,
        exclude: Collection[int] = (),
        genres: Collection[str] | None = None,
        years: tuple[int | None, int | None] | None = None,
    ) -> list[Recommendation]:
        """Return the ``n`` best movies by damped mean rating (what a user with no ratings gets)."""
        self._check_fitted()
        return self._top(self.popularity_, n, exclude, self._filter(genres, years))

    def explain(self, user_ratings: UserRatings, movie_id: int, top: int = 3) -> Explanation:
        """Return which of the user's rated movies contributed most to ``movie_id``'s score.

        The fold-in is linear in the ratings for fixed ``w`` scaling, so each rated movie's share
        is its rating times the similarity of its factors to the recommended movie's factors.
        """
        self._check_fitted()
        target = self._column.get(int(movie_id))
        cols, vals = self._user_row(user_ratings)
        if target is None or cols.size == 0:
            return Explanation(int(movie_id), ())
        h = self.components_
        affinity = (h[:, cols].T @ h[:, target]) * vals
        total = float(affinity.sum())
        if total <= 0:
            return Explanation(int(movie_id), ())
        order = np.argsort(-affinity)[:top]
        because = tuple(
            (int(self.item_ids_[cols[i]]), float(affinity[i] / total))
            for i in order
            if affinity[i] > 0
        )
        return Explanation(int(movie_id), because)

    def similar(self, movie_id: int, n: int = 10, *, min_ratings: int = 5) -> list[Recommendation]:
        """Return the ``n`` movies whose factors are closest (cosine) to ``movie_id``'s.

        Movies with fewer than ``min_ratings`` ratings are left out: their factors are noise.
        An unknown movie id gives an empty list.
        """
        self._check_fitted()
        column = self._column.get(int(movie_id))
        if column is None or self.item_norms_[column] == 0:
            return []
        h = self.components_
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = (h[:, column] @ h) / (self.item_norms_ * self.item_norms_[column])
        cosine = np.nan_to_num(cosine, nan=0.0)
        return self._top(cosine, n, [int(movie_id)], self.item_counts_ >= min_ratings)

    @property
    def n_items(self) -> int:
        """Return the number of movies the model has factors for."""
        self._check_fitted()
        return len(self.item_ids_)


def damped_mean(sums: np.ndarray, counts: np.ndarray, damping: float) -> np.ndarray:
    """Return each movie's mean rating pulled toward the global mean by ``damping`` pseudo-ratings.

    A film with one 5-star rating no longer outranks one with hundreds of 4.5s.
    """
    global_mean = float(sums.sum() / max(counts.sum(), 1))
    return (sums + damping * global_mean) / (counts + damping)


def _rank_scores(values: np.ndarray) -> np.ndarray:
    """Map scores to (0, 1] by rank, so differently scaled scores can be blended."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1, dtype=np.float64)
    return ranks / max(values.size, 1)


def _unit_scale(values: np.ndarray) -> np.ndarray:
    """Scale scores linearly to [0, 1] (cheaper than ranks; used for blending)."""
    low = float(values.min()) if values.size else 0.0
    span = float(values.max()) - low if values.size else 0.0
    return (values - low) / span if span > 0 else np.zeros_like(values, dtype=np.float64)


def _flush_small(values: np.ndarray) -> np.ndarray:
    """Return ``values`` as float32 with entries below float32 precision of the largest set to 0.

    The solver leaves some factors near 1e-40. Products of such numbers are subnormal floats,
    which make a matrix product several times slower, and they are far below what float32
    resolves next to the large factors, so zero ranks the same.
    """
    out = np.ascontiguousarray(values, dtype=np.float32)
    if out.size:
        out[np.abs(out) < float(np.abs(out).max()) * 1e-7] = 0.0
    return out
