"""Turn a member's exported ratings (Letterboxd, IMDb, or this bot's /export) into our ratings.

Pure logic: bytes in, matched MovieLens ratings out; no database and no Discord. The format is
recognised by the CSV header row, never by the file name, and a Letterboxd export may arrive as
the whole ``.zip`` Letterboxd hands out. Every refusal is an :class:`ImportFormatError` whose text
is one sentence telling the member what to upload instead.

Matching never guesses: an IMDb row matches through its ``tt`` id, an /export row through its
MovieLens id, and a Letterboxd row (title and year only) through the catalog's search with the
same normalisation members get when they type a title. A row that names no movie, or several,
is reported back as unmatched.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from bot.errors import UserFacingError
from recommender.catalog import (
    EXACT_ALT_BARE,
    STARTS_WITH,
    Catalog,
    Movie,
    fold,
    natural_order,
    split_title,
)

log = logging.getLogger(__name__)

MAX_BYTES = 2_000_000
MAX_ROWS = 20_000
MAX_UNZIPPED_BYTES = 10 * MAX_BYTES
MAX_SEARCH = 50  # search hits considered per Letterboxd row (there are five Hamlets)

WHAT_TO_UPLOAD = (
    "your Letterboxd export (the .zip, or its ratings.csv or diary.csv), "
    "your IMDb ratings CSV, or a CSV from /export"
)

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_AKA = re.compile(r"^(?:a\.k\.a\.|aka)\s+", re.IGNORECASE)
_IMDB_ID = re.compile(r"^tt(\d{1,10})$", re.IGNORECASE)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# IMDb title types that are not films, by their folded spelling (export and API spellings).
_NOT_FILMS = {
    "tvseries": "TV series",
    "tvminiseries": "TV mini-series",
    "tvepisode": "TV episode",
    "tvpilot": "TV episode",
    "podcastseries": "podcast",
    "podcastepisode": "podcast",
    "videogame": "video game",
    "musicvideo": "music video",
}


class ImportFormatError(UserFacingError):
    """The upload is not an export we can read; ``str(error)`` says what to upload instead."""


@dataclass(frozen=True)
class ImportedRating:
    """One matched rating: MovieLens movie id, stars (0.5-5), when rated (Unix time), its line.

    ``line`` is the row's first line in the file it came from (header = line 1); in a
    Letterboxd zip that is ratings.csv, or diary.csv for films rated only there.
    """

    movie_id: int
    rating: float
    rated_at: int | None
    line: int


@dataclass(frozen=True)
class Unmatched:
    """A row naming no movie of the catalog, or several (``reason`` says which).

    ``line`` counts as in :class:`ImportedRating`.
    """

    line: int
    title: str
    year: int | None
    reason: str


@dataclass(frozen=True)
class ParsedImport:
    """What an export held: matched ratings (one per movie), unmatched rows, skipped counts."""

    format: str
    ratings: tuple[ImportedRating, ...]
    unmatched: tuple[Unmatched, ...]
    skipped: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------- reading the bytes


def _refuse(message: str) -> ImportFormatError:
    return ImportFormatError(message)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _decode(data: bytes, name: str) -> str:
    """Return the text of a CSV in UTF-8 (with or without BOM) or cp1252, else refuse it."""
    if data.startswith(_UTF16_BOMS):
        raise _refuse(
            f"{_cap(name)} is saved as UTF-16, which I can't read; export it again as UTF-8 CSV, "
            f"or upload {WHAT_TO_UPLOAD}."
        )
    if b"\x00" in data:
        raise _refuse(f"{_cap(name)} isn't a text file; please upload {WHAT_TO_UPLOAD}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise _refuse(
                f"I can't read the text of {name} (it is neither UTF-8 nor Windows-1252); "
                "please upload the export exactly as the site made it, or save it as UTF-8 CSV."
            ) from None
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\r\n")
    if controls > max(2, len(text) // 100):
        raise _refuse(f"{_cap(name)} isn't a text file; please upload {WHAT_TO_UPLOAD}.")
    return text


@dataclass(frozen=True)
class _Table:
    """A CSV's header (folded names -> column) and its data rows with their first line number."""

    name: str
    header: dict[str, int]
    rows: tuple[tuple[int, tuple[str, ...]], ...]

    def cell(self, row: Sequence[str], *names: str) -> str:
        """Return the first present column of ``names`` in ``row``, stripped ("" if absent)."""
        for column in names:
            index = self.header.get(column)
            if index is not None and index < len(row):
                return row[index].strip()
        return ""


def _header_key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").strip().casefold().split())


def _delimiter(text: str) -> str:
    """Return the header row's separator: a comma, or the ``;`` / tab some spreadsheets save."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def _read_table(data: bytes, name: str) -> _Table:
    """Decode and split a CSV into its header and rows, enforcing the size limits."""
    text = _decode(data, name)
    if not text.strip():
        raise _refuse(f"{_cap(name)} is empty; please upload {WHAT_TO_UPLOAD}.")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header: dict[str, int] | None = None
    rows: list[tuple[int, tuple[str, ...]]] = []
    line = 1
    try:
        for cells in reader:
            first_line, line = line, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = {}
                for index, cell in enumerate(cells):
                    header.setdefault(_header_key(cell), index)
                continue
            rows.append((first_line, tuple(cells)))
            if len(rows) > MAX_ROWS:
                raise _refuse(
                    f"{_cap(name)} has more than {MAX_ROWS:,} rows; please split it into files "
                    f"of at most {MAX_ROWS:,} ratings and upload them one at a time."
                )
    except csv.Error:
        raise _refuse(
            f"{_cap(name)} isn't a CSV I can read (line {line}); please upload {WHAT_TO_UPLOAD}."
        ) from None
    if header is None:
        raise _refuse(f"{_cap(name)} is empty; please upload {WHAT_TO_UPLOAD}.")
    return _Table(name, header, tuple(rows))


def _read_zip(data: bytes) -> dict[str, bytes]:
    """Return the bytes of ``ratings.csv`` and ``diary.csv`` from a Letterboxd export zip.

    The shallowest copy of each wins (Letterboxd also ships ``deleted/`` and ``orphaned/``
    copies, which are ignored), at any folder depth, so a re-zipped folder works too.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise _refuse(
            f"That zip file is damaged or not a zip I can open; please upload {WHAT_TO_UPLOAD}."
        ) from None
    if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
        raise _refuse(_too_big_unzipped())
    chosen: dict[str, zipfile.ZipInfo] = {}
    for member in members:
        path = PurePosixPath(member.filename.replace("\\", "/"))
        wanted = path.name.casefold()
        folders = {part.casefold() for part in path.parts[:-1]}
        if member.is_dir() or wanted not in {"ratings.csv", "diary.csv"}:
            continue
        if folders & {"deleted", "orphaned", "__macosx"}:
            continue
        best = chosen.get(wanted)
        if best is None or len(path.parts) < len(PurePosixPath(best.filename).parts):
            chosen[wanted] = member
    if not chosen:
        raise _refuse(
            "That zip has no ratings.csv or diary.csv in it; please upload the .zip exactly as "
            "Letterboxd sent it, or your IMDb ratings CSV, or a CSV from /export."
        )
    out: dict[str, bytes] = {}
    budget = MAX_UNZIPPED_BYTES
    for wanted, member in sorted(chosen.items()):
        try:
            with archive.open(member) as handle:
                # Declared sizes can lie; never read more than the budget.
                content = handle.read(budget + 1)
        except (zipfile.BadZipFile, RuntimeError, OSError, NotImplementedError, EOFError):
            raise _refuse(
                f"I can't unpack {wanted} from that zip (damaged or password-protected); "
                f"please upload {WHAT_TO_UPLOAD}."
            ) from None
        budget -= len(content)
        if budget < 0:
            raise _refuse(_too_big_unzipped())
        out[wanted] = content
    return out


def _too_big_unzipped() -> str:
    return (
        f"That zip unpacks to more than {MAX_UNZIPPED_BYTES // 1_000_000} MB; please upload the "
        "Letterboxd export zip as it was, or just its ratings.csv."
    )


# ---------------------------------------------------------------------- field parsing


def _stars(text: str, *, scale: float = 1.0) -> float | None:
    """Return half-star ratings 0.5-5 from ``text`` / ``scale``, or None when out of range."""
    try:
        value = float(text.replace(",", ".")) / scale
    except ValueError:
        return None
    if not 0.5 <= value <= 5.0 or (value * 2) != int(value * 2):
        return None
    return value


def _year(text: str) -> int | None:
    text = text.strip()
    return int(text[:4]) if len(text) >= 4 and text[:4].isdigit() else None


def _date_seconds(text: str) -> int | None:
    """Return the Unix time of a ``YYYY-MM-DD`` date at midnight UTC, or None."""
    match = _DATE.match(text.strip())
    if match is None:
        return None
    try:
        year, month, day_of_month = (int(g) for g in match.groups())
        day = datetime(year, month, day_of_month, tzinfo=UTC)
    except ValueError:
        return None
    return int(day.timestamp())


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None


# ---------------------------------------------------------------------- matching


@dataclass
class _Result:
    """Ratings found so far, by movie, plus what could not be used."""

    ratings: dict[int, tuple[int, ImportedRating]] = field(default_factory=dict)
    unmatched: list[Unmatched] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, rating: ImportedRating, priority: int = 0) -> None:
        """Keep one rating per movie: higher ``priority``, then the later rating, then line."""
        held = self.ratings.get(rating.movie_id)
        if held is not None:
            self.skip("duplicate")
            if _order(held[0], held[1]) > _order(priority, rating):
                return
        self.ratings[rating.movie_id] = (priority, rating)

    def parsed(self, format_name: str) -> ParsedImport:
        ratings = sorted((r for _, r in self.ratings.values()), key=lambda r: r.line)
        return ParsedImport(
            format=format_name,
            ratings=tuple(ratings),
            unmatched=tuple(sorted(self.unmatched, key=lambda u: u.line)),
            skipped=dict(self.skipped),
        )


def _order(priority: int, rating: ImportedRating) -> tuple[int, int, int]:
    return (priority, rating.rated_at if rating.rated_at is not None else -1, rating.line)


def _several(movies: Sequence[Movie]) -> str:
    movies = sorted(movies, key=lambda m: (m.year or 0, m.movie_id))
    labels = [m.label for m in movies]
    if len(set(labels)) < len(labels):  # MovieLens lists a few films twice
        labels = [f"{m.label} (id {m.movie_id})" for m in movies]
    shown = "; ".join(labels[:5])
    more = f" and {len(movies) - 5} more" if len(movies) > 5 else ""
    return f"several matches: {shown}{more}"


def _same_title(movie: Movie, folded: str) -> bool:
    """Return True if a title of ``movie`` folds to ``folded``.

    Search scores only the first words of a long query, so a title of more than a dozen words
    ranks as a prefix match of itself; this tells the two apart.
    """
    main, alternates, _ = split_title(movie.title)
    return any(fold(_AKA.sub("", name)) == folded for name in (main, *alternates))


class _TitleMatcher:
    """Match a (title, year) pair to one catalog movie, or explain why not. Never guesses.

    Candidates are the catalog search hits whose title (main or alternate, with or without its
    article) equals the row's title after folding; their year must be within one of the row's.
    If exactly one has the exact year, it wins. Only when no title is equal does a title the
    row's title starts (``Star Wars`` for ``Star Wars: Episode IV - A New Hope``) count, and
    then only with the exact year and a single candidate.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._cache: dict[tuple[str, int | None], Movie | str] = {}

    def match(self, title: str, year: int | None) -> Movie | str:
        """Return the movie, or the reason there is none ("no match", "several matches: ...")."""
        query = natural_order(title)
        key = (fold(query), year)
        if key not in self._cache:
            self._cache[key] = self._match(query, year)
        return self._cache[key]

    def _match(self, query: str, year: int | None) -> Movie | str:
        hits = self.catalog.search(query, MAX_SEARCH, typos=False)
        folded = fold(query)
        exact = [
            h.movie
            for h in hits
            if h.score >= EXACT_ALT_BARE
            or (h.score >= STARTS_WITH and _same_title(h.movie, folded))
        ]
        if year is None:
            if len(exact) == 1:
                return exact[0]
            return _several(exact) if exact else "no match"
        near = [m for m in exact if m.year is not None and abs(m.year - year) <= 1]
        same_year = [m for m in near if m.year == year]
        if len(same_year) == 1:
            return same_year[0]
        if len(near) == 1:
            return near[0]
        if near:
            return _several(near)
        if exact:
            return "no match"
        starts = [
            h.movie
            for h in hits
            if STARTS_WITH <= h.score < EXACT_ALT_BARE and h.movie.year == year
        ]
        if len(starts) == 1:
            return starts[0]
        return _several(starts) if starts else "no match"


# ---------------------------------------------------------------------- the formats


_FilmKey = tuple[str, int | None]
_Entry = tuple[int, str, int | None, float, int | None]  # line, name, year, stars, rated_at


def _letterboxd_key(name: str, year: int | None) -> _FilmKey:
    return fold(natural_order(name)), year


def _letterboxd_rows(table: _Table, result: _Result, *, diary: bool) -> dict[_FilmKey, _Entry]:
    """Return one rated entry per film; count the rows left out.

    In a diary the latest entry wins: by Watched Date, then Date, then line order.
    """
    chosen: dict[_FilmKey, tuple[tuple[str, str, int], _Entry]] = {}
    for line, row in table.rows:
        name = table.cell(row, "name")
        if not name:
            result.skip("no title")
            continue
        raw_rating = table.cell(row, "rating")
        if not raw_rating:
            result.skip("no rating")
            continue
        stars = _stars(raw_rating)
        if stars is None:
            result.skip("bad rating")
            continue
        year = _year(table.cell(row, "year"))
        logged = table.cell(row, "date")
        watched = table.cell(row, "watched date") if diary else ""
        entry: _Entry = (line, name, year, stars, _date_seconds(logged))
        order = (watched, logged, line)
        key = _letterboxd_key(name, year)
        held = chosen.get(key)
        if held is not None:
            if diary:
                result.skip("older diary entry")
            else:
                result.skip("duplicate")
            if held[0] > order:
                continue
        chosen[key] = (order, entry)
    return {key: entry for key, (_, entry) in chosen.items()}


def _match_letterboxd(
    entries: Sequence[_Entry],
    matcher: _TitleMatcher,
    result: _Result,
    priority: int,
) -> None:
    for line, name, year, stars, rated_at in entries:
        found = matcher.match(name, year)
        if isinstance(found, str):
            result.unmatched.append(Unmatched(line, name, year, found))
        else:
            result.add(ImportedRating(found.movie_id, stars, rated_at, line), priority)


def _parse_letterboxd(
    ratings: _Table | None, diary: _Table | None, catalog: Catalog
) -> ParsedImport:
    """Merge Letterboxd's ratings.csv and diary.csv; ratings.csv wins for films in both."""
    result = _Result()
    matcher = _TitleMatcher(catalog)
    rated = _letterboxd_rows(ratings, result, diary=False) if ratings is not None else {}
    logged = _letterboxd_rows(diary, result, diary=True) if diary is not None else {}
    only_in_diary = [entry for key, entry in logged.items() if key not in rated]
    if len(logged) > len(only_in_diary):
        result.skipped["also in ratings.csv"] = len(logged) - len(only_in_diary)
    _match_letterboxd(list(rated.values()), matcher, result, priority=1)
    _match_letterboxd(only_in_diary, matcher, result, priority=0)
    return result.parsed("letterboxd" if ratings is not None else "letterboxd-diary")


def _parse_imdb(table: _Table, catalog: Catalog) -> ParsedImport:
    """Match IMDb rows by their ``tt`` id; 1-10 ratings become 0.5-5 stars."""
    by_imdb: dict[int, list[Movie]] = {}
    for movie in catalog:
        if movie.imdb_id:
            by_imdb.setdefault(movie.imdb_id, []).append(movie)
    result = _Result()
    for line, row in table.rows:
        kind = fold(table.cell(row, "title type")).replace(" ", "")
        if kind in _NOT_FILMS:
            result.skip(_NOT_FILMS[kind])
            continue
        raw_rating = table.cell(row, "your rating", "you rated")
        if not raw_rating:
            result.skip("no rating")
            continue
        stars = _stars(raw_rating, scale=2.0)
        if stars is None or float(raw_rating.replace(",", ".")) % 1:
            result.skip("bad rating")
            continue
        const = table.cell(row, "const")
        title = table.cell(row, "title", "original title") or const
        year = _year(table.cell(row, "year"))
        id_match = _IMDB_ID.match(const)
        if id_match is None:
            result.unmatched.append(Unmatched(line, title, year, "no IMDb id"))
            continue
        movies = by_imdb.get(int(id_match.group(1)), [])
        if len(movies) != 1:
            reason = _several(movies) if movies else "no match"
            result.unmatched.append(Unmatched(line, title, year, reason))
            continue
        rated_at = _date_seconds(table.cell(row, "date rated", "created"))
        result.add(ImportedRating(movies[0].movie_id, stars, rated_at, line))
    return result.parsed("imdb")


def _parse_moviebot(table: _Table, catalog: Catalog) -> ParsedImport:
    """Read this bot's /export back: the movie id must be in the catalog."""
    result = _Result()
    for line, row in table.rows:
        label = table.cell(row, "title")
        title, _, year = split_title(label) if label else ("", (), None)
        raw_rating = table.cell(row, "rating")
        if not raw_rating:
            result.skip("no rating")
            continue
        stars = _stars(raw_rating)
        if stars is None:
            result.skip("bad rating")
            continue
        movie_id = _int(table.cell(row, "movieid"))
        if movie_id is None or movie_id not in catalog:
            shown = label or table.cell(row, "movieid")
            result.unmatched.append(Unmatched(line, title or shown, year, "no match"))
            continue
        result.add(ImportedRating(movie_id, stars, _int(table.cell(row, "timestamp")), line))
    return result.parsed("moviebot")


_LETTERBOXD = {"date", "name", "year", "rating"}
_IMDB = {"const", "your rating"}
_IMDB_OLD = {"const", "you rated"}
_MOVIEBOT = {"movieid", "title", "rating"}


def _kind(table: _Table) -> str:
    """Return which export ``table`` is, by its header row, or refuse it."""
    names = set(table.header)
    if names >= _LETTERBOXD:
        return "letterboxd-diary" if "watched date" in names else "letterboxd"
    if names >= _IMDB or names >= _IMDB_OLD:
        return "imdb"
    if names >= _MOVIEBOT:
        return "moviebot"
    if {"date", "name", "year"} <= names:
        raise _refuse(
            f"{_cap(table.name)} is a Letterboxd list without ratings; please upload the whole "
            "Letterboxd export .zip, or its ratings.csv or diary.csv."
        )
    raise _refuse(f"I don't recognise the columns of {table.name}; please upload {WHAT_TO_UPLOAD}.")


def _parse_zip(data: bytes, catalog: Catalog) -> ParsedImport:
    files = _read_zip(data)
    tables = {
        name: _read_table(content, f"the {name} in that zip") for name, content in files.items()
    }
    kinds = {name: _kind(table) for name, table in tables.items()}
    letterboxd = {n for n, k in kinds.items() if k.startswith("letterboxd")}
    if letterboxd != set(tables):
        # A zipped IMDb or /export CSV: read the first one on its own.
        name = next(n for n in sorted(tables) if n not in letterboxd)
        return _parse_table(tables[name], catalog)
    ratings = next((tables[n] for n in letterboxd if kinds[n] == "letterboxd"), None)
    diary = next((tables[n] for n in letterboxd if kinds[n] == "letterboxd-diary"), None)
    return _parse_letterboxd(ratings, diary, catalog)


def _parse_table(table: _Table, catalog: Catalog) -> ParsedImport:
    kind = _kind(table)
    if kind == "imdb":
        return _parse_imdb(table, catalog)
    if kind == "moviebot":
        return _parse_moviebot(table, catalog)
    if kind == "letterboxd":
        return _parse_letterboxd(table, None, catalog)
    return _parse_letterboxd(None, table, catalog)


def read_export(name: str) -> tuple[bytes, int]:
    """Read an export file a member named, up to the limit plus one byte; return it and its size.

    The size is the file's real size, so a 3 MB file is refused as 3 MB without reading it all.
    """
    with Path(name).expanduser().open("rb") as fh:
        return fh.read(MAX_BYTES + 1), os.fstat(fh.fileno()).st_size


def parse_export(data: bytes, filename: str, catalog: Catalog) -> ParsedImport:
    """Parse an uploaded export into ratings of catalog movies, unmatched rows and skip counts.

    Parameters
    ----------
    data : bytes
        The uploaded file: a Letterboxd export zip, or a Letterboxd ``ratings.csv`` /
        ``diary.csv``, an IMDb ratings CSV, or this bot's /export CSV.
    filename : str
        Only logged; the format comes from the header row, and messages never echo the name.
    catalog : Catalog
        The movies ratings can be matched to.

    Raises
    ------
    ImportFormatError
        The upload is too big, empty, binary, in an unknown encoding, or not an export we know.
    """
    # The member's file name is never echoed back: it is theirs to fill with mentions.
    name = "that file"
    if len(data) > MAX_BYTES:
        raise _refuse(
            f"{_cap(name)} is larger than {MAX_BYTES // 1_000_000} MB; please upload only "
            f"{WHAT_TO_UPLOAD}."
        )
    if not data.strip():
        raise _refuse(f"{_cap(name)} is empty; please upload {WHAT_TO_UPLOAD}.")
    if data.startswith(_ZIP_MAGIC):
        parsed = _parse_zip(data, catalog)
    else:
        parsed = _parse_table(_read_table(data, name), catalog)
    log.info(
        "Parsed %r (format: %s): %d matched, %d unmatched, skipped %s",
        filename[:100],
        parsed.format,
        len(parsed.ratings),
        len(parsed.unmatched),
        parsed.skipped,
    )
    return parsed


def _safe_cell(text: str) -> str:
    """Keep a spreadsheet from reading a title as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def unmatched_csv(parsed: ParsedImport) -> str:
    """Return the unmatched rows as CSV (``line,title,year,reason``) for the member to check."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "title", "year", "reason"])
    for row in parsed.unmatched:
        year = "" if row.year is None else str(row.year)
        writer.writerow([row.line, _safe_cell(row.title), year, row.reason])
    return out.getvalue()
