"""Fit a model on a data set plus chat ratings and package it with its metadata."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recommender.data import Dataset
from recommender.model import NMFRecommender
from recommender.persistence import ModelBundle, ModelMetadata, rating_stats
from recommender.tuning import Tuning, tune_nmf, tuning_key

log = logging.getLogger(__name__)

CHAT_COLUMNS = ("user_id", "movie_id", "rating")


def fit_bundle(
    dataset: Dataset,
    chat_ratings: pd.DataFrame | None = None,
    *,
    holdout: float = 0.0,
    holdout_seed: int = 0,
    tune: bool = False,
    previous_tuning: Tuning | None = None,
    previous_model: NMFRecommender | None = None,
    **params: Any,
) -> ModelBundle:
    """Fit an :class:`NMFRecommender` on MovieLens plus chat ratings and bundle it for saving.

    ``chat_ratings`` has ``user_id``, ``movie_id``, ``rating``; chat users are keyed apart from
    MovieLens users, and ratings of movies outside the data set are left out.

    With ``holdout`` > 0, that share of MovieLens users is left out of the fit and used to
    measure the fresh model (NDCG@10 with 5 ratings revealed, next to popular picks); the result
    is in ``metadata.quality``. Chat members are never held out.

    With ``tune``, ``n_components``, ``alpha``, ``blend_below`` and ``fold_in_reg`` are chosen
    first by :func:`~recommender.tuning.tune_nmf` on the MovieLens users the model is trained on
    (never the held-out ones), centred on ``params`` (a ``blend_below`` or ``fold_in_reg`` in
    ``params`` is kept as it is); the choice is in ``metadata.tuning``. A
    ``previous_tuning`` made on the same data from the same start (same
    :func:`~recommender.tuning.tuning_key`) is reused instead of tuning again.

    With ``previous_model`` (fitted with the same ``n_components`` and ``alpha``) the fit is
    warm-started from its factors: about a sixth of a cold fit's time after a few new ratings
    (docs/benchmarks.md); with other parameters it starts cold.
    """
    started = time.perf_counter()
    chat = None
    if chat_ratings is not None and not chat_ratings.empty:
        chat = chat_ratings.loc[
            chat_ratings["movie_id"].isin(dataset.movies["movie_id"]), list(CHAT_COLUMNS)
        ]
    train, held_out = dataset.ratings, None
    if holdout > 0:
        train, held_out = split_users(dataset.ratings, holdout, holdout_seed)
    tuning = None
    if tune:
        key = tuning_key(dataset.fingerprint, params)
        if previous_tuning is not None and previous_tuning.key == key:
            tuning = previous_tuning
        else:
            try:
                pinned = [k for k in ("blend_below", "fold_in_reg") if k in params]
                tuning = tune_nmf(train, params, fingerprint=dataset.fingerprint, fixed=pinned)
            except ValueError as exc:  # too few users to tune on: the defaults it is
                log.warning("Not tuning the model: %s Using the default settings.", exc)
        if tuning is not None:
            params = tuning.params
    model = NMFRecommender(**params).fit(train, chat, previous=previous_model)
    quality = quick_quality(model, train, held_out) if held_out is not None else {}
    combined = train if chat is None else pd.concat([train, chat])
    metadata = ModelMetadata(
        dataset=dataset.name,
        data_fingerprint=dataset.fingerprint,
        n_users=model.n_users_,
        n_chat_users=0 if chat is None else int(chat["user_id"].nunique()),
        n_ratings=model.n_ratings_,
        n_chat_ratings=0 if chat is None else len(chat),
        n_movies=model.n_items,
        fit_seconds=time.perf_counter() - started,
        params=model.get_params(),
        quality=quality,
        tuning={} if tuning is None else tuning.as_dict(),
    )
    return ModelBundle(model, dataset.movies, rating_stats(combined), metadata)


def split_users(
    ratings: pd.DataFrame, share: float, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (ratings of most users, ratings of a random ``share`` of users)."""
    users = np.sort(ratings["user_id"].unique())
    rng = np.random.default_rng(seed)
    n_held = max(1, round(len(users) * share)) if len(users) > 1 else 0
    held = set(rng.choice(users, n_held, replace=False).tolist())
    mask = ratings["user_id"].isin(held)
    return ratings.loc[~mask], ratings.loc[mask]


def quick_quality(
    model: NMFRecommender, train: pd.DataFrame, held_out: pd.DataFrame, reveal: int = 5
) -> dict[str, float]:
    """Return NDCG@10 (and its standard error) of the model and of popular picks for held-out
    users with ``reveal`` ratings known."""
    from recommender.baselines import PopularityRecommender
    from recommender.evaluation import evaluate_cases, reveal_cases

    rng = np.random.default_rng(0)
    cases = [
        case
        for user, frame in held_out.groupby("user_id")
        for case in reveal_cases(int(user), frame, (reveal,), rng).values()  # type: ignore[arg-type]
    ]
    if not cases:
        return {}
    popular = PopularityRecommender("count").fit(train)
    measured, baseline = evaluate_cases(model, cases), evaluate_cases(popular, cases)
    return {
        "users": float(len(cases)),
        "ndcg_model": measured["ndcg"],
        "ndcg_model_se": measured["ndcg_se"],
        "ndcg_popular": baseline["ndcg"],
        "ndcg_popular_se": baseline["ndcg_se"],
    }


def previous_fit(
    dataset: Dataset, path: str | Path | None
) -> tuple[NMFRecommender | None, Tuning | None]:
    """Return the model saved at ``path`` and its tuning, if it was fitted on ``dataset``.

    They let the next fit warm-start and skip re-tuning; a missing, unreadable or foreign
    model gives (None, None): the next fit starts cold.
    """
    from recommender.persistence import ModelFileError, load_bundle

    if path is None or not os.path.isfile(path):
        return None, None
    try:
        previous = load_bundle(path)
    except ModelFileError:
        return None, None
    if previous.metadata.data_fingerprint != dataset.fingerprint:
        return None, None
    tuning = Tuning.from_dict(previous.metadata.tuning) if previous.metadata.tuning else None
    return previous.model, tuning


def fit_and_save(
    source: str,
    cache_dir: str,
    chat_ratings: pd.DataFrame | None,
    params: dict[str, Any],
    model_path: str,
    holdout: float = 0.05,
    *,
    tune: bool = False,
    previous_path: str | None = None,
) -> ModelMetadata:
    """Load the data set, fit, save atomically and return the metadata (runs in a worker process).

    Only paths and the (small) chat ratings cross the process boundary; the worker reads the
    cached MovieLens files itself and limits nothing: a refit may use every BLAS thread.

    ``previous_path`` names the model being replaced: fitted on the same data, it warm-starts the
    fit (when its parameters are the ones chosen now) and its tuning is reused (when the data
    and the settings are the same), so a refit after a few new ratings costs little. Other data
    or other settings start cold.
    """
    from recommender.data import load_dataset
    from recommender.persistence import save_bundle

    dataset = load_dataset(source, Path(cache_dir), progress=False)
    previous_model, previous_tuning = previous_fit(dataset, previous_path)
    bundle = fit_bundle(
        dataset,
        chat_ratings,
        holdout=holdout,
        tune=tune,
        previous_tuning=previous_tuning,
        previous_model=previous_model,
        **params,
    )
    save_bundle(bundle, Path(model_path))
    return bundle.metadata
