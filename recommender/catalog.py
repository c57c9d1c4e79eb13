"""The movie catalog: titles in natural order and search the way people type them.

MovieLens stores ``Shawshank Redemption, The (1994)`` and keeps alternate titles in parentheses
(``Hate (Haine, La) (1995)``). The catalog shows titles in natural order and makes every form
searchable, forgiving accents, case, punctuation, small typos and a trailing year.

Search first narrows the candidates with a token index (prefix postings, plus a trigram index
over the vocabulary for typos), then scores the few that remain, so a lookup stays in the
low milliseconds even at ml-32m's 87,000 titles.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rapidfuzz import fuzz
from rapidfuzz import process as rf_process

# Articles MovieLens moves to the end ("Heat, The"), in the languages its titles use.
ARTICLES = (
    "The",
    "A",
    "An",
    "La",
    "Le",
    "Les",
    "L'",
    "El",
    "Los",
    "Las",
    "Il",
    "Lo",
    "Gli",
    "I",
    "Der",
    "Die",
    "Das",
    "Den",
    "Det",
    "De",
    "Het",
    "Un",
    "Une",
    "Una",
    "Uno",
    "Ein",
    "Eine",
    "O",
    "Os",
    "As",
)
_TRAILING_ARTICLE = re.compile(r"^(?P<body>.+), (?P<article>" + "|".join(ARTICLES) + r")$")
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_TRAILING_PAREN = re.compile(r"\s*\(([^()]*)\)\s*$")
_AKA = re.compile(r"^(?:a\.k\.a\.|aka)\s+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^0-9a-z]+")
_QUERY_YEAR = re.compile(r"^(18[89]\d|19\d\d|20\d\d)$")

MAX_QUERY_CHARS = 200
_SCORE_LIMIT = 400  # candidates scored per query; postings are in popularity order

# Match tiers: higher is better; ties are broken by popularity.
EXACT_MAIN, EXACT_MAIN_BARE, EXACT_ALT, EXACT_ALT_BARE = 100, 99, 98, 97
STARTS_WITH, ALL_WORDS, ALL_PREFIXES = 90, 85, 80
FUZZY_MAX = 75
YEAR_BONUS = 2


def fold(text: str) -> str:
    """Return ``text`` lower-cased, without accents, apostrophes or punctuation, for matching."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(
        ch for ch in decomposed if unicodedata.category(ch) not in {"Mn", "Cf"} and ch not in "'’`"
    )
    kept = kept.casefold().replace("&", " and ")
    return " ".join(_NON_WORD.sub(" ", kept).split())


def natural_order(title: str) -> str:
    """Move a trailing article to the front: ``Heat, The`` -> ``The Heat``.

    ``Argent, L'`` becomes ``L'Argent`` (no space after an elided article).
    """
    match = _TRAILING_ARTICLE.match(title.strip())
    if match is None:
        return title.strip()
    article = match.group("article")
    separator = "" if article.endswith("'") else " "
    return f"{article}{separator}{match.group('body')}"


def _without_article(title: str) -> str:
    for article in ARTICLES:
        if article.endswith("'") and title.startswith(article) and len(title) > len(article):
            return title[len(article) :]
        if title.startswith(article + " ") and len(title) > len(article) + 1:
            return title[len(article) + 1 :]
    return title


def split_title(raw: str) -> tuple[str, tuple[str, ...], int | None]:
    """Split a MovieLens title into (main title, alternate titles, year), all in natural order."""
    year = None
    text = raw.strip()
    match = _YEAR_SUFFIX.search(text)
    if match is not None:
        year = int(match.group(1))
        text = text[: match.start()]
    alternates: list[str] = []
    while True:
        paren = _TRAILING_PAREN.search(text)
        if paren is None or paren.start() == 0:
            break
        alternates.insert(0, paren.group(1).strip())
        text = text[: paren.start()]
    main = natural_order(text)
    return main, tuple(natural_order(a) for a in alternates if a), year


@dataclass(frozen=True)
class Movie:
    """A catalog entry, with its title in natural order."""

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...] = ()
    imdb_id: int | None = None
    tmdb_id: int | None = None
    rating_count: int = 0
    mean_rating: float | None = None

    @property
    def label(self) -> str:
        """Return ``Title (Year)``, the way the bot shows a movie."""
        return f"{self.title} ({self.year})" if self.year is not None else self.title

    @property
    def imdb_url(self) -> str | None:
        """Return the IMDb page, if MovieLens links one."""
        return f"https://www.imdb.com/title/tt{self.imdb_id:07d}/" if self.imdb_id else None

    @property
    def tmdb_url(self) -> str | None:
        """Return the TMDb page, if MovieLens links one."""
        return f"https://www.themoviedb.org/movie/{self.tmdb_id}" if self.tmdb_id else None


@dataclass(frozen=True)
class Match:
    """A search hit: the movie and how well it matched (see the tier constants)."""

    movie: Movie
    score: int


@dataclass(frozen=True)
class Resolution:
    """The outcome of turning typed text into one movie.

    ``movie`` is set when the text names one movie clearly; otherwise ``candidates`` holds the
    movies to choose from (empty when nothing matched). ``candidates`` always lists the
    alternatives considered, best first.
    """

    query: str
    movie: Movie | None
    candidates: tuple[Movie, ...] = field(default=())

    @property
    def ambiguous(self) -> bool:
        """Return True when the user has to choose among several candidates."""
        return self.movie is None and len(self.candidates) > 0


@dataclass(frozen=True)
class _Keys:
    """Folded search keys of one movie, by tier."""

    exact: tuple[tuple[str, int], ...]
    tokens: tuple[frozenset[str], ...]


def _keys_for(title: str, alternates: Sequence[str]) -> _Keys:
    exact: list[tuple[str, int]] = []
    for text, full_tier, bare_tier in (
        (title, EXACT_MAIN, EXACT_MAIN_BARE),
        *((_AKA.sub("", alt), EXACT_ALT, EXACT_ALT_BARE) for alt in alternates),
    ):
        folded = fold(text)
        if folded:
            exact.append((folded, full_tier))
        bare = fold(_without_article(text))
        if bare and bare != folded:
            exact.append((bare, bare_tier))
    tokens = tuple(frozenset(key.split()) for key, _ in exact)
    return _Keys(tuple(exact), tokens)


def _trigrams(token: str) -> set[str]:
    padded = f"  {token} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class Catalog:
    """All known movies, searchable by typed title.

    Parameters
    ----------
    movies : pandas.DataFrame
        The :class:`~recommender.data.Dataset` movie table (``movie_id``, ``title`` with year,
        ``genres``; optional ``imdb_id``, ``tmdb_id``).
    ratings : pandas.DataFrame, optional
        Ratings used for popularity (``movie_id``, ``rating``); popularity breaks ties in search.
    stats : pandas.DataFrame, optional
        Precomputed per-movie ``count`` and ``mean`` (``movie_id`` column), instead of ``ratings``.
    """

    def __init__(
        self,
        movies: pd.DataFrame,
        ratings: pd.DataFrame | None = None,
        *,
        stats: pd.DataFrame | None = None,
    ) -> None:
        if stats is None and ratings is not None and len(ratings):
            stats = ratings.groupby("movie_id")["rating"].agg(["count", "mean"]).reset_index()
        counts: dict[int, int] = {}
        means: dict[int, float] = {}
        if stats is not None and len(stats):
            ids = stats["movie_id"].to_numpy(np.int64).tolist()
            counts = dict(zip(ids, stats["count"].astype(int).tolist(), strict=True))
            means = dict(zip(ids, stats["mean"].astype(float).tolist(), strict=True))

        def optional_int(value: object) -> int | None:
            return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]

        entries: list[tuple[Movie, _Keys]] = []
        imdb = movies["imdb_id"] if "imdb_id" in movies else [None] * len(movies)
        tmdb = movies["tmdb_id"] if "tmdb_id" in movies else [None] * len(movies)
        for movie_id, raw, genres, imdb_id, tmdb_id in zip(
            movies["movie_id"].tolist(),
            movies["title"].tolist(),
            movies["genres"].tolist(),
            imdb,
            tmdb,
            strict=True,
        ):
            title, alternates, year = split_title(raw)
            display = title if not alternates else f"{title} ({') ('.join(alternates)})"
            movie = Movie(
                movie_id=int(movie_id),
                title=display,
                year=year,
                genres=tuple(genres),
                imdb_id=optional_int(imdb_id),
                tmdb_id=optional_int(tmdb_id),
                rating_count=counts.get(int(movie_id), 0),
                mean_rating=means.get(int(movie_id)),
            )
            entries.append((movie, _keys_for(title, alternates)))
        # Index positions are popularity ranks: position 0 is the most rated movie.
        entries.sort(key=lambda e: (-e[0].rating_count, e[0].movie_id))
        self._movies: list[Movie] = [m for m, _ in entries]
        self._keys: list[_Keys] = [k for _, k in entries]
        self._position = {m.movie_id: i for i, m in enumerate(self._movies)}
        self._build_index()
        self._build_filters()

    # ------------------------------------------------------------------ index

    def _build_index(self) -> None:
        postings: dict[str, list[int]] = defaultdict(list)
        exact: dict[str, list[int]] = defaultdict(list)
        for position, keys in enumerate(self._keys):
            for key, _ in keys.exact:
                exact[key].append(position)
            for token in set().union(*keys.tokens) if keys.tokens else ():
                postings[token].append(position)
        self._exact = {k: np.array(sorted(set(v)), dtype=np.int32) for k, v in exact.items()}
        self._vocab = sorted(postings)
        self._vocab_index = {t: i for i, t in enumerate(self._vocab)}
        self._postings = [np.array(postings[t], dtype=np.int32) for t in self._vocab]
        short: dict[str, list[np.ndarray]] = defaultdict(list)
        for token, posting in zip(self._vocab, self._postings, strict=True):
            for length in range(1, min(3, len(token)) + 1):
                short[token[:length]].append(posting)
        self._short_prefix = {p: np.unique(np.concatenate(a)) for p, a in short.items()}
        grams: dict[str, list[int]] = defaultdict(list)
        for index, token in enumerate(self._vocab):
            for gram in _trigrams(token):
                grams[gram].append(index)
        self._grams = {g: np.array(v, dtype=np.int32) for g, v in grams.items()}

    def _prefix_posting(self, prefix: str) -> np.ndarray:
        if len(prefix) <= 3:
            return self._short_prefix.get(prefix, np.empty(0, dtype=np.int32))
        lo = bisect.bisect_left(self._vocab, prefix)
        hi = bisect.bisect_left(self._vocab, prefix + "\uffff")
        if hi - lo == 1:
            return self._postings[lo]
        if hi == lo:
            return np.empty(0, dtype=np.int32)
        return np.unique(np.concatenate(self._postings[lo:hi]))

    def _similar_tokens(self, token: str, cutoff: float = 75.0) -> list[str]:
        """Return vocabulary tokens within a small edit distance of ``token``."""
        if len(token) < 4:
            return []
        counts: dict[int, int] = defaultdict(int)
        for gram in _trigrams(token):
            for index in self._grams.get(gram, ()):
                counts[int(index)] += 1
        needed = max(1, len(_trigrams(token)) // 3)
        pool = [self._vocab[i] for i, c in counts.items() if c >= needed]
        hits = rf_process.extract(token, pool, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5)
        return [hit[0] for hit in hits]

    def _token_candidates(self, token: str, is_last: bool, typos: bool) -> np.ndarray:
        posting = self._prefix_posting(token) if is_last else self._whole_or_prefix(token)
        if typos and (posting.size == 0 or token not in self._vocab_index):
            similar = self._similar_tokens(token)
            if similar:
                parts = [posting, *(self._postings[self._vocab_index[s]] for s in similar)]
                posting = np.unique(np.concatenate(parts))
        return posting

    def _whole_or_prefix(self, token: str) -> np.ndarray:
        index = self._vocab_index.get(token)
        if index is not None:
            # A complete word may still be a prefix of a longer one ("wars" in "star wars").
            return self._prefix_posting(token) if len(token) > 3 else self._postings[index]
        return self._prefix_posting(token)

    def _candidates(self, tokens: Sequence[str], typos: bool) -> np.ndarray:
        sets = [
            self._token_candidates(t, i == len(tokens) - 1, typos) for i, t in enumerate(tokens)
        ]
        sets.sort(key=len)
        result = sets[0]
        for other in sets[1:]:
            if result.size == 0:
                break
            result = np.intersect1d(result, other, assume_unique=True)
        return result

    # ------------------------------------------------------------------ scoring

    @staticmethod
    def _tier(query: str, tokens: Sequence[str], keys: _Keys, indexed: bool) -> int:
        """Return how well ``query`` matches a movie's keys (see the tier constants).

        ``indexed`` says the prefix index already found every query token as a prefix of a word
        of the movie's titles, which guarantees at least :data:`ALL_PREFIXES`.
        """
        best = ALL_PREFIXES if indexed else 0
        for (key, exact_tier), key_tokens in zip(keys.exact, keys.tokens, strict=True):
            if key == query:
                return exact_tier
            if key.startswith(query):
                best = STARTS_WITH
            elif best < ALL_WORDS and all(t in key_tokens for t in tokens):
                best = ALL_WORDS
            elif not best and all(any(k.startswith(t) for k in key_tokens) for t in tokens):
                best = ALL_PREFIXES
        if best:
            return best
        fuzzy = 0.0
        for key_tokens in keys.tokens:
            per_token = [max((fuzz.ratio(t, k) for k in key_tokens), default=0.0) for t in tokens]
            fuzzy = max(fuzzy, sum(per_token) / len(per_token))
        return int(fuzzy * FUZZY_MAX / 100)

    def _build_filters(self) -> None:
        """Genre bits and years by movie id, so filters become one mask per request."""
        by_id = sorted(self._movies, key=lambda m: m.movie_id)
        self._all_genres = sorted({g for m in by_id for g in m.genres})
        self._genre_names = self._all_genres[:63]
        bit = {name: 1 << i for i, name in enumerate(self._genre_names)}
        self._sorted_ids = np.array([m.movie_id for m in by_id], dtype=np.int64)
        self._genre_bits = np.array(
            [sum(bit.get(g, 0) for g in m.genres) for m in by_id], dtype=np.int64
        )
        self._years = np.array([-1 if m.year is None else m.year for m in by_id], dtype=np.int64)
        self._last_lookup: tuple[np.ndarray, np.ndarray] | None = None

    def _lookup(self, item_ids: np.ndarray) -> np.ndarray:
        """Return each id's index in the filter arrays, or -1 (cached for a model's id array)."""
        cached = self._last_lookup
        if cached is not None and cached[0] is item_ids:
            return cached[1]
        ids = np.asarray(item_ids, dtype=np.int64)
        if self._sorted_ids.size == 0:
            found = np.full(ids.size, -1, dtype=np.int64)
        else:
            found = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.size - 1)
            found[self._sorted_ids[found] != ids] = -1
        self._last_lookup = (item_ids, found)
        return found

    # ------------------------------------------------------------------ public API

    def allowed(
        self,
        item_ids: np.ndarray,
        *,
        genres: Sequence[str] | None = None,
        years: tuple[int | None, int | None] | None = None,
    ) -> np.ndarray | None:
        """Return one flag per movie id in ``item_ids``: True where it passes the filters.

        ``genres`` keeps movies with at least one of them (case-insensitive); ``years`` keeps an
        inclusive release-year range, either end open. Movies missing from the catalog never
        pass a filter. Without filters, returns None (everything allowed).
        """
        if not genres and years is None:
            return None
        positions = self._lookup(item_ids)
        ok = positions >= 0
        if genres:
            wanted = {g.casefold() for g in genres}
            bits = sum(1 << i for i, g in enumerate(self._genre_names) if g.casefold() in wanted)
            ok &= (self._genre_bits[positions] & bits) != 0
        if years is not None:
            low, high = years
            found = self._years[positions]
            if low is not None:
                ok &= found >= low
            if high is not None:
                ok &= (found <= high) & (found >= 0)
        return ok

    def genre(self, text: str) -> str | None:
        """Return the catalog's spelling of a genre typed in any case, or None if unknown."""
        wanted = text.strip().casefold()
        return next((g for g in self.genres if g.casefold() == wanted), None)

    def __len__(self) -> int:
        return len(self._movies)

    def __iter__(self) -> Iterator[Movie]:
        return iter(self._movies)

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._position

    def get(self, movie_id: int) -> Movie | None:
        """Return the movie with this MovieLens id, or None."""
        position = self._position.get(int(movie_id))
        return None if position is None else self._movies[position]

    def popular(self, n: int = 25) -> list[Movie]:
        """Return the ``n`` most rated movies."""
        return self._movies[: max(0, n)]

    @property
    def genres(self) -> list[str]:
        """Return every genre name in the catalog, sorted."""
        return list(self._all_genres)

    def search(self, query: str, limit: int = 10, *, typos: bool = True) -> list[Match]:
        """Return up to ``limit`` movies matching ``query``, best match first, then most rated.

        A trailing year (``hamlet 1948`` or ``Heat (1995)``) favours movies from that year. Small
        typos are forgiven when ``typos`` is True. An empty query returns nothing.
        """
        folded = fold(query[:MAX_QUERY_CHARS])
        tokens = folded.split()[:12]
        if not tokens or limit <= 0:
            return []
        folded = " ".join(tokens)
        year = None
        bare, bare_tokens = folded, tokens
        if len(tokens) > 1 and _QUERY_YEAR.match(tokens[-1]):
            year = int(tokens[-1])
            bare_tokens = tokens[:-1]
            bare = " ".join(bare_tokens)

        candidates = self._candidates(tokens, typos=False)
        indexed = set(candidates[:_SCORE_LIMIT].tolist())
        indexed_bare = indexed
        if year is not None:
            bare_candidates = self._candidates(bare_tokens, typos=False)
            indexed_bare = set(bare_candidates[:_SCORE_LIMIT].tolist())
            candidates = np.union1d(candidates, bare_candidates)
        if candidates.size < limit and typos:
            candidates = np.union1d(candidates, self._candidates(bare_tokens, typos=True))
        candidates = candidates[:_SCORE_LIMIT]
        exact = [self._exact.get(folded), self._exact.get(bare)]
        extra = [e for e in exact if e is not None]
        if extra:
            candidates = np.union1d(candidates, np.concatenate(extra))

        scored: list[tuple[int, int]] = []
        for position in candidates.tolist():
            keys = self._keys[position]
            score = self._tier(folded, tokens, keys, position in indexed)
            if year is not None:
                bare_score = self._tier(bare, bare_tokens, keys, position in indexed_bare)
                bare_score += YEAR_BONUS if self._movies[position].year == year else -YEAR_BONUS
                score = max(score, bare_score)
            if score >= FUZZY_MAX * 0.6:
                scored.append((-score, position))
        scored.sort()
        return [Match(self._movies[p], -s) for s, p in scored[:limit]]

    def complete(self, text: str, limit: int = 25) -> list[Movie]:
        """Return up to ``limit`` movies for an autocomplete box; popular ones for empty text."""
        if not fold(text):
            return self.popular(limit)
        return [m.movie for m in self.search(text, limit)]

    def resolve(self, query: str, limit: int = 10) -> Resolution:
        """Turn typed text into one movie when it is clear which, else into candidates.

        A query resolves when its best match is exact (or exact with the year) and no other
        match is as good, or when it is the only plausible match, or a typo far ahead of the
        rest. It never guesses between equally good matches (five ``Hamlet``s).
        """
        matches = self.search(query, limit)
        if not matches:
            return Resolution(query, None, ())
        candidates = tuple(m.movie for m in matches)
        top = matches[0]
        runner_up = matches[1].score if len(matches) > 1 else -1
        clear = (
            (top.score >= EXACT_ALT_BARE and runner_up < top.score)
            or (len(matches) == 1 and top.score >= ALL_PREFIXES)
            or (top.score >= FUZZY_MAX * 0.8 and top.score - runner_up >= 10)
        )
        return Resolution(query, top.movie if clear else None, candidates)
