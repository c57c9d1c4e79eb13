from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import NMF

from recommender import Catalog
from recommender.base import NotFittedError
from recommender.model import WARM_STEP, NMFRecommender, build_matrix

N_USERS, N_ITEMS, BLOCK = 40, 20, 10


def checkerboard() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users 0-19 rate items 0-9 and users 20-39 items 10-19, each leaving a few unrated.

    The right answer is known: a user who likes an item of a block should be offered the rest
    of that block before anything from the other block.
    """
    rng = np.random.default_rng(0)
    rows = []
    for user in range(N_USERS):
        block = range(0, BLOCK) if user < N_USERS // 2 else range(BLOCK, N_ITEMS)
        for item in block:
            if rng.random() < 0.7:
                rows.append((user, item + 100, float(rng.choice([4.0, 4.5, 5.0]))))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    genres = [("Action",) if i < BLOCK else ("Romance",) for i in range(N_ITEMS)]
    movies = pd.DataFrame(
        {
            "movie_id": np.arange(N_ITEMS) + 100,
            "title": [f"Movie {i} ({1980 + i})" for i in range(N_ITEMS)],
            "year": pd.array([1980 + i for i in range(N_ITEMS)], dtype="Int64"),
            "genres": genres,
        }
    )
    return ratings, movies


@pytest.fixture(scope="module")
def board() -> NMFRecommender:
    ratings, _ = checkerboard()
    return NMFRecommender(n_components=2, alpha=0.0, max_iter=300, blend_below=1).fit(ratings)


@pytest.fixture(scope="module")
def board_catalog() -> Catalog:
    ratings, movies = checkerboard()
    return Catalog(movies, ratings)


def block_of(movie_id: int) -> int:
    return 0 if movie_id - 100 < BLOCK else 1


def test_a_liked_movie_brings_the_rest_of_its_block_first(board: NMFRecommender) -> None:
    recs = board.recommend({100: 5.0, 101: 4.5}, n=8)
    assert [block_of(r.movie_id) for r in recs] == [0] * 8
    recs = board.recommend({115: 5.0}, n=9)
    assert [block_of(r.movie_id) for r in recs] == [1] * 9


def test_rated_and_excluded_movies_are_never_recommended(board: NMFRecommender) -> None:
    rated = {100: 5.0, 101: 4.0, 102: 4.5}
    recs = board.recommend(rated, n=N_ITEMS, exclude=[103])
    ids = {r.movie_id for r in recs}
    assert ids.isdisjoint({100, 101, 102, 103})
    assert len(ids) == N_ITEMS - 4


def test_unknown_movie_ids_are_ignored(board: NMFRecommender) -> None:
    with_unknown = board.recommend({100: 5.0, 999_999: 5.0}, n=5)
    without = board.recommend({100: 5.0}, n=5)
    assert [r.movie_id for r in with_unknown] == [r.movie_id for r in without]
    assert board.recommend({999_999: 4.0}, n=3) == board.popular(3)


def test_no_ratings_gives_the_damped_popularity_ranking(board: NMFRecommender) -> None:
    recs = board.recommend({}, n=N_ITEMS)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    assert recs == board.popular(N_ITEMS)


def test_damped_mean_does_not_favour_a_single_five_star_rating() -> None:
    ratings = pd.DataFrame(
        [(u, 1, 4.5) for u in range(30)]
        + [(u, 1, 4.0) for u in range(30, 50)]
        + [(u, 3, 2.0) for u in range(50)]
        + [(0, 2, 5.0)],
        columns=["user_id", "movie_id", "rating"],
    )
    model = NMFRecommender(n_components=1, damping=10).fit(ratings)
    assert [r.movie_id for r in model.popular(3)] == [1, 2, 3]


def test_a_new_rating_changes_the_next_recommendations(board: NMFRecommender) -> None:
    before = board.recommend({100: 5.0}, n=3)
    after = board.recommend({100: 5.0, 110: 5.0, 111: 5.0, 112: 5.0}, n=3)
    assert [block_of(r.movie_id) for r in before] == [0, 0, 0]
    assert any(block_of(r.movie_id) == 1 for r in after)


def dense_row(ids: np.ndarray, user: dict[int, float]) -> np.ndarray:
    """Return a user's ratings as one dense row over the model's movie columns."""
    row = np.zeros((1, len(ids)))
    for movie, stars in user.items():
        row[0, np.searchsorted(ids, movie)] = stars
    return row


def test_fold_in_matches_sklearn_transform(board: NMFRecommender) -> None:
    ratings, _ = checkerboard()
    matrix, ids = build_matrix(ratings)
    nmf = NMF(
        n_components=2, init="nndsvda", solver="mu", alpha_W=0.0, max_iter=300, random_state=0
    ).fit(matrix.astype(np.float64))
    assert np.allclose(nmf.components_, board.components_)
    user = {100: 5.0, 103: 4.0, 107: 2.5}
    expected = nmf.transform(dense_row(ids, user))[0]
    got = board.fold_in(user)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-6


@pytest.mark.movielens
def test_fold_in_matches_sklearn_transform_on_movielens(fitted: NMFRecommender, movielens) -> None:
    _matrix, ids = build_matrix(movielens.ratings)
    nmf = NMF(
        n_components=fitted.n_components,
        init="nndsvda",
        solver="mu",
        alpha_W=fitted.alpha,
        max_iter=fitted.max_iter,
        random_state=0,
    )
    nmf.components_ = fitted.components_
    nmf.n_components_ = fitted.components_.shape[0]
    nmf.n_features_in_ = len(ids)
    user = {318: 5.0, 6: 4.5, 2571: 4.0, 1: 2.0, 260: 5.0}
    expected = nmf.transform(dense_row(ids, user))[0]
    got = fitted.fold_in(user)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-6


def test_one_rating_blends_toward_popularity() -> None:
    ratings, _movies = checkerboard()
    model = NMFRecommender(n_components=2, alpha=0.0, max_iter=300, blend_below=3).fit(ratings)
    one = model.score_items({100: 5.0})
    three = model.score_items({100: 5.0, 101: 5.0, 102: 5.0})
    popular = model.popularity_
    # With one rating the scores lean on popularity; with three, on the model alone.
    assert np.corrcoef(one, popular)[0, 1] > np.corrcoef(three, popular)[0, 1]
    assert one.min() >= 0.0
    assert one.max() <= 1.0


def test_genre_and_year_filters_come_from_the_catalog(
    board: NMFRecommender, board_catalog: Catalog
) -> None:
    romance = board_catalog.allowed(board.item_ids_, genres=["romance"])
    recs = board.recommend({100: 5.0}, n=5, allowed=romance)
    assert len(recs) == 5
    assert all(block_of(r.movie_id) == 1 for r in recs)
    eighties = board_catalog.allowed(board.item_ids_, years=(1985, 1989))
    recs = board.recommend({}, n=N_ITEMS, allowed=eighties)
    assert sorted(recs.movie_ids) == [105, 106, 107, 108, 109]
    western = board_catalog.allowed(board.item_ids_, genres=["Western"])
    assert len(board.recommend({}, n=5, allowed=western)) == 0
    assert board_catalog.allowed(board.item_ids_) is None


def test_picks_say_how_many_ratings_were_used(board: NMFRecommender) -> None:
    assert board.recommend({100: 5.0, 101: 4.0, 999_999: 5.0}, n=3).n_used == 2
    assert board.recommend({}, n=3).n_used == 0


def test_similar_movies_come_from_the_same_block(board: NMFRecommender) -> None:
    similar = board.similar(100, n=5, min_ratings=1)
    assert len(similar) == 5
    assert all(block_of(r.movie_id) == 0 for r in similar)
    assert 100 not in {r.movie_id for r in similar}
    assert len(board.similar(42, n=5)) == 0


def test_explain_names_the_rated_movie_that_drove_a_pick(board: NMFRecommender) -> None:
    user = {100: 5.0, 115: 1.0}
    pick = board.recommend(user, n=1)[0]
    explanation = board.explain(user, pick.movie_id)
    assert explanation.because
    assert explanation.because[0][0] == 100


def test_group_recommendations_exclude_what_anyone_rated(board: NMFRecommender) -> None:
    members = [{100: 5.0, 101: 5.0}, {102: 4.5, 103: 5.0}]
    recs = board.recommend_group(members, n=5)
    assert len(recs) == 5
    assert {r.movie_id for r in recs}.isdisjoint({100, 101, 102, 103})
    assert all(block_of(r.movie_id) == 0 for r in recs)


def test_chat_users_never_collide_with_movielens_users() -> None:
    movielens = pd.DataFrame({"user_id": [1, 1], "movie_id": [10, 11], "rating": [4.0, 3.0]})
    chat = pd.DataFrame({"user_id": [1], "movie_id": [12], "rating": [5.0]})
    matrix, ids = build_matrix(movielens, chat)
    assert matrix.shape == (2, 3)
    assert ids.tolist() == [10, 11, 12]
    assert matrix.toarray().tolist() == [[4.0, 3.0, 0.0], [0.0, 0.0, 5.0]]


def test_unfitted_and_empty_input_give_clear_errors() -> None:
    with pytest.raises(NotFittedError):
        NMFRecommender().recommend({1: 4.0})
    with pytest.raises(ValueError, match="no ratings"):
        NMFRecommender().fit(pd.DataFrame(columns=["user_id", "movie_id", "rating"]))


@pytest.mark.movielens
def test_float32_scoring_ranks_like_float64(fitted: NMFRecommender, movielens) -> None:
    rng = np.random.default_rng(3)
    users = movielens.ratings["user_id"].unique()
    for user in rng.choice(users, 20, replace=False):
        frame = movielens.ratings.loc[movielens.ratings["user_id"] == user]
        ratings = dict(zip(frame["movie_id"].tolist(), frame["rating"].astype(float), strict=True))
        exact = fitted.fold_in(ratings) @ fitted.components_
        exact[fitted.columns(ratings)] = -np.inf
        expected = fitted.item_ids_[np.argsort(-exact, kind="stable")[:10]]
        got = [r.movie_id for r in fitted.recommend(ratings, 10)]
        assert got == expected.tolist(), (user, got, expected)


def test_a_warm_refit_starts_from_the_previous_factors_and_learns_new_movies() -> None:
    ratings, _ = checkerboard()
    previous = NMFRecommender(n_components=2, alpha=0.0, max_iter=300, blend_below=1).fit(
        ratings.loc[ratings["movie_id"] != 119]
    )
    refit = NMFRecommender(n_components=2, alpha=0.0, max_iter=300, warm_iter=40, blend_below=1)
    refit.fit(ratings, previous=previous)
    assert refit.warm_started_
    assert refit.n_iter_ <= 40
    assert 119 in refit.item_ids_
    assert refit.reconstruction_err_ <= previous.reconstruction_err_ * 1.5
    picks = refit.recommend({115: 5.0, 116: 4.5}, n=8)
    assert 119 in picks.movie_ids  # the new movie joined its block
    assert [block_of(m) for m in picks.movie_ids] == [1] * 8


def test_a_warm_refit_never_runs_more_iterations_than_a_cold_fit_may() -> None:
    ratings, _ = checkerboard()
    previous = NMFRecommender(n_components=2, max_iter=50).fit(ratings)
    refit = NMFRecommender(n_components=2, max_iter=3, warm_iter=10, tol=0.0)
    refit.fit(ratings, previous=previous)
    assert refit.warm_started_
    assert refit.n_iter_ == 3  # MODEL_MAX_ITER caps the warm refit too


def test_a_warm_refit_stops_once_its_iterations_barely_improve_the_fit() -> None:
    ratings, _ = checkerboard()
    settled = NMFRecommender(n_components=2, max_iter=400, tol=0.0).fit(ratings)
    refit = NMFRecommender(n_components=2, max_iter=400, warm_iter=40)
    refit.fit(ratings, previous=settled)
    assert refit.n_iter_ == 1 + WARM_STEP  # the first check finds nothing left to gain
    assert refit.reconstruction_err_ <= settled.reconstruction_err_ * 1.001
    rough = NMFRecommender(n_components=2, max_iter=2, tol=0.0).fit(ratings)
    further = NMFRecommender(n_components=2, max_iter=400, warm_iter=40).fit(
        ratings, previous=rough
    )
    assert further.n_iter_ > 1 + WARM_STEP  # far from the optimum, it keeps going
    assert further.reconstruction_err_ < rough.reconstruction_err_


def test_a_stronger_fold_in_regularization_changes_scoring_only() -> None:
    ratings, _ = checkerboard()
    plain = NMFRecommender(n_components=2, max_iter=100).fit(ratings)
    strong = NMFRecommender(n_components=2, max_iter=100, fold_in_reg=30.0).fit(ratings)
    assert np.array_equal(plain.components_, strong.components_)  # the same fit
    member = {100: 5.0, 101: 4.5}
    shrunk, free = strong.fold_in(member), plain.fold_in(member)
    assert 0 < np.linalg.norm(shrunk) < np.linalg.norm(free)
    assert [block_of(m) for m in strong.recommend(member, n=5).movie_ids] == [0] * 5
    plain.set_params(fold_in_reg=30.0)  # takes effect on a fitted model at once
    assert np.array_equal(plain.fold_in(member), shrunk)
    plain.set_params(fold_in_reg=1.0)
    # a model saved before the setting existed loads with the old behaviour
    state = plain.__getstate__()
    del state["fold_in_reg"]
    old = NMFRecommender.__new__(NMFRecommender)
    old.__setstate__(state)
    assert old.get_params()["fold_in_reg"] == 1.0
    assert np.array_equal(old.fold_in(member), free)


def test_warm_start_keeps_known_factors_and_folds_users_in() -> None:
    ratings, _ = checkerboard()
    previous = NMFRecommender(n_components=2, max_iter=100).fit(ratings)
    matrix, movie_ids = build_matrix(ratings)
    w, h = NMFRecommender(n_components=2).warm_start(matrix, movie_ids, previous)
    assert np.array_equal(h, previous.components_)
    assert w.shape == (matrix.shape[0], 2)
    assert (w >= 0).all()
    assert np.allclose(w[0], previous.fold_in(dict(zip(*_row(ratings, 0), strict=True))), rtol=0.2)


def test_warm_start_reuses_saved_movielens_users_and_folds_in_the_rest() -> None:
    ratings, _ = checkerboard()
    old_users = ratings.loc[ratings["user_id"] % 4 != 0]  # every fourth user is new since
    previous = NMFRecommender(n_components=2, max_iter=100).fit(old_users)
    assert previous.user_factors_.dtype == np.float32
    assert previous.user_factors_.shape == (old_users["user_id"].nunique(), 2)
    chat = pd.DataFrame({"user_id": [7], "movie_id": [101], "rating": [5.0]})
    matrix, movie_ids = build_matrix(ratings, chat)
    user_ids = pd.unique(ratings["user_id"])
    w, _ = NMFRecommender(n_components=2).warm_start(matrix, movie_ids, previous, user_ids)
    for row, user in enumerate(user_ids):
        if user % 4:  # saved: the previous model's row, exactly
            saved = previous.user_factors_[list(previous.user_ids_).index(user)]
            assert np.array_equal(w[row], saved.astype(np.float64))
        else:  # new: folded in against the movie factors
            expected = previous.fold_in(dict(zip(*_row(ratings, user), strict=True)))
            assert np.allclose(w[row], expected, rtol=0.2), user
    # damaged saved factors are not trusted: everyone is folded in, and the refit stays sound
    for damage in (np.nan, np.inf, -1.0):
        broken = NMFRecommender(n_components=2, max_iter=100).fit(old_users)
        broken.user_factors_[3, 0] = damage
        w_broken, _ = NMFRecommender(n_components=2).warm_start(matrix, movie_ids, broken, user_ids)
        assert np.isfinite(w_broken).all()
        assert (w_broken >= 0).all()
        refit = NMFRecommender(n_components=2, max_iter=100).fit(ratings, previous=broken)
        assert refit.warm_started_
        assert np.isfinite(refit.components_).all()
    # the chat member (same id as MovieLens user 7) is folded in, not given user 7's factors
    assert not np.array_equal(w[-1], w[list(user_ids).index(7)])
    assert np.allclose(w[-1], previous.fold_in({101: 5.0}), rtol=0.2)


def test_a_refit_with_other_hyperparameters_starts_cold() -> None:
    ratings, _ = checkerboard()
    previous = NMFRecommender(n_components=2, max_iter=50).fit(ratings)
    assert (
        not NMFRecommender(n_components=3, max_iter=50)
        .fit(ratings, previous=previous)
        .warm_started_
    )
    other_alpha = NMFRecommender(n_components=2, alpha=0.1, max_iter=50)
    assert not other_alpha.fit(ratings, previous=previous).warm_started_


def _row(ratings: pd.DataFrame, user: int) -> tuple[list[int], list[float]]:
    mine = ratings.loc[ratings["user_id"] == user]
    return mine["movie_id"].tolist(), mine["rating"].astype(float).tolist()


def test_discover_trades_blockbusters_for_less_rated_movies() -> None:
    from recommender.base import discovery_scores

    scores = np.array([1.0, 0.9, 0.8, -np.inf])
    counts = np.array([1000, 10, 1, 5])
    assert np.array_equal(discovery_scores(scores, counts, 0.0), scores)
    pushed = discovery_scores(scores, counts, 1.0)
    assert np.argmax(pushed) == 1  # the blockbuster loses its lead
    assert pushed[3] == -np.inf  # what was never allowed stays out
    ranking = np.argsort(-discovery_scores(scores, counts, 10.0))[:3]
    assert ranking.tolist() == [2, 1, 0]  # a huge strength ranks by rarity
