"""The ``moviebot`` command end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_tiny_csv


def run(
    args: list[str], env: dict[str, str], stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def make_env(folder: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    values.update(
        MOVIELENS_SOURCE=str(write_tiny_csv(folder)),
        DATABASE_PATH=str(folder / "bot.db"),
        MODEL_PATH=str(folder / "model.joblib"),
        DATA_DIR=str(folder / "data"),
        DISCORD_TOKEN="",
        LOG_LEVEL="WARNING",
    )
    return values


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return make_env(tmp_path)


@pytest.fixture(scope="module")
def trained_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment with a small model already trained (shared by the bad-input cases)."""
    values = make_env(tmp_path_factory.mktemp("trained"))
    assert run(["train", "--components", "2"], values).returncode == 0
    return values


def test_console_from_a_pipe_rates_and_recommends(env: dict[str, str], tmp_path: Path) -> None:
    script = (
        "\n".join(
            [
                "/rate Heat 4.5",
                "/rate hamlet 4",
                "2",
                "/rate Heat 5",
                "/rate Heat 4,5",
                "/recommend 3",
                "/myratings",
                "/unrate Heat",
                "/retrain",
                "/bogus",
                "/help",
            ]
        )
        + "\n"
    )
    result = run([], env, script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "No DISCORD_TOKEN configured" in result.stderr
    assert "Rated Heat (1995) ★★★★½ (4.5)." in out
    assert "“hamlet” matches several movies" in out
    assert "Rated Hamlet (1948) ★★★★ (4)." in out or "Rated Hamlet (1996) ★★★★ (4)." in out
    assert "Your previous rating was ★★★★½ (4.5)." in out
    assert "Please use a dot for decimals: 4.5, not 4,5." in out
    assert "Your top 3 picks" in out
    assert "Based on your 2 ratings." in out
    assert "Your ratings (2)" in out
    assert "Removed your rating of Heat (1995)" in out
    assert "Retrained in" in out
    assert "1 from 1 members here" in out
    assert "Unknown command /bogus" in out
    assert "/forgetme" in out
    assert "Traceback" not in result.stderr


def test_console_forgetme_needs_confirmation_and_export_writes_csv(
    env: dict[str, str], tmp_path: Path
) -> None:
    export = tmp_path / "mine.csv"
    script = f"/rate titanic 4\n/export {export}\n/forgetme\n/forgetme\n/myratings\n"
    result = run(["console"], env, script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "can't be undone" in result.stdout
    assert export.read_text().splitlines()[1].startswith("10,Titanic (1997),4,")
    assert "Deleted all 1 of your ratings" in result.stdout
    assert "You haven't rated any movies yet" in result.stdout


def test_train_search_recommend_similar(env: dict[str, str], tmp_path: Path) -> None:
    trained = run(["train", "--components", "3", "--json"], env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    info = json.loads(trained.stdout)
    assert info["metadata"]["n_movies"] == 13
    assert info["bytes"] > 0
    assert Path(env["MODEL_PATH"]).is_file()

    search = run(["search", "hamlet", "--json"], env, cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    found = json.loads(search.stdout)
    assert found["resolved"] is None
    assert {m["title"] for m in found["matches"]} == {"Hamlet (1948)", "Hamlet (1996)"}

    rec = run(
        ["recommend", "--rate", "Casablanca=5", "--rate", "Titanic=4.5", "-n", "2", "--json"],
        env,
        cwd=tmp_path,
    )
    assert rec.returncode == 0, rec.stderr
    picks = json.loads(rec.stdout)
    assert picks["based_on"] == 2
    assert {p["title"] for p in picks["recommendations"]} <= {
        "The Notebook (2004)",
        "Pride & Prejudice (2005)",
        "Amelie (Le Fabuleux destin d'Amélie Poulain) (2001)",
        "Hamlet (1996)",
    }

    by_user = run(["recommend", "--user", "1", "-n", "3"], env, cwd=tmp_path)
    assert by_user.returncode == 0, by_user.stderr
    assert "Top 3 for" in by_user.stdout

    human = run(["similar", "Heat", "-n", "3"], env, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith("Movies like Heat (1995):")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "--rate", "Heat=9"], "9 is out of range"),
        (["recommend", "--rate", "Heat"], "TITLE=STARS"),
        (["recommend", "--rate", "hamlet=4"], "is ambiguous"),
        (["recommend", "--rate", "Nothing Like It=4"], "No movie matches"),
        (["recommend", "--genre", "Cartoon"], "Unknown genre"),
        (["recommend", "--years", "nineties"], "--years takes FIRST-LAST"),
        (["recommend", "--user", "999"], "has no ratings"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    trained_env: dict[str, str], args: list[str], message: str
) -> None:
    result = run(args, trained_env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_and_missing_data_are_explained(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["recommend", "--rate", "Heat=4"], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "moviebot train" in result.stderr
    env = {**env, "MOVIELENS_SOURCE": str(tmp_path / "missing.zip")}
    result = run(["console"], env, "", cwd=tmp_path)
    assert result.returncode == 1
    assert "MovieLens data not found" in result.stderr
    assert "MOVIELENS_SOURCE" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_token_says_how_to_add_one(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["run"], env, cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "moviebot console" in result.stderr


def test_invalid_setting_is_reported_by_name(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["search", "heat"], {**env, "REFIT_INTERVAL_MINUTES": "soon"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "REFIT_INTERVAL_MINUTES" in result.stderr


def test_evaluate_and_report(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = run(
        [
            "evaluate",
            "--protocol",
            "new-users",
            "--folds",
            "3",
            "--max-folds",
            "1",
            "--reveal",
            "1,2",
            "--components",
            "3",
            "--no-knn",
            "--json",
            "--output",
            str(out),
        ],
        env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {r["model"] for r in payload["results"]} == {
        "most popular",
        "damped mean",
        "PureSVD k=50",
        "NMF k=3 alpha=0.03 it=100",
    }
    assert {r["scenario"] for r in payload["results"]} == {"k=1", "k=2"}
    assert json.loads(out.read_text()) == payload
    assert run(["train", "--components", "3"], env, cwd=tmp_path).returncode == 0
    report = run(
        ["report", "--output", str(tmp_path / "rep"), "--evaluation", str(out)], env, cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Recommendation quality" in html
    assert "The model&#x27;s map of movies" in html


def test_env_example_is_a_valid_configuration(env: dict[str, str], tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    (tmp_path / ".env").write_text((root / ".env.example").read_text())
    keys = [
        line.split("=")[0]
        for line in (root / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    from bot.settings import Settings

    assert {k.lower() for k in keys} == set(Settings.model_fields)  # every setting is documented
    clean = {k: v for k, v in env.items() if k not in keys or k == "MOVIELENS_SOURCE"}
    result = run(["search", "heat", "--json"], clean, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_data_fetch_checks_a_local_copy(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["data", "fetch", env["MOVIELENS_SOURCE"], "--json"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["name"], info["movies"], info["users"]) == ("ml-tiny", 13, 24)
    missing = run(["data", "fetch", str(tmp_path / "nope.zip")], env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "MovieLens data not found" in missing.stderr


def test_evaluate_runs_on_the_ml100k_layout(env: dict[str, str], tmp_path: Path) -> None:
    from tests.helpers import write_100k

    source = write_100k(tmp_path)
    result = run(
        [
            "evaluate",
            "--dataset",
            str(source),
            "--folds",
            "2",
            "--reveal",
            "1",
            "--components",
            "2",
            "--json",
        ],
        env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dataset"] == "ml-100k"
