"""Autocomplete latency: the catalog's indexed search against a plain rapidfuzz scan.

Measures the real ml-latest-small catalog (9.7k titles) and one extended to 87k titles (the
size of ml-32m's catalog) with synthetic titles built from the real titles' words, for what
people type while they type: prefixes, whole words, typos, a trailing year.

    uv run python benchmarks/bench_autocomplete.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from benchmarks._common import machine, movielens_source, ms, table
from recommender import Catalog, load_dataset
from recommender.catalog import fold

QUERIES = [
    "h",
    "he",
    "hea",
    "heat",
    "the",
    "the m",
    "the matr",
    "star w",
    "star wars",
    "shawsh",
    "shawshenk",
    "godfath",
    "amelie",
    "se7en",
    "la haine",
    "hamlet 1948",
    "toy story 3",
    "lord of the r",
    "pulp fictoin",
    "incep",
    "a",
    "x",
    "zz",
    "blade runner 2049",
    "cite des",
]


def extended_movies(movies: pd.DataFrame, size: int, seed: int = 0) -> pd.DataFrame:
    """Return ``movies`` plus synthetic titles (real words recombined) up to ``size`` rows."""
    rng = np.random.default_rng(seed)
    words = sorted({w for t in movies["title"] for w in t.split() if w.isalpha()})
    extra = size - len(movies)
    lengths = rng.integers(1, 6, extra)
    titles = [" ".join(rng.choice(words, n)) + f" ({rng.integers(1920, 2024)})" for n in lengths]
    synthetic = pd.DataFrame(
        {
            "movie_id": np.arange(extra) + 1_000_000,
            "title": titles,
            "genres": [("Drama",)] * extra,
        }
    )
    return pd.concat([movies[["movie_id", "title", "genres"]], synthetic], ignore_index=True)


def scan(titles: list[str], query: str) -> list[tuple[str, float, int]]:
    """The baseline: score every title with rapidfuzz."""
    return process.extract(fold(query), titles, scorer=fuzz.WRatio, limit=25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes over the query list")
    args = parser.parse_args()
    data = load_dataset(movielens_source(), progress=False)

    rows = []
    for label, movies in (
        ("ml-latest-small", data.movies),
        ("extended to 87k", extended_movies(data.movies, 87_000)),
    ):
        started = time.perf_counter()
        catalog = Catalog(movies, data.ratings)
        build = time.perf_counter() - started
        folded = [fold(m.label) for m in catalog]
        ours, base = [], []
        for _ in range(args.repeat):
            for query in QUERIES:
                t0 = time.perf_counter()
                catalog.complete(query, 25)
                ours.append(time.perf_counter() - t0)
        for query in QUERIES:  # the scan is slow: one pass
            t0 = time.perf_counter()
            scan(folded, query)
            base.append(time.perf_counter() - t0)
        ours_a, base_a = np.array(ours), np.array(base)
        rows.append(
            [
                label,
                f"{len(catalog):,}",
                f"{build:.2f}",
                ms(ours_a, 50),
                ms(ours_a, 99),
                f"{ours_a.max() * 1e3:.3f}",
                ms(base_a, 50),
                f"{np.median(base_a) / np.median(ours_a):.0f}x",
            ]
        )
    print(f"Machine: {machine()}\n")
    print(f"Autocomplete, top 25, {len(QUERIES)} queries x {args.repeat} passes (milliseconds)\n")
    print(
        table(
            [
                "catalog",
                "titles",
                "index build s",
                "ours p50",
                "ours p99",
                "ours max",
                "rapidfuzz scan p50",
                "median speed-up",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
