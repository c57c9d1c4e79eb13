"""Refit time and peak memory against data size: NMF (ours) next to a PureSVD fit (scipy).

Sizes: ml-latest-small plus 300 simulated chat members (the bot's everyday refit), and
synthetic rating sets shaped like MovieLens (power-law popularity and activity, half stars)
at 1M, 10M and 25M ratings (25M: 162k users x 59k movies). Each fit runs in its own process so
its peak memory (max RSS) is its own.

    uv run python benchmarks/bench_fit.py                 # small + 1M
    uv run python benchmarks/bench_fit.py --sizes small,1M,10M,25M --repeat 1
    uv run python benchmarks/bench_fit.py --warm 1M       # warm-started refit vs cold fit
    uv run python benchmarks/bench_fit.py --warm-curve    # its held-out NDCG, 5 iterations apart

``--warm SIZE`` measures the everyday refit: a model fitted on the data minus 1% of its ratings
(the ones that arrived since), then, in the same process and alternating, a cold fit and a
warm-started fit (``fit(..., previous=model)``) on all of it; it reports the time ratio, the
reconstruction errors, and on ml-latest-small (``--warm small``) the held-out new-member NDCG@10
of both (users of one new-user fold, k = 1, 3, 5, 10, 20 revealed).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

from benchmarks._common import machine, movielens_source, table

SHAPES = {  # ratings: (users, movies), proportions of MovieLens' own sets
    "1M": (6_040, 3_700),
    "10M": (69_878, 10_677),
    "25M": (162_541, 59_047),
}


def synthetic_ratings(n_ratings: int, n_users: int, n_movies: int, seed: int = 0) -> pd.DataFrame:
    """Return ratings with Zipf-like movie popularity and user activity, in half stars."""
    rng = np.random.default_rng(seed)
    movie_weight = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    user_weight = 1.0 / np.arange(1, n_users + 1) ** 0.6
    draw = int(n_ratings * 1.3)
    frame = pd.DataFrame(columns=["user_id", "movie_id"])
    while len(frame) < n_ratings:  # sample with repeats, keep one rating per (user, movie)
        users = rng.choice(n_users, draw, p=user_weight / user_weight.sum())
        movies = rng.choice(n_movies, draw, p=movie_weight / movie_weight.sum())
        more = pd.DataFrame({"user_id": users, "movie_id": movies})
        frame = pd.concat([frame, more]).drop_duplicates()
        draw *= 2
    frame = frame.iloc[:n_ratings].astype(np.int64)
    quality = rng.normal(3.5, 0.5, n_movies)
    stars = np.clip(
        np.round((quality[frame["movie_id"]] + rng.normal(0, 0.9, len(frame))) * 2) / 2, 0.5, 5.0
    )
    frame["rating"] = stars.astype(np.float32)
    return frame.reset_index(drop=True)


def chat_members(movie_ids: np.ndarray, n_members: int = 300, per_member: int = 20) -> pd.DataFrame:
    """Return simulated chat members' ratings of real movies."""
    rng = np.random.default_rng(1)
    rows = [
        (m, int(movie), float(rng.choice(np.arange(1, 11) / 2)))
        for m in range(n_members)
        for movie in rng.choice(movie_ids[:2000], per_member, replace=False)
    ]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])


def one(size: str, model: str) -> dict[str, float]:
    """Fit one model on one data size in this process; return seconds and peak RSS."""
    from recommender import NMFRecommender, load_dataset
    from recommender.baselines import PureSVDRecommender

    if size == "small":
        data = load_dataset(movielens_source(), progress=False)
        ratings, extra = data.ratings, chat_members(data.movies["movie_id"].to_numpy())
    else:
        n_users, n_movies = SHAPES[size]
        ratings = synthetic_ratings(int(float(size[:-1]) * 1e6), n_users, n_movies)
        extra = None
    # Peak memory of the fit itself: numpy reports its allocations to tracemalloc.
    tracemalloc.start()
    started = time.perf_counter()
    if model == "nmf":
        fitted = NMFRecommender().fit(ratings, extra)
        iterations = fitted.n_iter_
    else:
        combined = (
            ratings
            if extra is None
            else pd.concat([ratings, extra.assign(user_id=extra["user_id"] + 10**9)])
        )
        PureSVDRecommender(50).fit(combined)
        iterations = 0
    seconds = time.perf_counter() - started
    fit_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    n = len(ratings) + (0 if extra is None else len(extra))
    return {
        "seconds": seconds,
        "peak_mib": peak,
        "fit_peak_mib": fit_peak,
        "ratings": n,
        "iterations": iterations,
    }


def warm_vs_cold(size: str, repeat: int, warm_iter: int, layout: str = "full") -> None:
    """Time a cold fit and a warm-started refit after 1% new ratings, side by side."""
    from recommender import NMFRecommender, load_dataset
    from recommender.evaluation import case_measures, new_user_folds
    from recommender.layouts import apply_layout

    if size == "small":  # each of the five new-user folds in turn: its users are scored
        data = apply_layout(load_dataset(movielens_source(), progress=False), layout)
        folds = [
            (fold.train.reset_index(drop=True), fold.cases)
            for fold in new_user_folds(data.ratings, 5, (1, 3, 5, 10, 20), seed=0)
        ]
    else:
        n_users, n_movies = SHAPES[size]
        folds = [(synthetic_ratings(int(float(size[:-1]) * 1e6), n_users, n_movies), {})]
    runs: dict[str, list[float]] = {"cold": [], "warm": []}
    iterations: dict[str, list[int]] = {"cold": [], "warm": []}
    errors: dict[str, list[float]] = {"cold": [], "warm": []}
    per_user: dict[str, dict[int, list[np.ndarray]]] = {"cold": {}, "warm": {}}
    new = 0
    for ratings, cases in folds:
        rng = np.random.default_rng(0)
        arrived = rng.random(len(ratings)) < 0.01
        new += int(arrived.sum())
        previous = NMFRecommender().fit(ratings.loc[~arrived])
        for attempt in range(repeat):
            for kind in runs:  # alternate, so both see the same machine load
                started = time.perf_counter()
                model = NMFRecommender(warm_iter=warm_iter)
                model.fit(ratings, previous=previous if kind == "warm" else None)
                runs[kind].append(time.perf_counter() - started)
                if attempt == repeat - 1:  # the last fit of each kind is scored
                    iterations[kind].append(model.n_iter_)
                    errors[kind].append(model.reconstruction_err_)
                    for k, c in cases.items():
                        per_user[kind].setdefault(k, []).append(case_measures(model, c)["ndcg"])
    cold_s, warm_s = (float(np.median(runs[k])) for k in ("cold", "warm"))
    rows = [
        [
            kind,
            f"{float(np.median(runs[kind])):.2f}",
            "/".join(str(n) for n in sorted(set(iterations[kind]))),
            f"{float(np.mean(errors[kind])):,.1f}",
        ]
        for kind in runs
    ]
    print(f"Machine: {machine()}\n")
    where = (
        f"{data.name}, each of {len(folds)} new-user folds held out in turn"
        if size == "small"
        else size
    )
    print(
        f"{where}: {sum(len(r) for r, _ in folds):,} ratings fitted in all, {new:,} (1%) new "
        f"since the previous fit; NMF k=100; median of {repeat * len(folds)} fits\n"
    )
    print(table(["fit", "seconds", "iterations", "reconstruction error (mean)"], rows))
    print(f"\nwarm / cold time: {warm_s / cold_s:.2f}")
    if per_user["cold"]:
        scores = {
            kind: {k: np.concatenate(v) for k, v in per_user[kind].items()} for kind in per_user
        }
        rows = []
        for k in [*scores["cold"], "mean over k"]:
            if k in scores["cold"]:
                cold, warm = scores["cold"][k], scores["warm"][k]
            else:  # the mean of the per-k means (no paired standard error)
                cold, warm = (
                    np.array([np.mean([scores[kind][j].mean() for j in scores[kind]])])
                    for kind in ("cold", "warm")
                )
            diff = warm - cold
            se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
            rows.append(
                [
                    str(k),
                    str(cold.size) if k in scores["cold"] else "",
                    f"{cold.mean():.4f}",
                    f"{warm.mean():.4f}",
                    f"{diff.mean():+.4f}",
                    "" if np.isnan(se) else f"{se:.4f}",
                ]
            )
        print("\nHeld-out new members, NDCG@10 (se = standard error of the paired difference):\n")
        print(table(["revealed", "users", "cold", "warm", "warm - cold", "se"], rows))


def warm_curve(step: int, upto: int) -> None:
    """Held-out NDCG@10 of a warm refit after every ``step`` iterations, next to a cold fit.

    The same splits as ``--warm small``: for each new-user fold, the previous model is fitted
    without 1% of the ratings and the refit starts from it on all of them; the fold's users are
    scored, all five folds' together.
    """
    import warnings

    import pandas as pd

    from recommender import NMFRecommender, load_dataset
    from recommender.evaluation import case_measures, new_user_folds
    from recommender.model import build_matrix

    data = load_dataset(movielens_source(), progress=False)
    names = [
        "cold fit (100 iterations)",
        *(f"warm, {d} iterations" for d in range(0, upto + 1, step)),
    ]
    per_user: dict[str, dict[int, list[np.ndarray]]] = {name: {} for name in names}

    def score(name: str, model: NMFRecommender, cases: dict) -> None:
        for k, c in cases.items():
            per_user[name].setdefault(k, []).append(case_measures(model, c)["ndcg"])

    for fold in new_user_folds(data.ratings, 5, (1, 3, 5, 10, 20), seed=0):
        ratings, cases = fold.train.reset_index(drop=True), fold.cases
        arrived = np.random.default_rng(0).random(len(ratings)) < 0.01
        previous = NMFRecommender().fit(ratings.loc[~arrived])
        score(names[0], NMFRecommender().fit(ratings), cases)
        model = NMFRecommender()
        matrix, movie_ids = build_matrix(ratings, None)
        x = matrix.astype(np.float64)
        w, h = model.warm_start(x, movie_ids, previous, pd.unique(ratings["user_id"]))
        for done in range(0, upto + 1, step):
            if done:
                nmf = model._solver(h.shape[0], "custom", step, 0.0)  # the refit's own solver
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    w = nmf.fit_transform(x, W=w, H=h)
                h = nmf.components_
            model.components_ = np.ascontiguousarray(h)  # the refit as it stands after `done`
            model.item_ids_ = movie_ids
            model._set_item_statistics(matrix)
            model._prepare()
            score(f"warm, {done} iterations", model, cases)
    rows = []
    for name in names:
        means = [float(np.concatenate(v).mean()) for v in per_user[name].values()]
        rows.append([name, *(f"{v:.4f}" for v in means), f"{np.mean(means):.4f}"])
    ks = list(per_user[names[0]])
    print(f"Machine: {machine()}\n")
    print(
        "ml-latest-small, each of 5 new-user folds held out in turn (1% of the rest new since "
        "the previous fit); held-out new members, NDCG@10\n"
    )
    print(table(["model", *ks, "mean over k"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,1M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--warm", metavar="SIZE", help="warm refit vs cold fit on this size")
    parser.add_argument("--warm-iter", type=int, default=10, help="warm refit iterations, at most")
    parser.add_argument("--layout", default="full", help="--warm small: full or dense")
    parser.add_argument(
        "--warm-curve",
        action="store_true",
        help="held-out NDCG@10 of a warm refit of ml-latest-small every 5 iterations",
    )
    args = parser.parse_args()
    if args.warm_curve:
        warm_curve(5, 30)
        return
    if args.warm:
        warm_vs_cold(args.warm, args.repeat, args.warm_iter, args.layout)
        return
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    rows = []
    for size in args.sizes.split(","):
        results: dict[str, list[dict[str, float]]] = {"nmf": [], "svd": []}
        for _ in range(args.repeat):
            for model in results:  # alternate, so both see the same machine load
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_fit", "--one", size, model],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[model].append(json.loads(out.stdout.strip().splitlines()[-1]))
        nmf_s = float(np.median([r["seconds"] for r in results["nmf"]]))
        svd_s = float(np.median([r["seconds"] for r in results["svd"]]))
        rows.append(
            [
                "ml-latest-small + 300 chat members" if size == "small" else f"synthetic {size}",
                f"{int(results['nmf'][0]['ratings']):,}",
                f"{nmf_s:.2f}",
                f"{max(r['fit_peak_mib'] for r in results['nmf']):,.0f}",
                f"{int(results['nmf'][0]['iterations'])}",
                f"{svd_s:.2f}",
                f"{max(r['fit_peak_mib'] for r in results['svd']):,.0f}",
                f"{nmf_s / svd_s:.1f}x",
                f"{max(r['peak_mib'] for r in results['nmf'] + results['svd']):,.0f}",
            ]
        )
    print(f"Machine: {machine()}\n")
    print(
        f"Fit time (median of {args.repeat}); fit peak = the most memory numpy held during the "
        "fit (tracemalloc); process peak RSS includes making the synthetic data. "
        "NMF k=100, 100 iterations max; PureSVD k=50\n"
    )
    print(
        table(
            [
                "data",
                "ratings",
                "NMF s",
                "NMF fit peak MiB",
                "NMF iterations",
                "PureSVD s",
                "PureSVD fit peak MiB",
                "NMF / PureSVD time",
                "process peak RSS MiB",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
