"""Errors whose text is the reply a member sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.text import escape

if TYPE_CHECKING:
    from recommender.catalog import Movie


class UserFacingError(Exception):
    """A problem with what the member asked; ``str(error)`` is the friendly reply."""


class TitleNotFoundError(UserFacingError):
    """No movie matches the typed title."""

    def __init__(self, query: str) -> None:
        super().__init__(
            f"I couldn't find a movie called “{escape(query)}”. "
            "Check the spelling, or start typing and pick one from the suggestions."
        )
        self.query = query


class AmbiguousTitleError(UserFacingError):
    """Several movies match the typed title equally well; the member has to choose."""

    def __init__(self, query: str, candidates: tuple[Movie, ...]) -> None:
        super().__init__(f"“{escape(query)}” matches several movies. Which one do you mean?")
        self.query = query
        self.candidates = candidates


class RetrainRunningError(UserFacingError):
    """A refit is already in progress, here or (``holder`` set) in another bot process."""

    def __init__(self, started_seconds_ago: float | None, holder: int | None = None) -> None:
        where = ""
        if holder is not None:
            who = f"process {holder}" if holder else "pid unknown"
            where = f"in another moviebot process ({who}), "
        when = (
            f"started {max(0, round(started_seconds_ago))} s ago"
            if started_seconds_ago is not None
            else "just started"
        )
        super().__init__(
            f"A retrain is already running ({where}{when}). "
            "I'll use the new model as soon as it's done."
        )
        self.started_seconds_ago = started_seconds_ago
        self.holder = holder


class ModelUnavailableError(UserFacingError):
    """The recommender has no data or model to work with yet."""
