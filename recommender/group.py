"""Group picks for a movie night, fair across nights.

A group is a list of members' ratings (a voice channel's members); a member with no ratings counts
as "anyone" and ranks films by popularity (``model.score_items({})``). Every member ranks the
*candidates* -- known films nobody in the group rated, not in ``exclude``, allowed by the mask --
with the shared tie rule of :func:`~recommender.base.top_n`, so rank 1 is the film
``model.recommend`` would put first for that member. Ranks become normalized ranks in [0, 1]
(1 = the member's favourite candidate, 0 = their least favourite) and the group score blends their
weighted mean with the worst of them (least misery)::

    u_i(m) = (C - rank_i(m)) / (C - 1)                  (1 when C == 1)
    G(m)   = (1 - MISERY_SHARE) * sum_i w_i u_i(m) / sum_i w_i + MISERY_SHARE * min_i u_i(m)

Least misery alone would let one picky member veto every night, so the weights ``w_i`` come from
:func:`fairness_weights`: the worse a member was served on recent nights, compared with the rest
of the group, the more their ranks count tonight. ``docs/movienight.md`` defines the rule and
what the bot stores for it. Nothing here knows about Discord or member names: results carry ranks
and weights in input order, never who they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.base import Recommender, top_n

MISERY_SHARE = 0.5
"""Share of the group score that is the least-served member's normalized rank."""

NEUTRAL_SATISFACTION = 0.5
"""Satisfaction reported for a film the model does not know (neither pleased nor let down)."""


@dataclass(frozen=True)
class GroupPick:
    """One film for the group, with how it suits the group's members (no names, never stars).

    ``best_rank`` is the best (smallest) rank the film has among the members, 1 meaning it is
    someone's top candidate; ``worst_rank`` the worst (largest). ``score`` is the group score in
    [0, 1], higher is better; it only compares films within one :class:`GroupPicks`.
    """

    movie_id: int
    score: float
    best_rank: int
    worst_rank: int


@dataclass(frozen=True)
class GroupPicks:
    """Group picks, best first, with the weight each member got (input order).

    ``candidates`` counts the films that were ranked (known, unseen by the group, not excluded,
    allowed), so ``best_rank`` and ``worst_rank`` read as "out of ``candidates``".
    """

    picks: tuple[GroupPick, ...]
    weights: tuple[float, ...]
    candidates: int

    def __len__(self) -> int:
        return len(self.picks)


@dataclass(frozen=True)
class Night:
    """One simulated movie night: the winner, each member's satisfaction and weight."""

    movie_id: int
    satisfaction: tuple[float, ...]
    weights: tuple[float, ...]


def recommend_for_group(
    model: Recommender,
    members: Sequence[Mapping[int, float]],
    n: int = 5,
    *,
    weights: Sequence[float] | None = None,
    exclude: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> GroupPicks:
    """Return the ``n`` best films for a group watching together, best first.

    Parameters
    ----------
    model : Recommender
        A fitted recommender; each member's scores are ``model.score_items(ratings)``.
    members : sequence of mappings of movie id to stars
        Each member's ratings; an empty mapping is "anyone" (popularity). Unknown movie ids are
        ignored. Films any member rated are never picked.
    n : int, default=5
        How many films to return (fewer if fewer candidates remain).
    weights : sequence of float, optional
        One non-negative weight per member, e.g. from :func:`fairness_weights`; rescaled to mean
        1. Default: all 1.
    exclude : collection of movie ids
        Further films not to pick (the server's watched list, dismissals).
    allowed : ndarray of bool, optional
        One flag per column (``model.item_ids_``), e.g. a genre filter.

    Returns
    -------
    GroupPicks
        The picks, the weights used (mean 1, input order) and the number of candidates.

    Raises
    ------
    ValueError
        If there are no members, or ``weights`` or ``allowed`` do not fit.
    """
    if not members:
        raise ValueError("A group needs at least one member.")
    used = _normalized_weights(weights, len(members))
    pool = _candidates(model, members, exclude, allowed)
    if n <= 0 or pool.size == 0:
        return GroupPicks((), tuple(used.tolist()), int(pool.size))
    ranks = np.vstack([_ranks(model, model.score_items(member), pool) for member in members])
    normalized = _normalized_ranks(ranks)
    weighted_mean = (used @ normalized) / used.sum()
    group = (1.0 - MISERY_SHARE) * weighted_mean + MISERY_SHARE * normalized.min(axis=0)
    # The shared top-N breaks ties as every other list does (most rated, then lowest id).
    chosen = top_n(group, n, item_counts=model.item_counts_[pool], item_ids=model.item_ids_[pool])
    picks = tuple(
        GroupPick(
            movie_id=int(model.item_ids_[pool[i]]),
            score=float(group[i]),
            best_rank=int(ranks[:, i].min()),
            worst_rank=int(ranks[:, i].max()),
        )
        for i in chosen.tolist()
    )
    return GroupPicks(picks, tuple(used.tolist()), int(pool.size))


def satisfaction(
    model: Recommender,
    ratings: Mapping[int, float],
    movie_id: int,
    *,
    exclude: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> float:
    """Return how well ``movie_id`` suits one member: its normalized rank among their candidates.

    The candidates are the known films the member has not rated, not in ``exclude`` and allowed,
    plus ``movie_id`` itself (so a film the member has since rated or dismissed still gets a
    value). 1 means the member's best candidate, 0 their worst; a film that is the only candidate
    is 1. A film the model does not know gives ``NEUTRAL_SATISFACTION`` (0.5).

    To record a movie night, pass every member's rated films in ``exclude`` (as
    :func:`group_satisfaction` does), so the value equals the normalized rank the group score used.
    """
    target = model.columns([movie_id])
    if target.size == 0:
        return NEUTRAL_SATISFACTION
    pool = _candidates(model, [ratings], exclude, allowed)
    pool = np.union1d(pool, target)
    ranks = _ranks(model, model.score_items(ratings), pool)
    return float(_normalized_ranks(ranks[None, :])[0, np.searchsorted(pool, target[0])])


def group_satisfaction(
    model: Recommender,
    members: Sequence[Mapping[int, float]],
    movie_id: int,
    *,
    exclude: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> list[float]:
    """Return each member's :func:`satisfaction` with a night's winner, in input order.

    Pass the ``exclude`` and ``allowed`` the night's picks were made with (before adding the
    winner to the watched list): every member's rated films are left out of every member's
    candidates, as in :func:`recommend_for_group`, so a value is the winner's normalized rank that
    the group score used. This is the row the bot stores for the night.
    """
    seen = [movie for member in members for movie in member]
    return [
        satisfaction(model, member, movie_id, exclude=[*seen, *exclude], allowed=allowed)
        for member in members
    ]


def fairness_weights(
    history: Sequence[Sequence[float | None]],
    *,
    half_life: float = 2.0,
    floor: float = 0.5,
    ceiling: float = 2.0,
    gain: float = 2.0,
    n_members: int | None = None,
) -> list[float]:
    """Return one weight per member for tonight: more for those served worst on recent nights.

    For member ``i``, ``s_i`` is the exponentially decayed mean of their satisfaction over the
    nights they attended (a night ``a`` nights before the newest counts ``0.5 ** (a / half_life)``);
    nights they missed are left out, so absence neither lowers nor raises it. ``m`` is the mean of
    ``s_i`` over members with any night; a member with none counts as ``s_i = m``. Then::

        w_i = clip(1 + gain * (m - s_i) + b, floor, ceiling)

    where the shift ``b`` is the one value that makes the weights' mean exactly 1 (it is 0 unless
    a bound was hit). So each 0.1 of recent satisfaction below the group's average adds
    ``0.1 * gain`` to a member's weight, nobody goes below ``floor`` or above ``ceiling``, and a
    group that was served equally gets 1 for everyone.

    Parameters
    ----------
    history : sequence of rows of float or None
        One row per past night, newest LAST; one column per CURRENT member, holding their
        satisfaction in [0, 1] with that night's winner, or None if they were not there.
    half_life : float, default=2.0
        Nights after which a night counts half as much.
    floor, ceiling : float, default=0.5, 2.0
        Bounds of every weight; ``0 < floor <= 1 <= ceiling``.
    gain : float, default=2.0
        Weight added per unit of satisfaction below the group's average (0 = all weights 1).
    n_members : int, optional
        Number of current members; needed when ``history`` is empty (the first night), and
        checked against every row otherwise.

    Returns
    -------
    list of float
        One weight per member, in column order; mean 1.

    Raises
    ------
    ValueError
        On bad parameters, rows of different lengths, or a satisfaction outside [0, 1].
    """
    if not (half_life > 0 and 0 < floor <= 1 <= ceiling and math.isfinite(ceiling)):
        raise ValueError("Need half_life > 0 and 0 < floor <= 1 <= ceiling < inf.")
    if not (gain >= 0 and math.isfinite(gain)):
        raise ValueError("Need a finite gain >= 0.")
    widths = {len(row) for row in history} | ({n_members} if n_members is not None else set())
    if len(widths) > 1:
        raise ValueError("Every history row needs one column per current member.")
    if not widths:
        raise ValueError("With no history, pass n_members to get one weight per member.")
    size = widths.pop()
    if size == 0:
        return []
    values = np.full((len(history), size), np.nan)
    for night, row in enumerate(history):
        for member, value in enumerate(row):
            if value is None:
                continue
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise ValueError(f"Satisfaction must be in [0, 1], got {value!r}.")
            values[night, member] = value
    present = ~np.isnan(values)
    ages = np.arange(len(history) - 1, -1, -1, dtype=np.float64)
    decay = np.where(present, 0.5 ** (ages / half_life)[:, None], 0.0)
    mass = decay.sum(axis=0)
    attended = mass > 0
    if not attended.any():
        return [1.0] * size
    means = np.full(size, np.nan)
    means[attended] = (decay * np.nan_to_num(values))[:, attended].sum(axis=0) / mass[attended]
    average = float(means[attended].mean())
    means[~attended] = average
    raw = 1.0 + gain * (average - means)
    return _shift_to_mean_one(raw, floor, ceiling).tolist()


def simulate_nights(
    model: Recommender,
    members: Sequence[Mapping[int, float]],
    nights: int,
    *,
    fair: bool = True,
    exclude: Collection[int] = (),
    allowed: np.ndarray | None = None,
    half_life: float = 2.0,
    floor: float = 0.5,
    ceiling: float = 2.0,
    gain: float = 2.0,
) -> list[Night]:
    """Play ``nights`` movie nights with the same members: the top group pick wins each night.

    Each winner joins the watched list, and its :func:`group_satisfaction` row joins the history
    that :func:`fairness_weights` turns into the next night's weights (all 1 if ``fair`` is
    False). Stops early when no candidate is left. For tests and tuning; the bot plays nights
    one at a time.
    """
    history: list[list[float | None]] = []
    watched = list(exclude)
    played: list[Night] = []
    for _ in range(nights):
        weights = (
            fairness_weights(
                history,
                half_life=half_life,
                floor=floor,
                ceiling=ceiling,
                gain=gain,
                n_members=len(members),
            )
            if fair
            else None
        )
        picks = recommend_for_group(
            model, members, 1, weights=weights, exclude=watched, allowed=allowed
        )
        if not picks.picks:
            break
        winner = picks.picks[0].movie_id
        row = group_satisfaction(model, members, winner, exclude=watched, allowed=allowed)
        history.append(list(row))
        watched.append(winner)
        played.append(Night(winner, tuple(row), picks.weights))
    return played


# ---------------------------------------------------------------------- helpers


def _normalized_weights(weights: Sequence[float] | None, size: int) -> np.ndarray:
    """Return ``weights`` as an array with mean 1 (all 1 when None)."""
    if weights is None:
        return np.ones(size)
    used = np.asarray(weights, dtype=np.float64)
    if used.shape != (size,):
        raise ValueError(f"Need one weight per member: {size} members, {used.size} weights.")
    if not (np.isfinite(used).all() and (used >= 0).all() and used.sum() > 0):
        raise ValueError("Weights must be finite, non-negative and not all 0.")
    return used * (size / used.sum())


def _candidates(
    model: Recommender,
    members: Sequence[Mapping[int, float]],
    exclude: Collection[int],
    allowed: np.ndarray | None,
) -> np.ndarray:
    """Return the sorted columns nobody in ``members`` rated, not excluded, and allowed."""
    keep = np.ones(model.n_items, dtype=bool)
    if allowed is not None:
        mask = np.asarray(allowed)
        if mask.shape != keep.shape or mask.dtype != np.bool_:
            raise ValueError(f"allowed must be {model.n_items} booleans, one per column.")
        keep &= mask
    seen = [movie for member in members for movie in member]
    keep[model.columns([*seen, *exclude])] = False
    return np.flatnonzero(keep)


def _ranks(model: Recommender, scores: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Return the rank (1 = best) of each column of ``pool`` by ``scores``.

    Ties go to the most rated film, then the lowest id, as in :func:`top_n`, so rank 1 is what
    ``model.recommend`` would list first; NaN ranks last.
    """
    values = np.asarray(scores, dtype=np.float64)[pool]
    values[np.isnan(values)] = -np.inf
    order = np.lexsort((model.item_ids_[pool], -model.item_counts_[pool], -values))
    ranks = np.empty(pool.size, dtype=np.int64)
    ranks[order] = np.arange(1, pool.size + 1)
    return ranks


def _normalized_ranks(ranks: np.ndarray) -> np.ndarray:
    """Map ranks 1..C to [0, 1] linearly, 1 for the best (and for a lone candidate)."""
    count = ranks.shape[-1]
    if count <= 1:
        return np.ones(ranks.shape)
    return (count - ranks) / (count - 1)


def _shift_to_mean_one(raw: np.ndarray, floor: float, ceiling: float) -> np.ndarray:
    """Return ``clip(raw + b, floor, ceiling)`` for the ``b`` that makes its mean 1.

    The mean is piecewise linear and non-decreasing in ``b``, with kinks where an entry reaches a
    bound, so ``b`` is found exactly by interpolating between the two kinks around mean 1.
    """
    if floor == ceiling:
        return np.ones_like(raw)
    kinks = np.unique(np.concatenate([floor - raw, ceiling - raw]))
    means = np.array([np.clip(raw + b, floor, ceiling).mean() for b in kinks])
    # At the lowest kink every entry is at the floor (mean <= 1), at the highest at the ceiling.
    upper = int(np.searchsorted(means, 1.0))
    if means[upper] == 1.0 or upper == 0:
        shift = float(kinks[upper])
    else:
        low, high = means[upper - 1], means[upper]
        shift = float(
            kinks[upper - 1] + (1.0 - low) * (kinks[upper] - kinks[upper - 1]) / (high - low)
        )
    return np.clip(raw + shift, floor, ceiling)
