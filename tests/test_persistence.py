from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from recommender import (
    CorruptModelError,
    IncompatibleModelError,
    ModelNotFoundError,
    fit_bundle,
    load_bundle,
    load_dataset,
    save_bundle,
)
from recommender.persistence import ModelBundle
from tests.helpers import write_tiny_csv


@pytest.fixture
def bundle(tmp_path: Path) -> ModelBundle:
    dataset = load_dataset(write_tiny_csv(tmp_path), progress=False)
    return fit_bundle(dataset, n_components=3, max_iter=50)


def test_round_trip_gives_equal_scores_and_metadata(bundle: ModelBundle, tmp_path: Path) -> None:
    path = save_bundle(bundle, tmp_path / "models" / "model.joblib")
    loaded = load_bundle(path)
    user = {1: 5.0, 7: 2.0}
    assert np.array_equal(loaded.model.score_items(user), bundle.model.score_items(user))
    assert loaded.model.recommend(user, 5) == bundle.model.recommend(user, 5)
    assert loaded.metadata == bundle.metadata
    assert loaded.metadata.versions["scikit-learn"]
    assert loaded.catalog.resolve("heat").movie.label == "Heat (1995)"  # type: ignore[union-attr]
    assert [p.name for p in path.parent.iterdir()] == ["model.joblib"]  # no temp files left


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="moviebot train"):
        load_bundle(tmp_path / "none.joblib")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_model_file_is_a_clear_error(
    bundle: ModelBundle, tmp_path: Path, damage: str
) -> None:
    path = save_bundle(bundle, tmp_path / "model.joblib")
    data = path.read_bytes()
    path.write_bytes(
        {"garbage": b"\x00not a pickle" * 50, "truncated": data[: len(data) // 2], "empty": b""}[
            damage
        ]
    )
    with pytest.raises(CorruptModelError, match="fit a new one"):
        load_bundle(path)


def test_other_pickles_and_versions_are_refused(tmp_path: Path, bundle: ModelBundle) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump([1, 2, 3], path)
    with pytest.raises(CorruptModelError, match="not a moviebot model"):
        load_bundle(path)
    save_bundle(bundle, path)
    payload = joblib.load(path)
    payload["format_version"] = 999
    joblib.dump(payload, path)
    with pytest.raises(IncompatibleModelError, match="format 999"):
        load_bundle(path)


def test_a_crash_mid_save_leaves_the_old_model(
    bundle: ModelBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_bundle(bundle, tmp_path / "model.joblib")
    before = path.read_bytes()

    def crash(obj: object, fh: object, **kwargs: object) -> None:
        fh.write(b"half a model")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(bundle, path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".model.joblib.*"))


def test_a_model_file_from_before_the_format_change_is_recognised(tmp_path: Path) -> None:
    # Written by the format-1 code (models with genre tables inside, a chat fingerprint).
    old = Path(__file__).parent / "data" / "model-format-1.joblib"
    with pytest.raises(IncompatibleModelError, match="format 1, this version reads 2"):
        load_bundle(old)
