"""Recommend latency with fold-in: ours (cached H·Hᵀ) against scikit-learn's NMF.transform.

Runs at the real ml-latest-small size and at synthetic 10k, 60k and 87k movies (k=100 factors,
as in production), with BLAS limited to one thread as the bot does on its request path, and
once with the default threads for comparison. Also times scoring every user in a batch.

    uv run python benchmarks/bench_recommend.py [--repeat 300]
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
from sklearn.decomposition import NMF
from threadpoolctl import threadpool_limits

from benchmarks._common import machine, movielens_source, ms, table, timings
from recommender import NMFRecommender, load_dataset


def synthetic_model(n_items: int, k: int = 100, seed: int = 0) -> NMFRecommender:
    """Return a recommender with random non-negative factors for ``n_items`` movies."""
    rng = np.random.default_rng(seed)
    model = NMFRecommender(n_components=k)
    model.components_ = rng.gamma(0.3, 0.2, size=(k, n_items))
    model.item_ids_ = np.arange(1, n_items + 1, dtype=np.int64)
    model.item_counts_ = rng.zipf(1.6, n_items).clip(1, 50_000)
    model.popularity_ = rng.uniform(0.5, 5.0, n_items)
    model.n_users_ = 1
    model._prepare()
    return model


def sklearn_twin(model: NMFRecommender) -> NMF:
    """Return a fitted-looking sklearn NMF with the same factors, to time NMF.transform."""
    nmf = NMF(
        n_components=model.components_.shape[0],
        init="nndsvda",
        solver="mu",
        alpha_W=model.alpha,
        max_iter=model.max_iter,
        tol=model.tol,
    )
    nmf.components_ = model.components_
    nmf.n_components_ = model.components_.shape[0]
    nmf.n_features_in_ = model.components_.shape[1]
    nmf._n_components = nmf.n_components_
    return nmf


def sklearn_top10(nmf: NMF, row: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Return the top 10 the baseline way: NMF.transform, then score every movie."""
    return np.argsort(-(nmf.transform(row) @ components)[0])[:10]


def user(model: NMFRecommender, n: int = 20, seed: int = 1) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(model.item_ids_, size=n, replace=False)
    return {int(i): float(rng.choice([3.0, 3.5, 4.0, 4.5, 5.0])) for i in ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()

    data = load_dataset(movielens_source(), progress=False)
    real = NMFRecommender().fit(data.ratings)
    models = {"ml-latest-small (9.7k)": real}
    for n in (10_000, 60_000, 87_000):
        models[f"synthetic {n // 1000}k"] = synthetic_model(n)

    rows = []
    for name, model in models.items():
        ratings = user(model)
        row = np.zeros((1, model.n_items))
        row[0, model.columns(ratings)] = list(ratings.values())
        nmf = sklearn_twin(model)
        with threadpool_limits(1, user_api="blas"):
            ours = timings(partial(model.recommend, ratings, 10), args.repeat)
            base = timings(
                partial(sklearn_top10, nmf, row, model.components_),
                max(30, args.repeat // 10),
            )
        with threadpool_limits(None):
            ours_default = timings(partial(model.recommend, ratings, 10), args.repeat)
        rows.append(
            [
                name,
                ms(ours, 50),
                ms(ours, 99),
                ms(ours_default, 50),
                ms(ours_default, 99),
                ms(base, 50),
                f"{np.median(base) / np.median(ours):.1f}x",
            ]
        )
    print(f"Machine: {machine()}\n")
    print("Top-10 recommend with fold-in of 20 ratings, k=100 (milliseconds)\n")
    print(
        table(
            [
                "catalog",
                "ours p50 (1 BLAS thread)",
                "ours p99",
                "ours p50 (default threads)",
                "ours p99 (default)",
                "sklearn transform p50",
                "median speed-up",
            ],
            rows,
        )
    )

    # Agreement: our fold-in gives the same factors as NMF.transform.
    ratings = user(real)
    row = np.zeros((1, real.n_items))
    row[0, real.columns(ratings)] = list(ratings.values())
    w_ours = real.fold_in(ratings)
    w_sk = sklearn_twin(real).transform(row)[0]
    print(
        f"\nRelative difference of fold-in factors vs NMF.transform: "
        f"{np.linalg.norm(w_ours - w_sk) / np.linalg.norm(w_sk):.2e}"
    )

    users = [
        dict(zip(g["movie_id"].tolist(), g["rating"].astype(float).tolist(), strict=True))
        for _, g in data.ratings.groupby("user_id")
    ]
    with threadpool_limits(1, user_api="blas"):
        batch = timings(lambda: [real.recommend(u, 10) for u in users], 3, warmup=1)
    print(
        f"\nAll {len(users)} ml-latest-small users in batch: median {np.median(batch):.2f} s "
        f"({np.median(batch) / len(users) * 1e3:.2f} ms per user)"
    )


if __name__ == "__main__":
    main()
