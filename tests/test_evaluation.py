from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender import load_dataset
from recommender.baselines import ItemKNNRecommender, PopularityRecommender, PureSVDRecommender
from recommender.evaluation import (
    case_measures,
    evaluate,
    metrics_at,
    new_user_folds,
    per_user_folds,
    popularity_ranks,
)
from recommender.model import NMFRecommender
from recommender.report import build_report
from tests.helpers import write_tiny_csv


def test_metrics_match_hand_computed_values() -> None:
    recommended = np.array([10, 20, 30, 40])
    relevant = frozenset({20, 40, 99})
    m = metrics_at(recommended, relevant, 4)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx(dcg / idcg)
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    perfect = metrics_at(np.array([20, 40, 99, 1]), relevant, 4)
    assert perfect["ndcg"] == pytest.approx(1.0)


def test_new_user_folds_hold_users_out_entirely(tmp_path: Path) -> None:
    ratings = load_dataset(write_tiny_csv(tmp_path), progress=False).ratings
    folds = list(new_user_folds(ratings, n_folds=4, reveal=(1, 3), seed=0))
    assert len(folds) == 4
    seen: set[int] = set()
    for fold in folds:
        test_users = {c.user_id for cases in fold.cases.values() for c in cases}
        assert test_users.isdisjoint(set(fold.train["user_id"]))
        seen |= test_users
        for case in fold.cases["k=3"]:
            assert len(case.known) == 3
            assert not set(case.known) & case.relevant
    assert len(seen) > 12


def test_per_user_folds_split_each_users_ratings(tmp_path: Path) -> None:
    ratings = load_dataset(write_tiny_csv(tmp_path), progress=False).ratings
    fold = next(per_user_folds(ratings, n_folds=3, seed=0))
    for case in fold.cases["per-user"]:
        train_movies = set(fold.train.loc[fold.train["user_id"] == case.user_id, "movie_id"])
        assert set(case.known) == train_movies
        assert not case.relevant & train_movies


def test_every_model_is_measured_on_the_same_cases(tmp_path: Path) -> None:
    ratings = load_dataset(write_tiny_csv(tmp_path), progress=False).ratings
    folds = list(new_user_folds(ratings, n_folds=3, reveal=(2,), seed=1))
    results = evaluate(
        {
            "popular": lambda: PopularityRecommender(),
            "svd": lambda: PureSVDRecommender(3),
            "knn": lambda: ItemKNNRecommender(5),
            "nmf": lambda: NMFRecommender(n_components=3, max_iter=50),
        },
        folds,
        n=3,
    )
    assert {r.model for r in results} == {"popular", "svd", "knn", "nmf"}
    assert len({r.users for r in results}) == 1
    for r in results:
        assert 0 <= r.ndcg <= 1
        assert 0 <= r.coverage <= 1
    nmf = next(r for r in results if r.model == "nmf")
    popular = next(r for r in results if r.model == "popular")
    assert nmf.ndcg > popular.ndcg  # two clean taste groups: personal beats popular


def test_standard_errors_and_popularity_rank_come_from_the_per_user_values(tmp_path: Path) -> None:
    ratings = load_dataset(write_tiny_csv(tmp_path), progress=False).ratings
    fold = next(new_user_folds(ratings, n_folds=3, reveal=(2,), seed=1))
    cases = fold.cases["k=2"]
    models = {
        "popular": lambda: PopularityRecommender(),
        "nmf": lambda: NMFRecommender(n_components=3, max_iter=50),
    }
    results = {r.model: r for r in evaluate(models, [fold], n=3)}
    for name, factory in models.items():
        per_user = case_measures(factory().fit(fold.train), cases, n=3)
        assert results[name].ndcg == pytest.approx(per_user["ndcg"].mean())
        se = per_user["ndcg"].std(ddof=1) / np.sqrt(len(cases))
        assert results[name].ndcg_se == pytest.approx(se)
        assert results[name].popularity_rank == pytest.approx(per_user["popularity_rank"].mean())
    assert results["popular"].popularity_rank < results["nmf"].popularity_rank
    assert 1 <= results["popular"].popularity_rank <= 5  # top 3 of what the user has not rated


def test_popularity_rank_one_is_the_most_rated_movie() -> None:
    ratings = pd.DataFrame(
        {"user_id": [1, 2, 3, 1, 2, 1], "movie_id": [7, 7, 7, 9, 9, 5], "rating": 4.0}
    )
    model = PopularityRecommender().fit(ratings)
    assert dict(zip(model.item_ids_.tolist(), popularity_ranks(model).tolist(), strict=True)) == {
        7: 1.0,
        9: 2.0,
        5: 3.0,
    }


def test_report_writes_html_with_embedded_charts(tmp_path: Path) -> None:
    data = load_dataset(write_tiny_csv(tmp_path), progress=False)
    model = NMFRecommender(n_components=3, max_iter=50).fit(data.ratings)
    from recommender import Catalog

    chat = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [1, 9, 1], "rating": [4.5, 3.0, 5.0]})
    evaluation = {
        "results": [
            {
                "model": "nmf",
                "scenario": "k=1",
                "users": 3,
                "precision": 0.1,
                "recall": 0.2,
                "ndcg": 0.3,
                "map": 0.1,
                "coverage": 0.5,
            }
        ]
    }
    path = build_report(
        tmp_path / "report",
        data.movies,
        data.ratings,
        dataset_name=data.name,
        chat=chat,
        model=model,
        catalog=Catalog(data.movies, data.ratings),
        evaluation=evaluation,
    )
    html = path.read_text()
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    assert pngs == [
        "community.png",
        "evaluation.png",
        "factor-map.png",
        "genres.png",
        "long-tail.png",
        "over-time.png",
        "ratings.png",
    ]
    assert html.count("data:image/png;base64,") == len(pngs)
    assert "3 by 2 members" in html
    for png in path.parent.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_scores_exactly_the_list_recommend_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recommender.evaluation as evaluation

    data = load_dataset(write_tiny_csv(tmp_path), progress=False)
    folds = list(new_user_folds(data.ratings, 3, (1, 3), seed=1, max_folds=1))
    scored: list[tuple[dict[int, float], list[int]]] = []
    real = evaluation.metrics_at

    def spy(recommended: np.ndarray, relevant: frozenset[int], n: int) -> dict[str, float]:
        scored.append((current.pop(0), recommended.tolist()))
        return real(recommended, relevant, n)

    current = [case.known for cases in folds[0].cases.values() for case in cases]
    monkeypatch.setattr(evaluation, "metrics_at", spy)
    evaluate({"nmf": lambda: NMFRecommender(n_components=3, max_iter=60)}, folds, n=5)
    served = NMFRecommender(n_components=3, max_iter=60).fit(folds[0].train)
    assert scored
    for known, listed in scored:
        assert listed == list(served.recommend(known, 5).movie_ids)
