"""Turning what a member typed into a movie or a genre: the rules the bot and the CLI share."""

from __future__ import annotations

from bot.errors import AmbiguousTitleError, TitleNotFoundError, UserFacingError
from bot.text import escape
from recommender.catalog import MAX_QUERY_CHARS, Catalog, Movie

MAX_ID_DIGITS = 12


def find_movie(catalog: Catalog, query: str) -> Movie:
    """Return the one movie ``query`` names, or raise a not-found or ambiguous error.

    A query of the form ``#123`` (as carried by an autocomplete pick) is a movie id.
    """
    text = query.strip()
    digits = text[1:]
    if text.startswith("#") and digits.isascii() and digits.isdigit():
        movie = catalog.get(int(digits)) if len(digits) <= MAX_ID_DIGITS else None
        if movie is not None:
            return movie
    if not text:
        raise UserFacingError("Which movie? Type a title.")
    resolution = catalog.resolve(text[:MAX_QUERY_CHARS])
    if resolution.movie is not None:
        return resolution.movie
    if resolution.candidates:
        raise AmbiguousTitleError(text[:100], resolution.candidates)
    raise TitleNotFoundError(text[:100])


def movie_by_id(catalog: Catalog, movie_id: int) -> Movie:
    """Return a catalog movie by id, or raise a friendly error."""
    movie = catalog.get(movie_id)
    if movie is None:
        raise UserFacingError("That movie isn't in the catalog any more.")
    return movie


def find_genre(catalog: Catalog, genre: str | None) -> str | None:
    """Return the catalog's spelling of a typed genre (None for none), or raise a friendly error."""
    if genre is None or not genre.strip():
        return None
    match = catalog.genre(genre)
    if match is None:
        raise UserFacingError(
            f"I don't know the genre “{escape(genre.strip(), 40)}”. "
            f"Try one of: {', '.join(catalog.genres)}."
        )
    return match
