"""A re-tuning refit: ``fit_bundle(..., holdout=0.05, tune=True)`` on ml-latest-small layouts.

Prints the tuning grid (score = the documented blend of new- and warm-member NDCG@10, with
standard errors), the choice, and the refit's time next to a plain refit's. Target: a
re-tuning refit of ml-latest-small under 30 s.

    uv run python -m benchmarks.bench_tune                       # both layouts
    uv run python -m benchmarks.bench_tune --layouts full --start '{"alpha": 0.3}'
    uv run python -m benchmarks.bench_tune --synthetic 25M   # time only: synthetic ratings

With ``--synthetic SIZE`` (1M, 10M, 25M: ``bench_fit``'s MovieLens-shaped synthetic ratings) it
times a re-tuning refit against a plain one at that size; the scores there mean nothing (the
ratings are random), only the time does.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks._common import machine, movielens_source, table
from recommender import Dataset


def synthetic_dataset(size: str) -> Dataset:
    """Return ``bench_fit``'s synthetic ratings of ``size`` as a data set."""
    import hashlib

    import pandas as pd

    from benchmarks.bench_fit import SHAPES, synthetic_ratings

    n_users, n_movies = SHAPES[size]
    ratings = synthetic_ratings(int(float(size[:-1]) * 1e6), n_users, n_movies)
    ratings["timestamp"] = 0
    ids = np.sort(ratings["movie_id"].unique())
    movies = pd.DataFrame(
        {
            "movie_id": ids,
            "title": [f"Movie {i}" for i in ids],
            "year": pd.array([None] * len(ids), dtype="Int64"),
            "genres": [()] * len(ids),
            "imdb_id": pd.array([None] * len(ids), dtype="Int64"),
            "tmdb_id": pd.array([None] * len(ids), dtype="Int64"),
        }
    )
    fingerprint = hashlib.sha1(f"synthetic {size}".encode(), usedforsecurity=False).hexdigest()
    return Dataset(f"synthetic {size}", movies, ratings, fingerprint=fingerprint[:16])


def main() -> None:
    from recommender import fit_bundle, load_dataset
    from recommender.layouts import apply_layout
    from recommender.tuning import Tuning

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="full,dense")
    parser.add_argument("--start", default="{}", help="NMF parameters to start from (JSON)")
    parser.add_argument("--synthetic", metavar="SIZE", help="time a re-tune on synthetic data")
    args = parser.parse_args()
    start = json.loads(args.start)
    print(f"Machine: {machine()}")
    if args.synthetic:
        datasets = [synthetic_dataset(args.synthetic)]
    else:
        data = load_dataset(movielens_source(), progress=False)
        datasets = [apply_layout(data, layout) for layout in args.layouts.split(",")]
    for dataset in datasets:
        started = time.perf_counter()
        plain = fit_bundle(dataset, holdout=0.05, **start)
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        tuned = fit_bundle(dataset, holdout=0.05, tune=True, **start)
        tuned_s = time.perf_counter() - started
        tuning = Tuning.from_dict(tuned.metadata.tuning)
        rows = [
            [
                str(s.n_components),
                f"{s.alpha:.4g}",
                str(s.blend_below),
                f"{s.fold_in_reg:g}",
                f"{s.score:.4f} ± {s.score_se:.4f}",
                f"{s.new_member:.4f} ± {s.new_member_se:.4f}",
                f"{s.warm_member:.4f} ± {s.warm_member_se:.4f}",
                "chosen"
                if s == tuning.score
                else f"{s.score - tuning.score.score:+.4f} ± {s.diff_se:.4f}",
            ]
            for s in tuning.grid
        ]
        print(
            f"\n{dataset.name}: start {start or 'defaults'}; {tuning.new_members} new and "
            f"{tuning.warm_members} warm tuning members\n"
        )
        print(
            table(
                [
                    "n_components",
                    "alpha",
                    "blend_below",
                    "fold_in_reg",
                    "score ± se",
                    "new members ± se",
                    "warm members ± se",
                    "vs chosen ± paired se",
                ],
                rows,
            )
        )
        p, q = tuned.metadata.params, tuned.metadata.quality
        print(
            f"\nchosen: n_components={p['n_components']} alpha={p['alpha']:.4g} "
            f"blend_below={p['blend_below']} fold_in_reg={p['fold_in_reg']:g}; "
            f"tuning {tuning.seconds:.1f} s, re-tuning refit "
            f"{tuned_s:.1f} s (plain refit {plain_s:.1f} s); held-out quality NDCG@10 "
            f"{q['ndcg_model']:.4f} ± {q['ndcg_model_se']:.4f} (plain refit "
            f"{plain.metadata.quality['ndcg_model']:.4f}), popular picks {q['ndcg_popular']:.4f}"
        )


if __name__ == "__main__":
    main()
