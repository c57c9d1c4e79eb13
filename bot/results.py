"""What the service answers: plain data the cogs, the console and the formatting share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from recommender.catalog import Movie

T = TypeVar("T")


@dataclass(frozen=True)
class RateResult:
    """A saved rating, with the member's previous rating of the movie if there was one."""

    movie: Movie
    rating: float
    previous: float | None


@dataclass(frozen=True)
class UnrateResult:
    """A removed rating."""

    movie: Movie
    removed: float


@dataclass(frozen=True)
class Choice(Generic[T]):
    """A typed title matched several movies: once the member picks one, ``run`` finishes the job.

    The Discord cogs show ``candidates`` as a menu, the console as a numbered list.
    """

    question: str
    candidates: tuple[Movie, ...]
    run: Callable[[Movie], Awaitable[T]]


@dataclass(frozen=True)
class Pick:
    """One recommended movie, and the member's rated movies that led to it most."""

    movie: Movie
    score: float
    because: tuple[Movie, ...] = ()


@dataclass(frozen=True)
class SimilarMovies:
    """The movies closest to one movie in the model."""

    movie: Movie
    picks: tuple[Pick, ...]


@dataclass(frozen=True)
class DismissedMovie:
    """A film a member marked "Not interested"."""

    movie: Movie
    dismissed_at: int


@dataclass(frozen=True)
class Recommendations:
    """A recommendation list and what it is based on."""

    picks: tuple[Pick, ...]
    based_on: int  # the member's ratings that the model used
    personalized: bool  # False: popular picks (no ratings yet, or no model yet)
    warming_up: bool  # True while the first model is being fitted
    genre: str | None = None
    model_missing: bool = False  # no model and none being fitted (the last fit failed)
    discover: bool = False  # popular films were pushed down for less obvious picks


@dataclass(frozen=True)
class RatedMovie:
    """A movie on a member's ratings page."""

    movie: Movie
    rating: float
    updated_at: int


@dataclass(frozen=True)
class RatingsPage:
    """One page of a member's ratings."""

    items: tuple[RatedMovie, ...]
    page: int  # 0-based
    pages: int
    total: int


@dataclass(frozen=True)
class RetrainResult:
    """The outcome of a refit that finished and is now live."""

    seconds: float
    n_ratings: int
    n_chat_ratings: int
    n_chat_users: int
    n_movies: int
    quality: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # the model's parameters
    tuning: dict[str, Any] = field(default_factory=dict)  # how they were chosen, if tuned


@dataclass(frozen=True)
class ServerStatsView:
    """A server's numbers, ready to show."""

    members: int
    ratings: int
    most_rated: tuple[tuple[Movie, int, float], ...]
    best_rated: tuple[tuple[Movie, int, float], ...]
    chart_png: bytes | None
    min_members: int = 3  # a film is listed only once this many members rated it
