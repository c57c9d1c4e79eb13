"""Fit a model on a data set plus chat ratings and package it with its metadata."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd

from recommender.data import Dataset
from recommender.model import NMFRecommender
from recommender.persistence import ModelBundle, ModelMetadata, rating_stats

CHAT_COLUMNS = ("user_id", "movie_id", "rating")


def chat_fingerprint(chat_ratings: pd.DataFrame | None) -> str:
    """Return a short hash of chat ratings (order-independent), to tell whether they changed."""
    if chat_ratings is None or chat_ratings.empty:
        return ""
    frame = chat_ratings.sort_values(["user_id", "movie_id"])
    digest = hashlib.sha1(usedforsecurity=False)
    for column in CHAT_COLUMNS:
        digest.update(np.ascontiguousarray(frame[column].to_numpy()).tobytes())
    return digest.hexdigest()[:16]


def fit_bundle(
    dataset: Dataset,
    chat_ratings: pd.DataFrame | None = None,
    **params: Any,
) -> ModelBundle:
    """Fit an :class:`NMFRecommender` on MovieLens plus chat ratings and bundle it for saving.

    ``chat_ratings`` has ``user_id``, ``movie_id``, ``rating``; chat users are keyed apart from
    MovieLens users, and ratings of movies outside the data set are left out.
    """
    started = time.perf_counter()
    chat = None
    if chat_ratings is not None and not chat_ratings.empty:
        chat = chat_ratings.loc[
            chat_ratings["movie_id"].isin(dataset.movies["movie_id"]), list(CHAT_COLUMNS)
        ]
    model = NMFRecommender(**params).fit(dataset.ratings, chat, movies=dataset.movies)
    combined = dataset.ratings if chat is None else pd.concat([dataset.ratings, chat])
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
        chat_fingerprint=chat_fingerprint(chat),
    )
    return ModelBundle(model, dataset.movies, rating_stats(combined), metadata)


def fit_and_save(
    source: str,
    cache_dir: str,
    chat_ratings: pd.DataFrame | None,
    params: dict[str, Any],
    model_path: str,
) -> ModelMetadata:
    """Load the data set, fit, save atomically and return the metadata (runs in a worker process).

    Only paths and the (small) chat ratings cross the process boundary; the worker reads the
    cached MovieLens files itself and limits nothing: a refit may use every BLAS thread.
    """
    from pathlib import Path

    from recommender.data import load_dataset
    from recommender.persistence import save_bundle

    dataset = load_dataset(source, Path(cache_dir), progress=False)
    bundle = fit_bundle(dataset, chat_ratings, **params)
    save_bundle(bundle, Path(model_path))
    return bundle.metadata
