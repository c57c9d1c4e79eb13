from __future__ import annotations

import pandas as pd
import pytest

from recommender.catalog import Catalog, fold, natural_order, split_title


def labels(catalog: Catalog, query: str, limit: int = 10) -> list[str]:
    return [m.movie.label for m in catalog.search(query, limit)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Shawshank Redemption, The", "The Shawshank Redemption"),
        ("Haine, La", "La Haine"),
        ("Argent, L'", "L'Argent"),
        ("Misérables, Les", "Les Misérables"),
        ("Secreto de sus ojos, El", "El Secreto de sus ojos"),
        ("Postino, Il", "Il Postino"),
        ("Untergang, Der", "Der Untergang"),
        ("Boot, Das", "Das Boot"),
        ("Play It Again, Sam", "Play It Again, Sam"),
        ("Good, the Bad and the Ugly, The", "The Good, the Bad and the Ugly"),
    ],
)
def test_natural_order_moves_trailing_articles(raw: str, expected: str) -> None:
    assert natural_order(raw) == expected


def test_split_title_separates_alternates_and_year() -> None:
    assert split_title("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == (
        "The City of Lost Children",
        ("La Cité des enfants perdus",),
        1995,
    )
    assert split_title("Seven (a.k.a. Se7en) (1995)") == ("Seven", ("a.k.a. Se7en",), 1995)
    assert split_title("Babylon 5") == ("Babylon 5", (), None)


def test_fold_ignores_accents_case_punctuation_and_invisible_characters() -> None:
    assert fold("Amélie") == fold("AMELIE") == "amelie"
    assert fold("Schindler's List") == "schindlers list"
    assert fold("se\u200b7en") == "se7en"
    assert fold("Star Wars: Episode IV - A New Hope") == "star wars episode iv a new hope"


pytestmark_real = pytest.mark.movielens


@pytestmark_real
def test_heat_resolves_to_1995_with_the_2013_film_among_candidates(catalog: Catalog) -> None:
    resolution = catalog.resolve("heat")
    assert resolution.movie is not None
    assert resolution.movie.label == "Heat (1995)"
    assert "The Heat (2013)" in [m.label for m in resolution.candidates]
    assert labels(catalog, "heat")[0] == "Heat (1995)"


@pytestmark_real
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("shawshank", "The Shawshank Redemption (1994)"),
        ("Shawshank Redemption", "The Shawshank Redemption (1994)"),
        ("shawshenk", "The Shawshank Redemption (1994)"),
        ("se7en", "Seven (a.k.a. Se7en) (1995)"),
        ("la haine", "Hate (La Haine) (1995)"),
        (
            "cite des enfants perdus",
            "The City of Lost Children (La Cité des enfants perdus) (1995)",
        ),
        ("amelie", "Amelie (Le Fabuleux destin d'Amélie Poulain) (2001)"),
        ("Amélie", "Amelie (Le Fabuleux destin d'Amélie Poulain) (2001)"),
        ("hamlet 1948", "Hamlet (1948)"),
        ("Heat (1995)", "Heat (1995)"),
        ("blade runner 2049", "Blade Runner 2049 (2017)"),
        ("pulp fictoin", "Pulp Fiction (1994)"),
        ("the matrix", "The Matrix (1999)"),
    ],
)
def test_typed_titles_resolve_to_the_right_movie(
    catalog: Catalog, query: str, expected: str
) -> None:
    resolution = catalog.resolve(query)
    assert resolution.movie is not None, [m.label for m in resolution.candidates]
    assert resolution.movie.label == expected


@pytestmark_real
def test_same_name_films_are_separate_candidates_never_a_guess(catalog: Catalog) -> None:
    resolution = catalog.resolve("hamlet")
    assert resolution.movie is None
    assert resolution.ambiguous
    hamlets = [m for m in resolution.candidates if m.title == "Hamlet"]
    assert sorted(m.year for m in hamlets) == [1948, 1964, 1990, 1996, 2000]
    counts = [m.rating_count for m in hamlets]
    assert counts == sorted(counts, reverse=True)  # equally good matches: most rated first


@pytestmark_real
def test_star_wars_lists_the_episodes_most_rated_first(catalog: Catalog) -> None:
    resolution = catalog.resolve("star wars")
    assert resolution.movie is None
    episodes = [m for m in resolution.candidates if "Episode" in m.title]
    assert len(episodes) >= 6
    assert episodes[0].label == "Star Wars: Episode IV - A New Hope (1977)"
    counts = [m.rating_count for m in episodes]
    assert counts == sorted(counts, reverse=True)


@pytestmark_real
def test_nonsense_finds_nothing_and_empty_query_is_not_an_error(catalog: Catalog) -> None:
    assert catalog.resolve("qwxzv plomk").candidates == ()
    assert catalog.search("", 10) == []
    assert catalog.search("   ", 10) == []
    assert len(catalog.complete("", 25)) == 25


@pytestmark_real
def test_autocomplete_returns_at_most_25_for_prefixes(catalog: Catalog) -> None:
    for text in ("s", "the", "star w", "godf", "toy sto"):
        suggestions = catalog.complete(text, 25)
        assert 0 < len(suggestions) <= 25
    assert catalog.complete("godf", 25)[0].label == "The Godfather (1972)"
    assert catalog.complete("toy sto", 3)[0].label == "Toy Story (1995)"


@pytestmark_real
def test_catalog_has_links_and_genres(catalog: Catalog) -> None:
    heat = catalog.get(6)
    assert heat is not None
    assert heat.imdb_url == "https://www.imdb.com/title/tt0113277/"
    assert heat.tmdb_url == "https://www.themoviedb.org/movie/949"
    assert "Action" in catalog.genres
    assert catalog.get(10**9) is None


def test_catalog_without_ratings_and_without_links() -> None:
    movies = pd.DataFrame(
        {
            "movie_id": [1, 2],
            "title": ["Heat (1995)", "Heat, The (2013)"],
            "genres": [("Action",), ("Comedy",)],
        }
    )
    catalog = Catalog(movies)
    assert [m.label for m in catalog.resolve("heat").candidates] == [
        "Heat (1995)",
        "The Heat (2013)",
    ]
    assert catalog.get(1) is not None
    assert catalog.get(1).imdb_url is None
