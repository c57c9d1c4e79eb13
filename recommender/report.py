"""Charts of the data and the model, and a self-contained HTML report of them.

Uses matplotlib's Agg backend: no display needed. Every chart is also written as a PNG.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recommender.catalog import Catalog
from recommender.model import NMFRecommender

log = logging.getLogger(__name__)

HALF_STARS = np.arange(1, 11) / 2
ACCENT, SECOND = "#3b6ea8", "#d08a2e"


@dataclass(frozen=True)
class Chart:
    """One chart of the report."""

    name: str
    title: str
    caption: str
    png: bytes


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def rating_distribution(
    ratings: pd.DataFrame, chat: pd.DataFrame | None = None, title: str = "Ratings by stars"
) -> bytes:
    """Bar chart of the share of ratings at each half star (MovieLens, and chat if given)."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    counts = ratings["rating"].value_counts().reindex(HALF_STARS, fill_value=0)
    width = 0.2 if chat is not None and len(chat) else 0.4
    ax.bar(
        HALF_STARS - (width / 2 if width == 0.2 else 0),
        counts / max(counts.sum(), 1) * 100,
        width=width,
        color=ACCENT,
        label=f"MovieLens ({len(ratings):,})",
    )
    if chat is not None and len(chat):
        chat_counts = chat["rating"].value_counts().reindex(HALF_STARS, fill_value=0)
        ax.bar(
            HALF_STARS + width / 2,
            chat_counts / chat_counts.sum() * 100,
            width=width,
            color=SECOND,
            label=f"this server ({len(chat):,})",
        )
    ax.set_xticks(HALF_STARS, [f"{s:g}" for s in HALF_STARS])
    ax.set_xlabel("rating (stars)")
    ax.set_ylabel("share of ratings (%)")
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def long_tail(ratings: pd.DataFrame) -> bytes:
    """Rank plots (log-log) of ratings per user and per movie."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    panels = (
        (axes[0], "user_id", "users", "users, most active first (rank)"),
        (axes[1], "movie_id", "movies", "movies, most rated first (rank)"),
    )
    for ax, column, label, xlabel in panels:
        counts = np.sort(ratings[column].value_counts().to_numpy())[::-1]
        ax.loglog(np.arange(1, counts.size + 1), counts, color=ACCENT)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ratings")
        ax.set_title(
            f"Ratings per {label[:-1]}: median {int(np.median(counts))}, max {counts[0]:,}"
        )
        ax.grid(alpha=0.3, which="both")
    return _png(fig)


def genres(movies: pd.DataFrame, ratings: pd.DataFrame) -> bytes:
    """Ratings per genre and mean rating per genre, side by side."""
    exploded = movies[["movie_id", "genres"]].explode("genres").dropna()
    joined = ratings[["movie_id", "rating"]].merge(exploded, on="movie_id")
    stats = joined.groupby("genres")["rating"].agg(["count", "mean"]).sort_values("count")
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.28 * len(stats) + 1.2), sharey=True)
    axes[0].barh(stats.index, stats["count"], color=ACCENT)
    axes[0].set_xlabel("ratings")
    axes[0].set_title("Genre popularity")
    axes[1].barh(stats.index, stats["mean"], color=SECOND)
    axes[1].set_xlim(max(0.0, stats["mean"].min() - 0.3), min(5.0, stats["mean"].max() + 0.2))
    axes[1].set_xlabel("mean rating (stars)")
    axes[1].set_title("Mean rating by genre")
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def over_time(ratings: pd.DataFrame) -> bytes:
    """Ratings per year."""
    years = pd.to_datetime(ratings["timestamp"], unit="s").dt.year.value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.bar(years.index, years.to_numpy(), color=ACCENT)
    ax.set_xlabel("year the rating was given")
    ax.set_ylabel("ratings")
    ax.set_title("Ratings over time")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def community(ratings: pd.DataFrame, chat: pd.DataFrame | None) -> bytes:
    """The server's members next to MovieLens: people, ratings, movies, overlap."""
    chat = chat if chat is not None else pd.DataFrame(columns=["user_id", "movie_id", "rating"])
    ml_movies = set(ratings["movie_id"].unique())
    chat_movies = set(chat["movie_id"].unique())
    labels = ["people who rated", "ratings", "movies rated"]
    ml_values = [ratings["user_id"].nunique(), len(ratings), len(ml_movies)]
    chat_values = [chat["user_id"].nunique(), len(chat), len(chat_movies)]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    y = np.arange(len(labels))
    ax.barh(y + 0.2, ml_values, height=0.4, color=ACCENT, label="MovieLens")
    ax.barh(
        y - 0.2, [max(v, 0) for v in chat_values], height=0.4, color=SECOND, label="this server"
    )
    for yy, value in zip(y - 0.2, chat_values, strict=True):
        ax.text(max(value, 1) * 1.1, yy, f"{value:,}", va="center", fontsize=8)
    for yy, value in zip(y + 0.2, ml_values, strict=True):
        ax.text(value * 1.1, yy, f"{value:,}", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    overlap = len(chat_movies & ml_movies)
    ax.set_title(
        f"This server next to MovieLens ({overlap:,} of the server's "
        f"{len(chat_movies):,} movies are also rated in MovieLens)"
    )
    ax.set_xlabel("count (log scale)")
    ax.legend(frameon=False, loc="lower right")
    return _png(fig)


def factor_map(
    model: NMFRecommender, catalog: Catalog, min_ratings: int = 30, labels: int = 30
) -> bytes:
    """2-D map of the movies in the model's factor space (PCA of normalized factors)."""
    h = model.components_
    keep = np.flatnonzero((model.item_counts_ >= min_ratings) & (model.item_norms_ > 0))
    if keep.size < 10:  # a small catalog: map its most rated movies instead
        min_ratings = 1
        keep = np.flatnonzero(model.item_norms_ > 0)
        keep = keep[np.argsort(-model.item_counts_[keep])][:300]
    vectors = (h[:, keep] / model.item_norms_[keep]).T
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    genre_of = []
    for column in keep:
        movie = catalog.get(int(model.item_ids_[column]))
        genre_of.append(movie.genres[0] if movie and movie.genres else "(none)")
    fig, ax = plt.subplots(figsize=(10, 7.5))
    top_genres = pd.Series(genre_of).value_counts().index[:8].tolist()
    cmap = plt.get_cmap("tab10")
    for i, genre in enumerate([*top_genres, "other"]):
        mask = np.array(
            [(g == genre) if genre != "other" else (g not in top_genres) for g in genre_of],
            dtype=bool,
        )
        ax.scatter(xy[mask, 0], xy[mask, 1], s=10, alpha=0.6, color=cmap(i % 10), label=genre)
    popular = np.argsort(-model.item_counts_[keep])[:labels]
    for index in popular:
        movie = catalog.get(int(model.item_ids_[keep[index]]))
        if movie is not None:
            ax.annotate(
                movie.title[:28],
                xy[index],
                fontsize=7,
                alpha=0.85,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("first principal direction of the movie factors")
    ax.set_ylabel("second principal direction")
    ax.set_title(
        f"Movies in the model's factor space ({len(keep):,} with {min_ratings}+ ratings; "
        "colour = first listed genre)"
    )
    ax.legend(frameon=False, fontsize=8, markerscale=2)
    return _png(fig)


def evaluation_chart(results: Sequence[Mapping[str, Any]]) -> bytes:
    """NDCG@10 of each model in each scenario (grouped bars)."""
    frame = pd.DataFrame(list(results))
    scenarios = list(dict.fromkeys(frame["scenario"]))
    models = list(dict.fromkeys(frame["model"]))
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(models)
    x = np.arange(len(scenarios))
    cmap = plt.get_cmap("tab10")
    for i, model in enumerate(models):
        values = [
            float(frame.loc[(frame["scenario"] == s) & (frame["model"] == model), "ndcg"].mean())
            for s in scenarios
        ]
        ax.bar(
            x + i * width - 0.4 + width / 2, values, width=width, color=cmap(i % 10), label=model
        )
    ax.set_xticks(x, [s if s != "per-user" else "per-user k-fold" for s in scenarios])
    ax.set_xlabel("scenario (k=N: a new user with N ratings revealed)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("Recommendation quality, same splits for every model")
    ax.legend(frameon=False, fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def stats_chart(counts: Mapping[float, int], title: str) -> bytes:
    """Bar chart of a server's ratings by stars (for /stats)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    values = [counts.get(float(s), 0) for s in HALF_STARS]
    ax.bar(HALF_STARS, values, width=0.4, color=ACCENT)
    ax.set_xticks(HALF_STARS, [f"{s:g}" for s in HALF_STARS])
    ax.set_xlabel("rating (stars)")
    ax.set_ylabel("ratings")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def build_report(
    out_dir: Path,
    movies: pd.DataFrame,
    ratings: pd.DataFrame,
    *,
    dataset_name: str,
    chat: pd.DataFrame | None = None,
    model: NMFRecommender | None = None,
    catalog: Catalog | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> Path:
    """Write the PNG charts and ``report.html`` (charts embedded) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    makers: list[tuple[str, str, str, Callable[[], bytes]]] = [
        (
            "ratings",
            "Ratings by stars",
            "Share of ratings at each half star.",
            lambda: rating_distribution(ratings, chat),
        ),
        (
            "long-tail",
            "The long tail",
            "A few users and movies have most ratings (log-log rank plots).",
            lambda: long_tail(ratings),
        ),
        (
            "genres",
            "Genres",
            "How often each genre is rated, and how well.",
            lambda: genres(movies, ratings),
        ),
        (
            "over-time",
            "Ratings over time",
            "When the MovieLens ratings were given.",
            lambda: over_time(ratings),
        ),
        (
            "community",
            "This server and MovieLens",
            "The chat members' ratings next to MovieLens.",
            lambda: community(ratings, chat),
        ),
    ]
    if model is not None and catalog is not None:
        makers.append(
            (
                "factor-map",
                "The model's map of movies",
                "Movies close together are liked by the same people; labels are the most rated.",
                lambda: factor_map(model, catalog),
            )
        )
    if evaluation and evaluation.get("results"):
        results = evaluation["results"]
        makers.append(
            (
                "evaluation",
                "Recommendation quality",
                "NDCG@10 on held-out ratings; see the table below.",
                lambda: evaluation_chart(results),
            )
        )
    charts = []
    for name, title, caption, make in makers:
        png = make()
        (out_dir / f"{name}.png").write_bytes(png)
        charts.append(Chart(name, title, caption, png))
    path = out_dir / "report.html"
    path.write_text(
        _html(dataset_name, movies, ratings, chat, charts, evaluation), encoding="utf-8"
    )
    return path


def _html(
    dataset_name: str,
    movies: pd.DataFrame,
    ratings: pd.DataFrame,
    chat: pd.DataFrame | None,
    charts: Sequence[Chart],
    evaluation: Mapping[str, Any] | None,
) -> str:
    esc = html.escape
    facts = [
        ("data set", dataset_name),
        ("movies", f"{len(movies):,}"),
        ("MovieLens ratings", f"{len(ratings):,} by {ratings['user_id'].nunique():,} users"),
        ("mean rating", f"{ratings['rating'].mean():.2f} stars"),
        (
            "server ratings",
            "none yet"
            if chat is None or chat.empty
            else f"{len(chat):,} by {chat['user_id'].nunique():,} members",
        ),
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>moviebot report</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
        "color:#222}img{max-width:100%}table{border-collapse:collapse}"
        "td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>",
        "<h1>moviebot: the data and the model</h1>",
        f"<p>Generated {esc(dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC'))}.</p><table>",
        *(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts),
        "</table>",
    ]
    for chart in charts:
        data = base64.b64encode(chart.png).decode("ascii")
        parts.append(
            f"<h2>{esc(chart.title)}</h2><p>{esc(chart.caption)}</p>"
            f"<img alt='{esc(chart.title)}' src='data:image/png;base64,{data}'>"
        )
    if evaluation and evaluation.get("results"):
        frame = pd.DataFrame(list(evaluation["results"]))
        shown = frame[
            ["scenario", "model", "users", "precision", "recall", "ndcg", "map", "coverage"]
        ]
        parts.append("<h2>Evaluation table</h2>")
        parts.append(shown.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0))
    parts.append(
        "<p>MovieLens data © GroupLens Research; F. M. Harper and J. A. Konstan, "
        "The MovieLens Datasets: History and Context, ACM TiiS 5(4), 2015.</p></body></html>"
    )
    return "\n".join(parts)
