"""Property-based tests: nothing a member types can crash search, rating parsing or replies."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import UserFacingError
from bot.stars import parse_rating
from bot.text import escape
from recommender import Catalog

NASTY = st.sampled_from(
    [
        "",
        " ",
        "\u200b",
        "\u200d\u200c",
        "🎬🍿",
        "👨‍👩‍👧",
        "Amélie",
        "'; DROP TABLE ratings; --",
        '" OR 1=1 --',
        "**bold** _it_ `code` ||spoiler||",
        "@everyone",
        "@here",
        "<@123>",
        "<@&456>",
        "<#789>",
        "Heat\x00",
        "ＨＥＡＴ",
        "h\u0301eat",
        "\ufeffheat",
        "x" * 10_000,
        "🎬" * 5_000,
    ]
)
TEXT = st.one_of(
    NASTY, st.text(max_size=300), st.text(alphabet=st.characters(), min_size=1000, max_size=10_000)
)
SLOW = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.movielens
@SLOW
@given(query=TEXT)
def test_search_never_crashes_and_stays_bounded(catalog: Catalog, query: str) -> None:
    matches = catalog.search(query, 10)
    assert len(matches) <= 10
    assert len(catalog.complete(query, 25)) <= 25
    resolution = catalog.resolve(query)
    assert resolution.movie is None or resolution.movie in resolution.candidates


@SLOW
@given(text=TEXT)
def test_rating_text_is_a_valid_rating_or_a_friendly_error(text: str) -> None:
    try:
        value = parse_rating(text)
    except UserFacingError as exc:
        message = str(exc)
        assert 0 < len(message) < 300
        assert "@everyone" not in message
        assert not re.search(r"<@[!&]?\d+>", message)
    else:
        assert value in {x / 2 for x in range(1, 11)}


@given(number=st.floats(allow_nan=True, allow_infinity=True))
def test_rating_numbers_are_checked(number: float) -> None:
    valid = math.isfinite(number) and 0.5 <= number <= 5 and (number * 2).is_integer()
    if valid:
        assert parse_rating(number) == number
    else:
        with pytest.raises(UserFacingError):
            parse_rating(number)


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("4,5", "use a dot"),
        ("four", "isn't a rating"),
        ("NaN", "real number"),
        ("inf", "real number"),
        ("-1", "out of range"),
        ("0", "out of range"),
        ("5.5", "out of range"),
        ("4.25", "did you mean 4 or 4.5"),
    ],
)
def test_common_mistakes_get_a_correction(text: str, reply: str) -> None:
    with pytest.raises(UserFacingError, match=re.escape(reply)):
        parse_rating(text)


@given(text=TEXT)
def test_escaped_text_cannot_mention_anyone(text: str) -> None:
    safe = escape(text)
    assert len(safe) <= 2 * 100 + 20
    assert "@everyone" not in safe
    assert "@here" not in safe
    assert not re.search(r"<@[!&]?\d+>", safe)
