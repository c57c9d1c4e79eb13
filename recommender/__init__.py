"""Movie recommendations from MovieLens plus your own ratings, with no Discord required.

>>> from recommender import load_dataset, fit_bundle
>>> bundle = fit_bundle(load_dataset("ml-latest-small"))      # doctest: +SKIP
>>> heat = bundle.catalog.resolve("heat").movie                 # doctest: +SKIP
>>> bundle.model.recommend({heat.movie_id: 4.5}, n=5)           # doctest: +SKIP
"""

from recommender.base import Picks, Recommendation, Recommender
from recommender.catalog import Catalog, Match, Movie, Resolution, fold, natural_order
from recommender.data import (
    KNOWN_DATASETS,
    ChecksumError,
    DataError,
    Dataset,
    MalformedDataError,
    fetch_dataset,
    load_dataset,
    resolve_source,
)
from recommender.model import Explanation, NMFRecommender, single_threaded_blas
from recommender.persistence import (
    CorruptModelError,
    IncompatibleModelError,
    ModelBundle,
    ModelFileError,
    ModelMetadata,
    ModelNotFoundError,
    load_bundle,
    save_bundle,
)
from recommender.training import fit_bundle

__all__ = [
    "KNOWN_DATASETS",
    "Catalog",
    "ChecksumError",
    "CorruptModelError",
    "DataError",
    "Dataset",
    "Explanation",
    "IncompatibleModelError",
    "MalformedDataError",
    "Match",
    "ModelBundle",
    "ModelFileError",
    "ModelMetadata",
    "ModelNotFoundError",
    "Movie",
    "NMFRecommender",
    "Picks",
    "Recommendation",
    "Recommender",
    "Resolution",
    "fetch_dataset",
    "fit_bundle",
    "fold",
    "load_bundle",
    "load_dataset",
    "natural_order",
    "resolve_source",
    "save_bundle",
    "single_threaded_blas",
]
