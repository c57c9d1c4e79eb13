"""Load MovieLens data sets into normalized tables.

Two on-disk layouts are understood:

* the CSV layout of ``ml-latest-small``, ``ml-latest``, ``ml-25m`` and ``ml-32m``
  (``movies.csv``, ``ratings.csv``, ``links.csv``, ``tags.csv``);
* the ``ml-100k`` layout (``u.data``, ``u.item``, ``u.user``).

A source is a GroupLens data set name (downloaded once into the cache folder and checked against
the ``.md5`` file GroupLens publishes), a local ``.zip``, an extracted folder, or a URL
(``file://``, ``https://``). Both layouts end up in the same :class:`Dataset` shape.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
KNOWN_DATASETS = ("ml-latest-small", "ml-100k", "ml-latest", "ml-25m", "ml-32m")
DEFAULT_DATASET = "ml-latest-small"
DEFAULT_CACHE_DIR = Path("data")

# ml-100k lists genres as 19 flag columns in this order; names follow the CSV data sets.
ML100K_GENRES = (
    "(no genres listed)",
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_YEAR_RE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")

RATING_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")


class DataError(Exception):
    """A data set could not be found, fetched or read; the message says what to do."""


class ChecksumError(DataError):
    """A downloaded or local archive does not match its published MD5 checksum."""


class MalformedDataError(DataError):
    """A data file has a row that cannot be parsed."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        super().__init__(f"{file}, line {line}: {problem}")
        self.file = file
        self.line = line


@dataclass(frozen=True, eq=False)
class Dataset:
    """MovieLens tables in one normalized shape, whatever layout they came from.

    Attributes
    ----------
    name : str
        Data set name, e.g. ``"ml-latest-small"``.
    movies : pandas.DataFrame
        One row per movie: ``movie_id`` (int), ``title`` (raw MovieLens title, including the year),
        ``year`` (nullable Int), ``genres`` (tuple of str), ``imdb_id`` and ``tmdb_id``
        (nullable Int; missing where the data set has no links).
    ratings : pandas.DataFrame
        One row per rating: ``user_id`` (int), ``movie_id`` (int), ``rating`` (float32, 0.5-5.0),
        ``timestamp`` (int, Unix seconds).
    users : pandas.DataFrame or None
        Demographics where the data set has them (ml-100k), else ``None``.
    fingerprint : str
        A short hash of the ratings and movie ids; models record it to tell whether they were
        fitted on this exact data.
    """

    name: str
    movies: pd.DataFrame
    ratings: pd.DataFrame
    users: pd.DataFrame | None = None
    fingerprint: str = field(default="")

    @property
    def n_users(self) -> int:
        """Return the number of distinct users who rated anything."""
        return int(self.ratings["user_id"].nunique())


# --------------------------------------------------------------------------------------------
# Sources


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in {"http", "https", "file"}


def _file_url_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.request.url2pathname(parsed.path))


def md5_of(path: Path) -> str:
    """Return the hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_md5_file(text: str) -> str:
    """Return the digest from a GroupLens ``.md5`` file (BSD ``MD5 (x) = d`` or ``d  x`` format)."""
    match = re.search(r"\b([0-9a-fA-F]{32})\b", text)
    if match is None:
        raise DataError("The checksum file holds no MD5 digest.")
    return match.group(1).lower()


def verify_md5(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the MD5 digest ``expected``."""
    actual = md5_of(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path.name} is damaged or incomplete: its MD5 is {actual}, expected {expected}."
        )


def _open_url(url: str, timeout: float) -> IO[bytes]:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"Could not download {url} ({reason}). Without network access, download the zip "
            "elsewhere and set MOVIELENS_SOURCE (or --dataset) to its local path or file:// URL."
        ) from exc


def _download(url: str, dest: Path, *, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``dest`` through a temporary file, with a progress bar."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_url(url, timeout) as response:
            total = int(getattr(response, "headers", {}).get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fetch_text(url: str, timeout: float) -> str:
    with _open_url(url, timeout) as response:
        return response.read(4096).decode("ascii", errors="replace")


def fetch_dataset(
    name: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    *,
    base_url: str = GROUPLENS_URL,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Return the cached zip of a GroupLens data set, downloading and verifying it if needed.

    The published ``.md5`` is stored beside the zip, so later calls verify offline. A download
    whose checksum does not match is deleted and :class:`ChecksumError` is raised.
    """
    if name not in KNOWN_DATASETS:
        raise DataError(
            f"Unknown data set {name!r}. Known: {', '.join(KNOWN_DATASETS)}; "
            "or pass a path to a zip or folder, or a URL."
        )
    cache_dir = Path(cache_dir)
    zip_path = cache_dir / f"{name}.zip"
    md5_path = cache_dir / f"{name}.zip.md5"
    url = base_url.format(name=name)
    if zip_path.exists() and md5_path.exists():
        verify_md5(zip_path, parse_md5_file(md5_path.read_text()))
        return zip_path
    _download_verified(url, zip_path, timeout=timeout, progress=progress)
    return zip_path


def _download_verified(url: str, dest: Path, *, timeout: float, progress: bool) -> None:
    """Download ``url`` and its published ``.md5``; keep the file only if they agree.

    The checksum is stored beside the file (``dest.md5``), so later runs verify it offline.
    """
    expected = parse_md5_file(_fetch_text(url + ".md5", timeout))
    log.info("Downloading %s into %s", url, dest.parent)
    _download(url, dest, timeout=timeout, progress=progress)
    try:
        verify_md5(dest, expected)
    except ChecksumError:
        dest.unlink(missing_ok=True)
        raise
    dest.with_name(dest.name + ".md5").write_text(f"MD5 ({dest.name}) = {expected}\n")


def resolve_source(
    source: str | os.PathLike[str] | None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Turn a data set name, path or URL into a local zip or folder, verified where possible.

    A local zip with a ``.md5`` file beside it (as GroupLens publishes them) is verified against it.
    """
    if source is None or str(source) == "":
        source = DEFAULT_DATASET
    text = os.fspath(source)
    if text in KNOWN_DATASETS:
        return fetch_dataset(text, cache_dir, progress=progress, timeout=timeout)
    if _is_url(text):
        if text.startswith("file:"):
            path = _file_url_path(text)
        else:
            name = Path(urllib.parse.urlparse(text).path).name or "dataset.zip"
            path = Path(cache_dir) / name
            if not path.exists():
                _download_verified(text, path, timeout=timeout, progress=progress)
    else:
        path = Path(text).expanduser()
    if not path.exists():
        raise DataError(
            f"MovieLens data not found at {path}. Set MOVIELENS_SOURCE (or --dataset) to a "
            f"data set name ({', '.join(KNOWN_DATASETS)}), a zip, an extracted folder or a URL."
        )
    md5_path = path.with_name(path.name + ".md5")
    if path.is_file() and md5_path.exists():
        verify_md5(path, parse_md5_file(md5_path.read_text()))
    return path


# --------------------------------------------------------------------------------------------
# Reading


class _Files:
    """Uniform access to the files of a data set in a zip or a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}
        if root.is_file():
            try:
                self._zip = zipfile.ZipFile(root)
            except zipfile.BadZipFile as exc:
                raise DataError(f"{root} is not a readable zip archive.") from exc
            members = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            members = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
        for member in sorted(members, key=lambda n: n.count("/")):
            self._names.setdefault(Path(member).name, member)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def dataset_name(self) -> str:
        """Guess the data set's name from the folder or archive it came in."""
        anchor = next(iter(self._names.values()), "")
        parent = Path(anchor).parent.name
        if parent:
            return parent
        stem = self.root.name
        return stem[: -len(".zip")] if stem.endswith(".zip") else stem

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        member = self._names.get(name)
        if member is None:
            raise DataError(f"{self.root} has no {name}; is it a MovieLens data set?")
        if self._zip is not None:
            with self._zip.open(member) as fh:
                yield fh
        else:
            with (self.root / member).open("rb") as fh:
                yield fh

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _read_table(
    files: _Files,
    name: str,
    *,
    sep: str,
    columns: list[str],
    usecols: list[int] | None = None,
    header: bool,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a delimited file as strings, turning tokenizer errors into file-and-line messages."""
    with files.open(name) as fh:
        raw = fh.read()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MalformedDataError(name, line, f"not valid {encoding} text") from exc
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if header else None,
            names=columns if usecols is None else None,
            usecols=usecols,
            dtype=str,
            keep_default_na=False,
            engine="c" if len(sep) == 1 else "python",
            quotechar='"' if sep == "," else "\x00",
            on_bad_lines="error",
        )
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else 0
        raise MalformedDataError(name, line, f"wrong number of fields ({exc})") from exc
    if usecols is not None:
        frame.columns = pd.Index(columns)
    elif frame.shape[1] != len(columns):
        raise MalformedDataError(
            name, 1, f"expected {len(columns)} columns, found {frame.shape[1]}"
        )
    elif header:
        frame.columns = pd.Index(columns)
    return frame


def _numeric(
    frame: pd.DataFrame,
    column: str,
    file: str,
    header: bool,
    *,
    kind: str,
    allow_missing: bool = False,
) -> pd.Series:
    """Convert a string column to numbers, naming the first bad line if any."""
    values = frame[column].str.strip()
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & ~(allow_missing & (values == ""))
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        line = pos + (2 if header else 1)
        raise MalformedDataError(file, line, f"{column} is {values.iloc[pos]!r}, not a {kind}")
    return converted


def _check_ratings(ratings: pd.DataFrame, file: str, header: bool) -> None:
    values = ratings["rating"].to_numpy()
    bad = ~((values >= 0.5) & (values <= 5.0))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        line = pos + (2 if header else 1)
        raise MalformedDataError(file, line, f"rating {values[pos]} is outside 0.5-5")


def year_from_title(title: str) -> int | None:
    """Return the release year MovieLens appends to a title, e.g. ``Heat (1995)`` -> 1995."""
    match = _YEAR_RE.search(title)
    return int(match.group(1)) if match else None


def _fingerprint(movies: pd.DataFrame, ratings: pd.DataFrame) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(np.ascontiguousarray(movies["movie_id"].to_numpy(np.int64)).tobytes())
    for column in ("user_id", "movie_id", "rating"):
        digest.update(np.ascontiguousarray(ratings[column].to_numpy()).tobytes())
    return digest.hexdigest()[:16]


def _load_csv_layout(files: _Files) -> tuple[pd.DataFrame, pd.DataFrame, None]:
    movies_raw = _read_table(
        files, "movies.csv", sep=",", columns=["movie_id", "title", "genres"], header=True
    )
    movie_ids = _numeric(movies_raw, "movie_id", "movies.csv", True, kind="movie id")
    titles = movies_raw["title"].str.strip()
    genres = [
        tuple(g for g in text.split("|") if g and g != "(no genres listed)")
        for text in movies_raw["genres"]
    ]
    movies = pd.DataFrame(
        {
            "movie_id": movie_ids.astype(np.int64),
            "title": titles,
            "year": pd.array([year_from_title(t) for t in titles], dtype="Int64"),
            "genres": genres,
        }
    )
    if "links.csv" in files:
        links_raw = _read_table(
            files, "links.csv", sep=",", columns=["movie_id", "imdb_id", "tmdb_id"], header=True
        )
        links = pd.DataFrame(
            {
                "movie_id": _numeric(links_raw, "movie_id", "links.csv", True, kind="movie id"),
                "imdb_id": _numeric(
                    links_raw, "imdb_id", "links.csv", True, kind="number", allow_missing=True
                ).astype("Int64"),
                "tmdb_id": _numeric(
                    links_raw, "tmdb_id", "links.csv", True, kind="number", allow_missing=True
                ).astype("Int64"),
            }
        )
        movies = movies.merge(links, on="movie_id", how="left")
    else:
        movies["imdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")
        movies["tmdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")

    ratings = _read_ratings_csv(files)
    return movies, ratings, None


def _read_ratings_csv(files: _Files) -> pd.DataFrame:
    """Read ratings.csv fast with typed columns, falling back to a checked read on bad rows."""
    with files.open("ratings.csv") as fh:
        try:
            ratings = pd.read_csv(
                fh,
                dtype={
                    "userId": np.int64,
                    "movieId": np.int64,
                    "rating": np.float32,
                    "timestamp": np.int64,
                },
            )
            ratings.columns = pd.Index(list(RATING_COLUMNS))
            ok = len(ratings.columns) == 4
        except (ValueError, pd.errors.ParserError):
            ok = False
    if not ok:
        ratings = _checked_ratings(files, "ratings.csv", sep=",", header=True)
    _check_ratings(ratings, "ratings.csv", True)
    return ratings


def _checked_ratings(files: _Files, name: str, *, sep: str, header: bool) -> pd.DataFrame:
    """Read a ratings file cell by cell, naming the file and line of the first bad value."""
    raw = _read_table(files, name, sep=sep, columns=list(RATING_COLUMNS), header=header)
    return pd.DataFrame(
        {
            "user_id": _numeric(raw, "user_id", name, header, kind="user id"),
            "movie_id": _numeric(raw, "movie_id", name, header, kind="movie id"),
            "rating": _numeric(raw, "rating", name, header, kind="number"),
            "timestamp": _numeric(raw, "timestamp", name, header, kind="number"),
        }
    ).astype(
        {"user_id": np.int64, "movie_id": np.int64, "rating": np.float32, "timestamp": np.int64}
    )


def _load_100k_layout(files: _Files) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    ratings = _checked_ratings(files, "u.data", sep="\t", header=False)
    _check_ratings(ratings, "u.data", False)

    item_columns = ["movie_id", "title", "release", "video_release", "imdb_url", *ML100K_GENRES]
    items = _read_table(
        files, "u.item", sep="|", columns=item_columns, header=False, encoding="latin-1"
    )
    movie_ids = _numeric(items, "movie_id", "u.item", False, kind="movie id")
    flags = items[list(ML100K_GENRES)].to_numpy() == "1"
    titles = items["title"].str.strip()
    years = []
    for title, release in zip(titles, items["release"], strict=True):
        year = year_from_title(title)
        if year is None and len(release) >= 4 and release[-4:].isdigit():
            year = int(release[-4:])
        years.append(year)
    movies = pd.DataFrame(
        {
            "movie_id": movie_ids.astype(np.int64),
            "title": titles,
            "year": pd.array(years, dtype="Int64"),
            "genres": [
                tuple(g for g, on in zip(ML100K_GENRES[1:], row[1:], strict=True) if on)
                for row in flags
            ],
            "imdb_id": pd.array([pd.NA] * len(items), dtype="Int64"),
            "tmdb_id": pd.array([pd.NA] * len(items), dtype="Int64"),
        }
    )
    users = None
    if "u.user" in files:
        users = _read_table(
            files,
            "u.user",
            sep="|",
            columns=["user_id", "age", "gender", "occupation", "zip_code"],
            header=False,
        )
        users["user_id"] = _numeric(users, "user_id", "u.user", False, kind="user id").astype(
            np.int64
        )
        users["age"] = _numeric(users, "age", "u.user", False, kind="number").astype(np.int64)
    return movies, ratings, users


def load_dataset(
    source: str | os.PathLike[str] | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    *,
    progress: bool = True,
) -> Dataset:
    """Load a MovieLens data set from a name, zip, folder or URL into a :class:`Dataset`.

    Ratings of movies missing from the movie table are dropped (with a warning), so every
    ``ratings.movie_id`` is in ``movies.movie_id``.
    """
    path = resolve_source(source, cache_dir, progress=progress)
    files = _Files(path)
    try:
        loader: Callable[[_Files], tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]]
        if "ratings.csv" in files:
            loader = _load_csv_layout
        elif "u.data" in files:
            loader = _load_100k_layout
        else:
            raise DataError(
                f"{path} has neither ratings.csv nor u.data; is it a MovieLens data set?"
            )
        movies, ratings, users = loader(files)
        name = files.dataset_name()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(
            f"{path} is damaged ({exc}). Download it again, or delete it so it is fetched anew."
        ) from exc
    finally:
        files.close()

    if movies["movie_id"].duplicated().any():
        dup = int(movies.loc[movies["movie_id"].duplicated(), "movie_id"].iloc[0])
        raise DataError(f"{path}: movie id {dup} appears more than once in the movie table.")
    known = ratings["movie_id"].isin(movies["movie_id"])
    if not known.all():
        log.warning(
            "Dropping %d ratings of movies missing from the movie table", int((~known).sum())
        )
        ratings = ratings.loc[known].reset_index(drop=True)
    movies = movies.reset_index(drop=True)
    return Dataset(
        name=name,
        movies=movies,
        ratings=ratings,
        users=users,
        fingerprint=_fingerprint(movies, ratings),
    )
