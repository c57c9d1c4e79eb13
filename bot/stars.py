"""Parsing and showing star ratings (0.5-5 in half steps)."""

from __future__ import annotations

import math
import re

from bot.errors import UserFacingError
from bot.text import escape

MIN_RATING = 0.5
MAX_RATING = 5.0
_HELP = "Ratings go from 0.5 to 5 in half-star steps, like 3 or 4.5."
_STARS = re.compile(r"^(★*)(½?)$")


def _nearest_steps(value: float) -> str:
    low = math.floor(value * 2) / 2
    high = math.ceil(value * 2) / 2
    options = sorted({min(max(v, MIN_RATING), MAX_RATING) for v in (low, high)})
    return " or ".join(format_number(v) for v in options)


def format_number(value: float) -> str:
    """Return ``4`` for 4.0 and ``4.5`` for 4.5."""
    return f"{value:g}"


def parse_rating(value: str | float) -> float:
    """Return a valid rating from typed text or a number, or raise a friendly error.

    Accepts ``4.5``, ``4½`` and ``★★★★½``. Everything else (``4,5``, ``four``, ``NaN``, ``0``,
    ``5.5``, ``4.25``) gets a message that says what would work.
    """
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 20:
            raise UserFacingError(f"That rating is too long to be a number. {_HELP}")
        stars = _STARS.match(text)
        if text and stars is not None:
            number = len(stars.group(1)) + (0.5 if stars.group(2) else 0.0)
        elif re.fullmatch(r"\d+(?:[.,]\d+)?½?|\d*½", text):
            if "," in text:
                suggestion = text.replace(",", ".")
                raise UserFacingError(f"Please use a dot for decimals: {suggestion}, not {text}.")
            half = 0.5 if text.endswith("½") else 0.0
            digits = text.rstrip("½")
            number = (float(digits) if digits else 0.0) + half
        else:
            try:
                if "_" in text:  # float() reads "4_0" as 40
                    raise ValueError(text)
                number = float(text)
            except ValueError:
                raise UserFacingError(
                    f"“{escape(text, 20)}” isn't a rating I understand. {_HELP}"
                ) from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise UserFacingError(f"A rating has to be a real number. {_HELP}")
    if number < MIN_RATING or number > MAX_RATING:
        raise UserFacingError(f"{format_number(number)} is out of range. {_HELP}")
    if number * 2 != int(number * 2):
        raise UserFacingError(
            f"{format_number(number)} isn't a half-star step; "
            f"did you mean {_nearest_steps(number)}?"
        )
    return number


def stars(rating: float) -> str:
    """Return a rating as stars, e.g. ★★★★½ for 4.5."""
    full = int(rating)
    return "★" * full + ("½" if rating - full >= 0.5 else "")
