"""Save and load fitted models with joblib, atomically and with metadata.

A saved model is a joblib file, which is a Python pickle: loading one runs code chosen by whoever
wrote it. Load only files this project wrote (the bot's own ``models/`` folder).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn

from recommender.catalog import Catalog
from recommender.model import NMFRecommender

log = logging.getLogger(__name__)

# 2: the model keeps no genre or year tables (the catalog builds filters); no chat fingerprint.
FORMAT_VERSION = 2
DEFAULT_MODEL_PATH = Path("models/model.joblib")


class ModelFileError(Exception):
    """A model file cannot be used; the caller should fit a new model (the message says why)."""


class ModelNotFoundError(ModelFileError):
    """There is no model file at the path."""


class CorruptModelError(ModelFileError):
    """The file is truncated, damaged or not a model file."""


class IncompatibleModelError(ModelFileError):
    """The file was written by an incompatible version of the project."""


def library_versions() -> dict[str, str]:
    """Return the versions of the libraries a saved model depends on."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


@dataclass(frozen=True)
class ModelMetadata:
    """What a saved model was fitted on, when, and how long it took."""

    dataset: str
    data_fingerprint: str
    n_users: int
    n_chat_users: int
    n_ratings: int
    n_chat_ratings: int
    n_movies: int
    fit_seconds: float
    params: dict[str, Any]
    trained_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    format_version: int = FORMAT_VERSION
    versions: dict[str, str] = field(default_factory=library_versions)
    quality: dict[str, float] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)
    """:meth:`recommender.tuning.Tuning.as_dict` when the parameters were tuned, else empty."""


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """A fitted model with the movie table it was fitted with, ready to recommend titles.

    ``rating_stats`` has one row per movie (``movie_id``, ``count``, ``mean``) so the catalog can
    rank search results by popularity without the full ratings.
    """

    model: NMFRecommender
    movies: pd.DataFrame
    rating_stats: pd.DataFrame
    metadata: ModelMetadata

    @cached_property
    def catalog(self) -> Catalog:
        """Return the searchable catalog of the bundled movies (built on first use)."""
        return Catalog(self.movies, stats=self.rating_stats)


def rating_stats(ratings: pd.DataFrame) -> pd.DataFrame:
    """Return per-movie rating ``count`` and ``mean`` for the catalog's popularity ordering."""
    grouped = ratings.groupby("movie_id")["rating"].agg(["count", "mean"])
    return grouped.reset_index()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_bundle(bundle: ModelBundle, path: Path | str = DEFAULT_MODEL_PATH) -> Path:
    """Write ``bundle`` to ``path`` atomically: a crash mid-save leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "metadata": asdict(bundle.metadata),
        "model": bundle.model,
        "movies": bundle.movies,
        "rating_stats": bundle.rating_stats,
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            joblib.dump(payload, fh, compress=3)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    log.info("Saved model to %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def staging_path(path: Path | str, tag: str) -> Path:
    """Return where a refit saves a model before it is put in place at ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}.tmp")


def remove_stale_temp_files(path: Path | str = DEFAULT_MODEL_PATH) -> int:
    """Delete temp and staging files a killed save or refit left beside ``path``; return how many.

    Call it only when no save can be running (at start-up, holding the refit lease).
    """
    path = Path(path)
    removed = 0
    stale_files = [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f"..{path.name}.*")]
    for stale in stale_files:
        with contextlib.suppress(OSError):
            stale.unlink()
            removed += 1
    return removed


def load_bundle(path: Path | str = DEFAULT_MODEL_PATH) -> ModelBundle:
    """Load a model saved by :func:`save_bundle`.

    Raises
    ------
    ModelNotFoundError
        No file at ``path``.
    CorruptModelError
        The file is truncated, damaged, or not a model file.
    IncompatibleModelError
        The file's format version is not this project's.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"No saved model at {path}; fit one with `moviebot train`.")
    try:
        payload = joblib.load(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean "refit"
        raise CorruptModelError(
            f"The model file {path} is damaged ({type(exc).__name__}); fit a new one."
        ) from exc
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CorruptModelError(f"{path} is not a moviebot model file; fit a new one.")
    if payload["format_version"] != FORMAT_VERSION:
        raise IncompatibleModelError(
            f"{path} has model format {payload['format_version']}, this version reads "
            f"{FORMAT_VERSION}; fit a new one."
        )
    try:
        model = payload["model"]
        if not isinstance(model, NMFRecommender) or not hasattr(model, "components_"):
            raise CorruptModelError(f"{path} holds no fitted recommender; fit a new one.")
        return ModelBundle(
            model=model,
            movies=payload["movies"],
            rating_stats=payload["rating_stats"],
            metadata=ModelMetadata(**payload["metadata"]),
        )
    except (KeyError, TypeError) as exc:
        raise IncompatibleModelError(
            f"{path} is missing model fields ({exc}); fit a new one."
        ) from exc
