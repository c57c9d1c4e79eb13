from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from bot.errors import UserFacingError
from bot.imports import (
    MAX_BYTES,
    MAX_ROWS,
    ImportedRating,
    ImportFormatError,
    ParsedImport,
    Unmatched,
    parse_export,
    unmatched_csv,
)
from recommender.catalog import Catalog
from tests.helpers import TINY_MOVIES

DATA = Path(__file__).parent / "data" / "imports"

STRANGELOVE = "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb"
EXTRA_MOVIES = [
    (20, "Matrix, The (1999)", "Action|Sci-Fi", 133093, 603),
    (21, "Seven (a.k.a. Se7en) (1995)", "Mystery|Thriller", 114369, 807),
    (22, "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)", "Action|Drama", 190332, 146),
    (23, '"Great Performances" Cats (1998)', "Musical", 173714, 34677),
    (24, "Crash (2004)", "Crime|Drama", 375679, 1640),
    (25, "Crash (2006)", "Drama", 9999991, None),  # made up, to make "Crash 2005" ambiguous
    (26, "Star Wars: Episode IV - A New Hope (1977)", "Action|Sci-Fi", 76759, 11),
    (27, f"{STRANGELOVE} (1964)", "Comedy|War", 57012, 935),
]

LETTERBOXD_HEADER = "Date,Name,Year,Letterboxd URI,Rating\n"
DIARY_HEADER = "Date,Name,Year,Letterboxd URI,Rating,Rewatch,Tags,Watched Date\n"


@pytest.fixture(scope="module")
def tiny_catalog() -> Catalog:
    rows = [
        (movie_id, title, tuple(genres.split("|")), imdb, tmdb)
        for movie_id, title, genres, imdb, tmdb in [*TINY_MOVIES, *EXTRA_MOVIES]
    ]
    movies = pd.DataFrame(rows, columns=["movie_id", "title", "genres", "imdb_id", "tmdb_id"])
    return Catalog(movies)


def by_title(parsed: ParsedImport, catalog: Catalog) -> dict[str, float]:
    labels = {}
    for rating in parsed.ratings:
        movie = catalog.get(rating.movie_id)
        assert movie is not None
        labels[movie.label] = rating.rating
    return labels


def parse_file(name: str, catalog: Catalog) -> ParsedImport:
    return parse_export((DATA / name).read_bytes(), name, catalog)


def letterboxd_zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


# ---------------------------------------------------------------- Letterboxd


def test_letterboxd_ratings_match_by_title_and_year(tiny_catalog: Catalog) -> None:
    raw = (DATA / "letterboxd" / "letterboxd-ratings.csv").read_bytes()
    assert b"\r\n" in raw  # the file keeps Windows line ends
    parsed = parse_export(raw, "ratings.csv", tiny_catalog)

    assert parsed.format == "letterboxd"
    assert by_title(parsed, tiny_catalog) == {
        "The Matrix (1999)": 4.5,
        "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)": 4.0,
        "Amelie (Le Fabuleux destin d'Amélie Poulain) (2001)": 5.0,
        "Seven (a.k.a. Se7en) (1995)": 4.0,
        '"Great Performances" Cats (1998)': 1.5,
        "Heat (1995)": 5.0,
        "The Heat (2013)": 2.5,
        "Hamlet (1996)": 3.5,
        "Titanic (1997)": 3.0,  # Letterboxd says 1998: a year off by one still matches
    }
    assert parsed.skipped == {"bad rating": 1}  # Speed rated 7 stars


def test_letterboxd_rows_keep_their_line_and_date(tiny_catalog: Catalog) -> None:
    parsed = parse_file("letterboxd/letterboxd-ratings.csv", tiny_catalog)
    matrix = parsed.ratings[0]
    assert matrix == ImportedRating(movie_id=20, rating=4.5, rated_at=1704412800, line=2)


def test_letterboxd_unmatched_rows_say_why(tiny_catalog: Catalog) -> None:
    parsed = parse_file("letterboxd/letterboxd-ratings.csv", tiny_catalog)
    assert parsed.unmatched == (
        Unmatched(10, "Crash", 2005, "several matches: Crash (2004); Crash (2006)"),
        Unmatched(11, "Oppenheimer", 2023, "no match"),  # newer than the data set
        Unmatched(12, "千と千尋の神隠し", 2001, "no match"),
    )


def test_letterboxd_exact_year_wins_over_a_neighbour(tiny_catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + "2024-01-01,Crash,2004,u,4\n2024-01-01,Crash,2007,u,2\n").encode()
    parsed = parse_export(data, "ratings.csv", tiny_catalog)
    assert [(r.movie_id, r.rating) for r in parsed.ratings] == [(24, 4.0), (25, 2.0)]


def test_letterboxd_never_guesses_between_same_named_films(tiny_catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + "2024-01-01,Hamlet,,u,4\n2024-01-01,Hamlet,1970,u,2\n").encode()
    parsed = parse_export(data, "ratings.csv", tiny_catalog)
    assert parsed.ratings == ()
    assert [u.reason for u in parsed.unmatched] == [
        "several matches: Hamlet (1948); Hamlet (1996)",
        "no match",
    ]


def test_letterboxd_takes_a_unique_title_start_only_with_the_exact_year(
    tiny_catalog: Catalog,
) -> None:
    data = LETTERBOXD_HEADER + "2024-01-01,Star Wars,1977,u,5\n2024-01-01,Star Wars,1978,u,1\n"
    parsed = parse_export(data.encode(), "ratings.csv", tiny_catalog)
    assert [(r.movie_id, r.rating) for r in parsed.ratings] == [(26, 5.0)]
    assert [(u.title, u.year, u.reason) for u in parsed.unmatched] == [
        ("Star Wars", 1978, "no match")
    ]


def test_letterboxd_long_titles_match_a_year_off(tiny_catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + f"2024-01-01,{STRANGELOVE},1965,u,5\n").encode()
    assert [r.movie_id for r in parse_export(data, "r.csv", tiny_catalog).ratings] == [27]


def test_letterboxd_reads_trailing_article_titles(tiny_catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + '2024-01-01,"Matrix, The",1999,u,4\n').encode()
    assert [r.movie_id for r in parse_export(data, "r.csv", tiny_catalog).ratings] == [20]


def test_letterboxd_in_cp1252_is_decoded(tiny_catalog: Catalog) -> None:
    raw = (DATA / "letterboxd-cp1252.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    parsed = parse_export(raw, "ratings.csv", tiny_catalog)
    assert [r.movie_id for r in parsed.ratings] == [8]
    assert [u.title for u in parsed.unmatched] == ["Café Society"]


def test_diary_latest_entry_wins(tiny_catalog: Catalog) -> None:
    parsed = parse_file("letterboxd/diary.csv", tiny_catalog)
    assert parsed.format == "letterboxd-diary"
    assert by_title(parsed, tiny_catalog) == {
        "Casablanca (1942)": 4.5,  # latest Watched Date, though not the last line
        "Die Hard (1988)": 3.0,  # same Watched Date: the later Date wins
        "The Matrix (1999)": 1.0,
        "The Notebook (2004)": 2.5,
    }
    assert parsed.skipped == {"no rating": 2, "older diary entry": 3}


def test_diary_ties_fall_back_to_line_order(tiny_catalog: Catalog) -> None:
    rows = "2023-01-01,Heat,1995,u,2,,,2023-01-01\n2023-01-01,Heat,1995,u,4,,,2023-01-01\n"
    parsed = parse_export((DIARY_HEADER + rows).encode(), "diary.csv", tiny_catalog)
    assert [(r.rating, r.line) for r in parsed.ratings] == [(4.0, 3)]


def test_letterboxd_zip_merges_ratings_and_diary(tiny_catalog: Catalog) -> None:
    folder = "letterboxd-someone-2026-11-28-06-00-utc"
    data = letterboxd_zip(
        {
            f"{folder}/ratings.csv": (DATA / "letterboxd" / "letterboxd-ratings.csv").read_bytes(),
            f"{folder}/diary.csv": (DATA / "letterboxd" / "diary.csv").read_bytes(),
            f"{folder}/watched.csv": (DATA / "letterboxd" / "watched.csv").read_bytes(),
            f"{folder}/deleted/ratings.csv": (LETTERBOXD_HEADER + "2020-01-01,Heat,1995,u,1\n"),
        }
    )
    parsed = parse_export(data, "letterboxd-someone-2026-11-28-06-00-utc.zip", tiny_catalog)

    assert parsed.format == "letterboxd"
    titles = by_title(parsed, tiny_catalog)
    assert titles["The Matrix (1999)"] == 4.5  # ratings.csv wins over the diary's 1 star
    assert titles["Heat (1995)"] == 5.0  # the deleted/ copy is ignored
    assert titles["Casablanca (1942)"] == 4.5  # only rated in the diary
    assert titles["Die Hard (1988)"] == 3.0
    assert len(titles) == 12
    assert parsed.skipped["also in ratings.csv"] == 1


def test_diary_alone_in_a_zip_is_read(tiny_catalog: Catalog) -> None:
    data = letterboxd_zip({"diary.csv": (DATA / "letterboxd" / "diary.csv").read_bytes()})
    assert parse_export(data, "export.zip", tiny_catalog).format == "letterboxd-diary"


# ---------------------------------------------------------------- IMDb


def test_imdb_matches_by_id_and_halves_the_rating(tiny_catalog: Catalog) -> None:
    raw = (DATA / "imdb-ratings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, as Excel writes
    parsed = parse_export(raw, "ratings.csv", tiny_catalog)

    assert parsed.format == "imdb"
    assert by_title(parsed, tiny_catalog) == {
        "Heat (1995)": 4.5,
        "Die Hard (1988)": 5.0,
        "The Terminator (1984)": 4.0,  # a TV movie is still a film
        "Aliens (1986)": 1.5,  # so is a short
    }
    assert parsed.skipped == {
        "TV series": 1,
        "TV episode": 1,
        "TV mini-series": 1,
        "bad rating": 1,
        "no rating": 1,
    }
    assert parsed.unmatched == (Unmatched(9, "Oppenheimer", 2023, "no match"),)
    assert parsed.ratings[0].rated_at == 1706745600  # 2024-02-01


def test_imdb_old_export_without_dates_is_read(tiny_catalog: Catalog) -> None:
    parsed = parse_file("imdb-old.csv", tiny_catalog)
    assert [(r.movie_id, r.rating, r.rated_at) for r in parsed.ratings] == [
        (7, 3.0, None),
        (11, 4.0, None),
    ]


def test_imdb_in_cp1252_keeps_accented_titles(tiny_catalog: Catalog) -> None:
    parsed = parse_file("imdb-cp1252.csv", tiny_catalog)
    assert [r.movie_id for r in parsed.ratings] == [8, 9]
    assert [(u.title, u.year) for u in parsed.unmatched] == [("Café Society", 2016)]


@pytest.mark.parametrize("kind", ["tvEpisode", "tvSeries", "podcastEpisode", "TV Mini Series"])
def test_imdb_api_style_title_types_are_skipped(tiny_catalog: Catalog, kind: str) -> None:
    data = f"Const,Your Rating,Title Type\ntt0113277,8,{kind}\n".encode()
    parsed = parse_export(data, "x.csv", tiny_catalog)
    assert parsed.ratings == ()
    assert sum(parsed.skipped.values()) == 1


def test_imdb_saved_by_a_spreadsheet_with_semicolons_is_read(tiny_catalog: Catalog) -> None:
    data = "Const;Your Rating;Title;Title Type;Year\r\ntt0113277;8;Heat;Movie;1995\r\n"
    parsed = parse_export(data.encode("cp1252"), "ratings.csv", tiny_catalog)
    assert [(r.movie_id, r.rating) for r in parsed.ratings] == [(1, 4.0)]


# ---------------------------------------------------------------- /export round trip


def test_moviebot_export_round_trips(tiny_catalog: Catalog) -> None:
    parsed = parse_file("moviebot-export.csv", tiny_catalog)
    assert parsed.format == "moviebot"
    assert [(r.movie_id, r.rating, r.rated_at, r.line) for r in parsed.ratings] == [
        (8, 5.0, 1700000100, 3),
        (1, 3.0, 1700000400, 6),  # the later of the two Heat rows
    ]
    assert parsed.unmatched == (Unmatched(4, 'Gone, "Quoted" Film', 2030, "no match"),)
    assert parsed.skipped == {"bad rating": 1, "duplicate": 1}


def test_unmatched_csv_lists_rows_to_check(tiny_catalog: Catalog) -> None:
    text = unmatched_csv(parse_file("moviebot-export.csv", tiny_catalog))
    assert list(csv.reader(io.StringIO(text))) == [
        ["line", "title", "year", "reason"],
        ["4", 'Gone, "Quoted" Film', "2030", "no match"],
    ]


def test_unmatched_csv_defuses_spreadsheet_formulas() -> None:
    parsed = ParsedImport("moviebot", (), (Unmatched(2, "=HYPERLINK(1)", None, "no match"),), {})
    assert unmatched_csv(parsed).splitlines()[1] == "2,'=HYPERLINK(1),,no match"


# ---------------------------------------------------------------- refusals


def refusal(data: bytes, catalog: Catalog, name: str = "upload.csv") -> str:
    with pytest.raises(ImportFormatError) as caught:
        parse_export(data, name, catalog)
    assert isinstance(caught.value, UserFacingError)
    message = str(caught.value)
    assert ". " not in message  # one sentence
    assert message.endswith(".")
    return message


def test_too_big_is_refused_before_decoding(tiny_catalog: Catalog) -> None:
    message = refusal(b"\xff" * (MAX_BYTES + 1), tiny_catalog)
    assert "larger than 2 MB" in message


def test_too_many_rows_is_refused(tiny_catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + "2024-01-01,Heat,1995,u,4\n" * (MAX_ROWS + 1)).encode()
    assert len(data) < MAX_BYTES
    assert "more than 20,000 rows" in refusal(data, tiny_catalog)


@pytest.mark.parametrize("data", [b"", b"  \r\n\n", b"\xef\xbb\xbf\n"])
def test_empty_file_is_refused(tiny_catalog: Catalog, data: bytes) -> None:
    assert "empty" in refusal(data, tiny_catalog)


def test_binary_file_is_refused(tiny_catalog: Catalog) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    assert "isn't a text file" in refusal(png, tiny_catalog, "poster.png")


def test_utf16_is_refused_with_a_hint(tiny_catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + "2024-01-01,Heat,1995,u,4\n").encode("utf-16")
    assert "UTF-8" in refusal(data, tiny_catalog)


def test_text_in_neither_utf8_nor_cp1252_is_refused(tiny_catalog: Catalog) -> None:
    data = LETTERBOXD_HEADER.encode() + b"2024-01-01,\x81\x8d\x9d,1995,u,4\n"
    assert "neither UTF-8 nor Windows-1252" in refusal(data, tiny_catalog)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("not-an-export.csv", "don't recognise the columns"),
        ("movielens-layout.csv", "don't recognise the columns"),
        ("letterboxd/watched.csv", "without ratings"),
    ],
)
def test_unrecognised_header_is_refused(tiny_catalog: Catalog, name: str, hint: str) -> None:
    message = refusal((DATA / name).read_bytes(), tiny_catalog, name)
    assert hint in message
    assert "Letterboxd" in message


def test_refusals_never_echo_the_file_name(tiny_catalog: Catalog) -> None:
    message = refusal(b"Title,Year\nHeat,1995\n", tiny_catalog, "@everyone **hi**.csv")
    assert "@" not in message
    assert "everyone" not in message


def test_a_bad_file_inside_a_zip_is_named(tiny_catalog: Catalog) -> None:
    data = letterboxd_zip({"export/diary.csv": b"\n\n"})
    message = refusal(data, tiny_catalog, "export.zip")
    assert message.startswith("The diary.csv in that zip is empty")


def test_format_comes_from_the_header_not_the_name(tiny_catalog: Catalog) -> None:
    raw = (DATA / "imdb-ratings.csv").read_bytes()
    assert parse_export(raw, "letterboxd-diary.zip", tiny_catalog).format == "imdb"
    refusal((DATA / "not-an-export.csv").read_bytes(), tiny_catalog, "ratings.csv")


def test_zip_without_ratings_or_diary_is_refused(tiny_catalog: Catalog) -> None:
    data = letterboxd_zip({"watched.csv": b"Date,Name,Year,Letterboxd URI\n"})
    assert "no ratings.csv or diary.csv" in refusal(data, tiny_catalog, "export.zip")


def test_zip_bomb_is_refused(tiny_catalog: Catalog) -> None:
    data = letterboxd_zip({"ratings.csv": LETTERBOXD_HEADER.encode() + b" " * 21_000_000})
    assert len(data) < MAX_BYTES
    assert "unpacks to more than 20 MB" in refusal(data, tiny_catalog, "export.zip")


def test_damaged_zip_is_refused(tiny_catalog: Catalog) -> None:
    data = letterboxd_zip({"ratings.csv": LETTERBOXD_HEADER.encode()})
    assert "damaged" in refusal(data[:40], tiny_catalog, "export.zip")


def test_bad_ratings_are_counted_not_fatal(tiny_catalog: Catalog) -> None:
    rows = "".join(f"2024-01-01,Heat,1995,u,{value}\n" for value in ("0", "5.5", "4.2", "x", "-1"))
    parsed = parse_export((LETTERBOXD_HEADER + rows).encode(), "r.csv", tiny_catalog)
    assert parsed.ratings == ()
    assert parsed.skipped == {"bad rating": 5}


# ---------------------------------------------------------------- the real catalog


def test_well_known_letterboxd_rows_match_the_real_catalog(catalog: Catalog) -> None:
    rows = [
        "2024-01-01,The Shawshank Redemption,1994,u,5",
        "2024-01-01,Amélie,2001,u,4.5",
        "2024-01-01,Se7en,1995,u,4",
        "2024-01-01,The Matrix,1999,u,4",
        "2024-01-01,Léon: The Professional,1994,u,4",
        "2024-01-01,Spirited Away,2001,u,5",
        "2024-01-01,Barbie,2023,u,3",
    ]
    parsed = parse_export(
        ("\n".join([LETTERBOXD_HEADER.strip(), *rows]) + "\n").encode(), "r.csv", catalog
    )
    labels = [m.label for m in (catalog.get(r.movie_id) for r in parsed.ratings) if m]
    assert labels == [
        "The Shawshank Redemption (1994)",
        "Amelie (Le Fabuleux destin d'Amélie Poulain) (2001)",
        "Seven (a.k.a. Se7en) (1995)",
        "The Matrix (1999)",
        "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)",
        "Spirited Away (Sen to Chihiro no kamikakushi) (2001)",
    ]
    assert [(u.title, u.reason) for u in parsed.unmatched] == [("Barbie", "no match")]


def test_imdb_ids_match_the_real_catalog(catalog: Catalog) -> None:
    data = (
        "Const,Your Rating,Date Rated,Title,Title Type,Year\n"
        "tt0111161,10,2024-01-01,The Shawshank Redemption,Movie,1994\n"
        "tt0211915,8,2024-01-01,Amélie,Movie,2001\n"
        "tt15398776,9,2024-01-01,Oppenheimer,Movie,2023\n"
    ).encode()
    parsed = parse_export(data, "ratings.csv", catalog)
    assert [(r.movie_id, r.rating) for r in parsed.ratings] == [(318, 5.0), (4973, 4.0)]
    assert [u.title for u in parsed.unmatched] == ["Oppenheimer"]


def test_films_listed_twice_by_movielens_are_named_with_their_ids(catalog: Catalog) -> None:
    data = (LETTERBOXD_HEADER + "2024-01-01,Emma,1996,u,4\n").encode()
    (unmatched,) = parse_export(data, "ratings.csv", catalog).unmatched
    assert unmatched.reason.startswith("several matches: Emma (1996) (id ")
