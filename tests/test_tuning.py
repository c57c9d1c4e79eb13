from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender import fit_bundle, load_dataset
from recommender.tuning import (
    FOLD_IN_REGS,
    TunedNMFRecommender,
    Tuning,
    sample_users,
    split_for_tuning,
    tune_nmf,
    tuning_key,
)
from tests.helpers import write_tiny_csv
from tests.test_model import checkerboard

START = {"n_components": 3, "alpha": 0.01, "max_iter": 60}


def test_tuning_users_never_see_their_targets() -> None:
    ratings = checkerboard()[0]
    split = split_for_tuning(ratings, share=0.3, seed=1)
    assert split.new_cases
    assert split.warm_cases
    assert set(split.new_cases).isdisjoint(set(split.train["user_id"]))
    for case in split.warm_cases:
        trained = set(split.train.loc[split.train["user_id"] == case.user_id, "movie_id"])
        assert trained == set(case.known)
        assert not case.relevant & trained
    assert {c.user_id for c in split.warm_cases}.isdisjoint(split.new_cases)


def test_tuning_picks_a_measured_point_and_reports_its_standard_errors() -> None:
    tuning = tune_nmf(checkerboard()[0], START, fingerprint="abc")
    points = {(s.n_components, s.alpha, s.blend_below) for s in tuning.grid}
    fits = {(k, alpha) for k, alpha, _ in points}
    chosen = (tuning.params["n_components"], tuning.params["alpha"], tuning.params["blend_below"])
    assert chosen in points
    assert len(fits) in {5, 7}  # three alphas, two sizes, and two finer alphas if it moved
    assert len(fits) == 5 or chosen[1] != 0.01
    assert {b for k, alpha, b in points if (k, alpha) == chosen[:2]} == {2, 3, 4, 5, 6, 8}
    regs = {s.fold_in_reg for s in tuning.grid}
    assert {0.3, 1.0, 3.0} <= regs <= set(FOLD_IN_REGS)  # the ladder around the start's 1
    assert tuning.params["fold_in_reg"] == tuning.score.fold_in_reg
    assert tuning.params["max_iter"] == 60  # what is not tuned is kept
    assert tuning.score.diff_se == 0
    assert all(s.score_se >= 0 and s.new_member_se >= 0 for s in tuning.grid)
    assert tuning.new_members >= 1
    assert tuning.warm_members >= 1
    assert tuning.seconds > 0
    # the winner beat the start by the margin, or the start was kept
    start = next(
        s
        for s in tuning.grid
        if (s.n_components, s.alpha, s.blend_below, s.fold_in_reg) == (3, 0.01, 3, 1.0)
    )
    # every move beat the point it left, so the choice is the start or scores above it
    assert tuning.score == start or tuning.score.score > start.score


def test_tuning_round_trips_through_metadata_json_and_keys_are_stable() -> None:
    tuning = tune_nmf(checkerboard()[0], START, fingerprint="abc")
    again = Tuning.from_dict(json.loads(json.dumps(tuning.as_dict())))
    assert again == tuning
    assert tuning.key == tuning_key("abc", START)
    assert tuning_key("abc", START) != tuning_key("abd", START)
    assert tuning_key("abc", START) != tuning_key("abc", {**START, "alpha": 0.02})


def test_fit_bundle_tunes_on_training_users_and_reuses_a_cached_choice(tmp_path: Path) -> None:
    data = load_dataset(write_tiny_csv(tmp_path), progress=False)
    bundle = fit_bundle(data, holdout=0.2, tune=True, **START)
    tuning = Tuning.from_dict(bundle.metadata.tuning)
    assert bundle.metadata.params["n_components"] == tuning.params["n_components"]
    assert bundle.metadata.params["alpha"] == tuning.params["alpha"]
    assert tuning.key == tuning_key(data.fingerprint, START)
    cached = fit_bundle(data, holdout=0.2, tune=True, previous_tuning=tuning, **START)
    assert Tuning.from_dict(cached.metadata.tuning) == tuning  # reused, not re-run
    assert fit_bundle(data, holdout=0.2, **START).metadata.tuning == {}
    pinned = fit_bundle(data, holdout=0.2, tune=True, **START, fold_in_reg=30.0)
    assert pinned.metadata.params["fold_in_reg"] == 30.0  # MODEL_FOLD_IN_REG=30 is kept
    assert {s["fold_in_reg"] for s in pinned.metadata.tuning["grid"]} == {30.0}


def test_large_data_is_tuned_on_a_sample_of_whole_users() -> None:
    ratings = checkerboard()[0]
    sample = sample_users(ratings, max_ratings=len(ratings) // 2, seed=3)
    assert 0 < len(sample) <= len(ratings) // 2
    kept = set(sample["user_id"])
    # whole users: everyone drawn keeps every rating, and both blocks are represented
    assert len(sample) == ratings["user_id"].isin(kept).sum()
    assert {u < 20 for u in kept} == {True, False}
    assert sample_users(ratings, max_ratings=len(ratings)) is ratings
    tuning = tune_nmf(ratings, START, max_ratings=len(ratings) // 2, fingerprint="abc")
    tuned_on = sample_users(ratings, len(ratings) // 2, seed=0)
    assert tuning.ratings == len(tuned_on) < len(ratings)
    assert tuning.new_members + tuning.warm_members <= round(tuned_on["user_id"].nunique() / 4)
    assert tuning.key != tuning_key("abc", START)  # a different protocol, a different cache key
    assert tune_nmf(ratings, START).ratings == 0  # all of it: no sample to speak of


def test_pinned_scoring_settings_are_kept_while_the_rest_is_tuned() -> None:
    ratings = checkerboard()[0]
    start = {**START, "blend_below": 5, "fold_in_reg": 10.0}
    both = tune_nmf(ratings, start, fixed=("blend_below", "fold_in_reg"))
    assert (both.params["blend_below"], both.params["fold_in_reg"]) == (5, 10.0)
    assert {(s.blend_below, s.fold_in_reg) for s in both.grid} == {(5, 10.0)}
    blend_only = tune_nmf(ratings, start, fixed=("blend_below",))
    assert {s.blend_below for s in blend_only.grid} == {5}
    # fold_in_reg was still tuned: the rungs either side of the start were measured
    assert {3.0, 10.0, 30.0} <= {s.fold_in_reg for s in blend_only.grid}
    assert blend_only.params["fold_in_reg"] in FOLD_IN_REGS


def test_too_few_users_to_tune_on_is_an_error() -> None:
    ratings = checkerboard()[0]
    with pytest.raises(ValueError, match="Too few users"):
        tune_nmf(ratings.loc[ratings["user_id"] < 2], START)


def test_tuned_recommender_serves_the_tuned_model() -> None:
    model = TunedNMFRecommender(start=START).fit(checkerboard()[0])
    assert model.model_.get_params()["alpha"] == model.tuning_.params["alpha"]
    assert model.recommend({100: 5.0}, n=3) == model.model_.recommend({100: 5.0}, n=3)
