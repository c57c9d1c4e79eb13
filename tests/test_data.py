from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recommender.data import (
    ChecksumError,
    DataError,
    MalformedDataError,
    fetch_dataset,
    load_dataset,
    md5_of,
    parse_md5_file,
    year_from_title,
)
from tests.helpers import write_100k, write_tiny_csv


@pytest.mark.movielens
def test_real_small_dataset_loads_into_normalized_tables(movielens_source: str) -> None:
    data = load_dataset(movielens_source, progress=False)
    assert data.name == "ml-latest-small"
    assert len(data.movies) == 9742
    assert len(data.ratings) == 100836
    assert data.n_users == 610
    assert set(np.unique(data.ratings["rating"])) == {x / 2 for x in range(1, 11)}
    heat = data.movies.loc[data.movies["movie_id"] == 6].iloc[0]
    assert heat["title"] == "Heat (1995)"
    assert heat["year"] == 1995
    assert heat["genres"] == ("Action", "Crime", "Thriller")
    assert heat["imdb_id"] == 113277
    assert heat["tmdb_id"] == 949
    assert len(data.fingerprint) == 16


@pytest.mark.movielens
def test_file_url_and_extracted_folder_give_the_same_data(
    movielens_source: str, tmp_path: Path
) -> None:
    zip_path = Path(movielens_source)
    if not zip_path.is_file():
        pytest.skip("MOVIELENS_SOURCE is not a local zip")
    from_url = load_dataset(zip_path.resolve().as_uri(), progress=False)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp_path)
    from_folder = load_dataset(tmp_path / "ml-latest-small", progress=False)
    assert from_url.fingerprint == from_folder.fingerprint
    assert from_folder.name == "ml-latest-small"


def test_csv_layout_from_zip_and_folder(tmp_path: Path) -> None:
    archive = write_tiny_csv(tmp_path)
    data = load_dataset(archive, progress=False)
    assert data.name == "ml-tiny"
    assert list(data.movies.columns) == [
        "movie_id",
        "title",
        "year",
        "genres",
        "imdb_id",
        "tmdb_id",
    ]
    assert list(data.ratings.columns) == ["user_id", "movie_id", "rating", "timestamp"]
    assert data.ratings["rating"].dtype == np.float32
    folder = load_dataset(tmp_path / "ml-tiny", progress=False)
    assert folder.fingerprint == data.fingerprint


def test_ml100k_layout_is_normalized(tmp_path: Path) -> None:
    data = load_dataset(write_100k(tmp_path), progress=False)
    assert data.name == "ml-100k"
    movies = data.movies.set_index("movie_id")
    assert movies.loc[1, "title"] == "Toy Story (1995)"
    assert movies.loc[1, "genres"] == ("Animation", "Children", "Comedy")
    assert movies.loc[3, "title"] == "Cité des enfants perdus, La (1995)"  # latin-1 decoded
    assert movies.loc[4, "year"] == 1997  # from the release date when the title has no year
    assert movies.loc[4, "genres"] == ()
    assert data.ratings["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    assert data.users is not None
    assert data.users["age"].tolist() == [24, 53]


def test_malformed_rating_row_names_file_and_line(tmp_path: Path) -> None:
    root = write_tiny_csv(tmp_path, zip_name=None)
    lines = (root / "ratings.csv").read_text().splitlines()
    lines[3] = "3,1,four,1000000003"
    (root / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedDataError, match=r"ratings\.csv, line 4: rating is 'four'"):
        load_dataset(root, progress=False)


def test_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    root = write_100k(tmp_path)
    with (root / "u.data").open("a") as fh:
        fh.write("3\t1\t4\n")
    with pytest.raises(MalformedDataError, match=r"u\.data, line 5"):
        load_dataset(root, progress=False)


def test_out_of_range_rating_is_rejected(tmp_path: Path) -> None:
    root = write_tiny_csv(tmp_path, zip_name=None)
    with (root / "ratings.csv").open("a") as fh:
        fh.write("99,1,7.0,1000000000\n")
    with pytest.raises(MalformedDataError, match=r"outside 0\.5-5"):
        load_dataset(root, progress=False)


def test_missing_files_and_paths_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MOVIELENS_SOURCE"):
        load_dataset(tmp_path / "nowhere.zip", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"neither ratings\.csv nor u\.data"):
        load_dataset(tmp_path / "empty", progress=False)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(tmp_path / "bad.zip", progress=False)


def test_local_zip_is_checked_against_its_md5_file(tmp_path: Path) -> None:
    archive = write_tiny_csv(tmp_path)
    md5 = archive.with_name(archive.name + ".md5")
    md5.write_text(f"MD5 ({archive.name}) = {'0' * 32}\n")
    with pytest.raises(ChecksumError, match="damaged or incomplete"):
        load_dataset(archive, progress=False)
    md5.write_text(f"{md5_of(archive)}  {archive.name}\n")
    assert len(load_dataset(archive, progress=False).movies) == 13


def _mirror(tmp_path: Path, good_checksum: bool) -> str:
    """Lay out a GroupLens-style mirror (zip + .md5) on disk; return its URL template."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = write_tiny_csv(tmp_path, zip_name="src.zip")
    shutil.copy(archive, mirror / "ml-latest-small.zip")
    digest = md5_of(archive) if good_checksum else "f" * 32
    (mirror / "ml-latest-small.zip.md5").write_text(f"MD5 (ml-latest-small.zip) = {digest}\n")
    return mirror.as_uri() + "/{name}.zip"


def test_download_is_verified_cached_and_reused_offline(tmp_path: Path) -> None:
    base_url = _mirror(tmp_path, good_checksum=True)
    cache = tmp_path / "cache"
    path = fetch_dataset("ml-latest-small", cache, base_url=base_url, progress=False)
    assert path == cache / "ml-latest-small.zip"
    assert parse_md5_file((cache / "ml-latest-small.zip.md5").read_text()) == md5_of(path)
    shutil.rmtree(tmp_path / "mirror")  # later calls must not need the source
    again = fetch_dataset("ml-latest-small", cache, base_url=base_url, progress=False)
    assert again == path
    assert not list(cache.glob("*.part"))


def test_download_with_bad_checksum_is_discarded(tmp_path: Path) -> None:
    base_url = _mirror(tmp_path, good_checksum=False)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError):
        fetch_dataset("ml-latest-small", cache, base_url=base_url, progress=False)
    assert list(cache.iterdir()) == []


def test_no_network_says_how_to_use_a_local_copy(tmp_path: Path) -> None:
    # Port 9 on loopback refuses connections: the same failure as having no network.
    with pytest.raises(DataError, match=r"MOVIELENS_SOURCE .* local path or file:// URL"):
        fetch_dataset(
            "ml-latest-small", tmp_path, base_url="http://127.0.0.1:9/{name}.zip", timeout=2
        )


def test_unknown_dataset_name_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="ml-100k"):
        fetch_dataset("ml-1b", tmp_path)


def test_year_from_title() -> None:
    assert year_from_title("Heat (1995)") == 1995
    assert year_from_title("Death Note: Desu nôto (2006–2007)") == 2006
    assert year_from_title("Babylon 5") is None
