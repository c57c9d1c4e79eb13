"""What every recommender shares: candidates from the caller, scores, and one top-N.

The shape follows the field's best libraries: lenskit splits candidate selection, scoring and
ranking; implicit's ``recommend(..., items=, filter_items=)`` takes the allowed items from the
caller. Here a recommender scores every movie it knows (:meth:`Recommender.score_items`),
:func:`top_n` picks the best allowed ones, and :meth:`Recommender.recommend` joins the two. That
one ranking serves the bot, the command line and ``moviebot evaluate`` alike.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

UserRatings = Mapping[int, float]
SCORE_ROWS = 64  # users scored together by recommend_many (64 x 87k movies x 8 bytes = 45 MB)
"""A user's ratings: MovieLens movie id -> stars (0.5-5.0)."""

POPULARITY_DAMPING = 50.0
"""Pseudo-ratings pulling a movie's mean toward the global mean, everywhere popularity is used."""

DISCOVER = 0.5
"""The "fewer blockbusters" strength: pass ``discover=DISCOVER`` to :meth:`Recommender.recommend`.

The largest swept strength (0.1, 0.2, 0.3, 0.5, 1) that costs at most 0.02 of mean NDCG@10 over
k on ml-latest-small and on its dense layout; docs/tuning.md has what it costs in NDCG@10 and
gains in coverage and popularity rank.
"""


class NotFittedError(RuntimeError):
    """The model was used before ``fit``."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended movie and its rank score (not a rating; only comparable within a list)."""

    movie_id: int
    score: float


@dataclass(frozen=True)
class RecommendRequest:
    """One member's :meth:`Recommender.recommend` call, for :meth:`Recommender.recommend_many`."""

    ratings: UserRatings
    n: int = 10
    exclude: Collection[int] = ()
    allowed: np.ndarray | None = None
    discover: float = 0.0


@dataclass(frozen=True)
class Picks:
    """A ranked list of movies, best first, and how many of the user's ratings shaped it.

    ``n_used`` counts the ratings of movies the model knows; ratings of unknown movies are
    ignored, so a list can be based on fewer ratings than the user gave.
    """

    movie_ids: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    n_used: int = 0

    def __len__(self) -> int:
        return len(self.movie_ids)

    def __iter__(self) -> Iterator[Recommendation]:
        for movie_id, score in zip(self.movie_ids, self.scores, strict=True):
            yield Recommendation(movie_id, score)

    def __getitem__(self, index: int) -> Recommendation:
        return Recommendation(self.movie_ids[index], self.scores[index])


def damped_mean(sums: np.ndarray, counts: np.ndarray, damping: float) -> np.ndarray:
    """Return each movie's mean rating pulled toward the global mean by ``damping`` pseudo-ratings.

    A film with one 5-star rating no longer outranks one with hundreds of 4.5s.
    """
    global_mean = float(sums.sum() / max(counts.sum(), 1))
    return (sums + damping * global_mean) / (counts + damping)


def top_n(
    scores: np.ndarray,
    n: int,
    *,
    item_counts: np.ndarray,
    item_ids: np.ndarray,
    exclude: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Return the columns of the ``n`` best allowed scores, best first.

    Parameters
    ----------
    scores : ndarray of shape (n_items,)
        Higher is better; ``-inf`` and NaN never make the list.
    n : int
        How many columns to return at most.
    item_counts, item_ids : ndarray of shape (n_items,)
        Ties fall back to the most rated movie, then the lowest id, so lists are deterministic.
    exclude : ndarray of int, optional
        Columns that must not be returned (the user's rated movies, dismissed ones, ...).
    allowed : ndarray of bool, optional
        True for columns that may be returned (genre, year and watched-list filters).
    """
    if n <= 0 or scores.size == 0:
        return np.empty(0, dtype=np.int64)
    values = np.array(scores, dtype=np.float64)
    values[np.isnan(values)] = -np.inf
    if exclude is not None and exclude.size:
        values[exclude] = -np.inf
    if allowed is not None:
        values[~allowed] = -np.inf
    k = min(n, values.size)
    kth = np.partition(values, values.size - k)[values.size - k]
    # Every column tied with the k-th value competes, so ties break by the rule, not by chance.
    part = (
        np.flatnonzero(values >= kth) if np.isfinite(kth) else np.flatnonzero(np.isfinite(values))
    )
    order = np.lexsort((item_ids[part], -item_counts[part], -values[part]))
    return part[order][:k]


def discovery_scores(scores: np.ndarray, item_counts: np.ndarray, strength: float) -> np.ndarray:
    """Return ``scores`` with popular movies pushed down, for a "fewer blockbusters" list.

    Scores are scaled to [0, 1] over the finite ones, then ``strength`` times the movie's
    log-popularity (``log(1 + ratings)``, scaled so the most rated movie has 1) is taken off.
    ``-inf`` and NaN stay out of the list; ``strength`` 0 ranks exactly as ``scores``.
    """
    values = np.array(scores, dtype=np.float64)
    if strength == 0 or values.size == 0:
        return values
    finite = np.isfinite(values)
    if not finite.any():
        return values
    low, high = float(values[finite].min()), float(values[finite].max())
    span = high - low if high > low else 1.0
    popularity = np.log1p(np.asarray(item_counts, dtype=np.float64))
    popularity /= max(float(popularity.max()), 1e-12)
    values[finite] = (values[finite] - low) / span - strength * popularity[finite]
    return values


class Recommender(BaseEstimator):
    """Base of every recommender: the scoring is the subclass's, the ranking is shared.

    A fitted subclass sets ``item_ids_`` (sorted movie ids, one per column) and ``item_counts_``
    (ratings per column), and implements :meth:`_score_known`.
    """

    item_ids_: np.ndarray
    item_counts_: np.ndarray

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_ids_"):
            raise NotFittedError("This recommender is not fitted yet; call fit() first.")

    @property
    def n_items(self) -> int:
        """Return the number of movies the model can rank."""
        self._check_fitted()
        return len(self.item_ids_)

    def columns(self, movie_ids: Iterable[int]) -> np.ndarray:
        """Return the columns of the known movies among ``movie_ids`` (unknown ones drop out)."""
        self._check_fitted()
        ids = np.fromiter((int(m) for m in movie_ids), dtype=np.int64)
        if ids.size == 0 or self.item_ids_.size == 0:
            return np.empty(0, dtype=np.int64)
        cols = np.minimum(np.searchsorted(self.item_ids_, ids), self.item_ids_.size - 1)
        return cols[self.item_ids_[cols] == ids]

    def known_ratings(self, user_ratings: UserRatings) -> tuple[np.ndarray, np.ndarray]:
        """Return the columns and stars of the user's usable ratings (known movie, stars > 0)."""
        self._check_fitted()
        if not user_ratings or self.item_ids_.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        ids = np.fromiter((int(m) for m in user_ratings), dtype=np.int64, count=len(user_ratings))
        stars = np.fromiter(
            (float(r) for r in user_ratings.values()), dtype=np.float64, count=len(user_ratings)
        )
        cols = np.minimum(np.searchsorted(self.item_ids_, ids), self.item_ids_.size - 1)
        usable = (self.item_ids_[cols] == ids) & np.isfinite(stars) & (stars > 0)
        return cols[usable], stars[usable]

    def _score_known(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Return one score per column for a user with ratings ``vals`` of columns ``cols``."""
        raise NotImplementedError

    def score_items(self, user_ratings: UserRatings) -> np.ndarray:
        """Return a rank score for every column (higher is better); compare within one call."""
        return self._score_known(*self.known_ratings(user_ratings))

    def _score_known_many(self, known: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Return one row of scores per user; models that can batch the work override this."""
        return np.vstack([self._score_known(cols, vals) for cols, vals in known])

    def recommend_many(
        self,
        requests: Sequence[RecommendRequest],
    ) -> list[Picks]:
        """Return :meth:`recommend`'s answer for each request, scoring all users together.

        For several members asking at once (a movie-night announcement): one batch of work
        instead of one per member; each answer is the list :meth:`recommend` gives that member.
        """
        picks: list[Picks] = []
        for start in range(0, len(requests), SCORE_ROWS):  # bounds the score matrix's memory
            chunk = requests[start : start + SCORE_ROWS]
            known = [self.known_ratings(r.ratings) for r in chunk]
            scores = self._score_known_many(known)
            picks.extend(
                self.rank(
                    scores[i],
                    r.n,
                    exclude=[*r.ratings, *r.exclude],
                    allowed=r.allowed,
                    n_used=int(cols.size),
                    discover=r.discover,
                )
                for i, (r, (cols, _)) in enumerate(zip(chunk, known, strict=True))
            )
        return picks

    def rank(
        self,
        scores: np.ndarray,
        n: int,
        *,
        exclude: Collection[int] = (),
        allowed: np.ndarray | None = None,
        n_used: int = 0,
        discover: float = 0.0,
    ) -> Picks:
        """Return the ``n`` best allowed movies by ``scores``, leaving out ``exclude`` (ids).

        With ``discover`` > 0 popular movies are pushed down first (:func:`discovery_scores`).
        """
        self._check_fitted()
        if discover:
            scores = discovery_scores(scores, self.item_counts_, discover)
        chosen = top_n(
            scores,
            n,
            item_counts=self.item_counts_,
            item_ids=self.item_ids_,
            exclude=self.columns(exclude) if exclude else None,
            allowed=allowed,
        )
        return Picks(
            tuple(int(m) for m in self.item_ids_[chosen].tolist()),
            tuple(float(s) for s in np.asarray(scores, dtype=np.float64)[chosen].tolist()),
            n_used,
        )

    def recommend(
        self,
        user_ratings: UserRatings,
        n: int = 10,
        *,
        exclude: Collection[int] = (),
        allowed: np.ndarray | None = None,
        discover: float = 0.0,
    ) -> Picks:
        """Return the ``n`` best movies for a user with these ratings, best first.

        Parameters
        ----------
        user_ratings : mapping of movie id to stars
            The user's current ratings; never recommended back. Unknown movies are ignored.
        n : int
            How many movies to return (fewer if the filters leave fewer).
        exclude : collection of movie ids
            Further movies not to recommend (dismissed ones, a server's watched list).
        allowed : ndarray of bool, optional
            One flag per column (``item_ids_``), e.g. from :meth:`Catalog.allowed
            <recommender.catalog.Catalog.allowed>` for genre and year filters.
        discover : float, default=0
            "Fewer blockbusters": how strongly popular movies are pushed down (0 = the usual
            list; :data:`DISCOVER` is the tuned strength). See :func:`discovery_scores`.
        """
        cols, vals = self.known_ratings(user_ratings)
        scores = self._score_known(cols, vals)
        return self.rank(
            scores,
            n,
            exclude=[*user_ratings, *exclude],
            allowed=allowed,
            n_used=int(cols.size),
            discover=discover,
        )
