"""The ``moviebot`` command as a user runs it: in-process through ``main(argv)``, plus one real
subprocess for the process boundary (``python -m bot`` reading a pipe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.helpers import write_tiny_csv


def make_env(folder: Path) -> dict[str, str]:
    return {
        "MOVIELENS_SOURCE": str(write_tiny_csv(folder)),
        "DATABASE_PATH": str(folder / "bot.db"),
        "MODEL_PATH": str(folder / "model.joblib"),
        "DATA_DIR": str(folder / "data"),
        "DISCORD_TOKEN": "",
        "LOG_LEVEL": "WARNING",
        "MODEL_COMPONENTS": "3",  # pinned: no test tunes unless it is about tuning
        "MODEL_ALPHA": "0.03",
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return make_env(tmp_path)


@pytest.fixture(scope="module")
def trained_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment with a small model already trained (shared by the bad-input cases)."""
    folder = tmp_path_factory.mktemp("trained")
    values = make_env(folder)
    from recommender import fit_bundle, load_dataset, save_bundle

    bundle = fit_bundle(load_dataset(values["MOVIELENS_SOURCE"], progress=False), n_components=2)
    save_bundle(bundle, Path(values["MODEL_PATH"]))
    return values


def test_python_dash_m_bot_runs_the_console_from_a_pipe(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The one true subprocess: the module entry point, a pipe for stdin, a clean exit."""
    script = "/rate Heat 4.5\n/recommend 3\n"
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        input=script,
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}, **env},
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "No DISCORD_TOKEN configured" in result.stderr
    assert "Rated Heat (1995) ★★★★½ (4.5)." in result.stdout
    assert "Your top 3 picks" in result.stdout
    assert "Traceback" not in result.stderr


def test_console_from_a_pipe_rates_and_recommends(cli, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
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
    result = cli([], env, script)
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
    cli,
    env: dict[str, str],
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    export = tmp_path / "mine.csv"
    script = f"/rate titanic 4\n/export {export}\n/forgetme\n/forgetme\n/myratings\n"
    result = cli(["console"], env, script)
    assert result.returncode == 0, result.stderr
    assert "can't be undone" in result.stdout
    assert export.read_text().splitlines()[1].startswith("10,Titanic (1997),4,")
    assert "Deleted all 1 of your ratings" in result.stdout
    assert "You haven't rated any movies yet" in result.stdout


def test_train_search_recommend_similar(cli, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    trained = cli(["train", "--components", "3", "--json"], env)
    assert trained.returncode == 0, trained.stderr
    info = json.loads(trained.stdout)
    assert info["metadata"]["n_movies"] == 13
    assert info["bytes"] > 0
    assert Path(env["MODEL_PATH"]).is_file()

    search = cli(["search", "hamlet", "--json"], env)
    assert search.returncode == 0, search.stderr
    found = json.loads(search.stdout)
    assert found["resolved"] is None
    assert {m["title"] for m in found["matches"]} == {"Hamlet (1948)", "Hamlet (1996)"}

    rec = cli(
        ["recommend", "--rate", "Casablanca=5", "--rate", "Titanic=4.5", "-n", "2", "--json"],
        env,
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

    by_user = cli(["recommend", "--user", "1", "-n", "3"], env)
    assert by_user.returncode == 0, by_user.stderr
    assert "Top 3 for" in by_user.stdout

    human = cli(["similar", "Heat", "-n", "3"], env)
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith("Movies like Heat (1995):")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "--rate", "Heat=9"], "9 is out of range"),
        (["recommend", "--rate", "Heat"], "TITLE=STARS"),
        (["recommend", "--rate", "hamlet=4"], "matches several movies"),
        (["recommend", "--rate", "Nothing Like It=4"], "couldn't find a movie called"),
        (["recommend", "--rate", "#²=4"], "couldn't find a movie called"),
        (["search", "heat", "--model", "missing.joblib"], "No saved model at missing.joblib"),
        (["recommend", "--genre", "Cartoon"], "I don't know the genre"),
        (["recommend", "--years", "nineties"], "--years takes FIRST-LAST"),
        (["recommend", "--user", "999"], "has no ratings"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    cli,  # type: ignore[no-untyped-def]
    trained_env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    result = cli(args, trained_env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_and_missing_data_are_explained(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    result = cli(["recommend", "--rate", "Heat=4"], env)
    assert result.returncode == 1
    assert "moviebot train" in result.stderr
    env = {**env, "MOVIELENS_SOURCE": str(tmp_path / "missing.zip")}
    result = cli(["console"], env, "")
    assert result.returncode == 1
    assert "MovieLens data not found" in result.stderr
    assert "MOVIELENS_SOURCE" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_token_says_how_to_add_one(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    result = cli(["run"], env)
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "moviebot console" in result.stderr


def test_invalid_setting_is_reported_by_name(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    result = cli(["search", "heat"], {**env, "REFIT_INTERVAL_MINUTES": "soon"})
    assert result.returncode == 2
    assert "REFIT_INTERVAL_MINUTES" in result.stderr


def test_evaluate_and_report(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "eval.json"
    result = cli(
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
            "--tuned",
            "--no-knn",
            "--json",
            "--output",
            str(out),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {r["model"] for r in payload["results"]} == {
        "most popular",
        "damped mean",
        "PureSVD k=50",
        "EASE l2=30000",
        "NMF tuned",
        "NMF k=3 alpha=0.03 it=100",
    }
    assert {r["scenario"] for r in payload["results"]} == {"k=1", "k=2"}
    for row in payload["results"]:
        assert row["ndcg_se"] >= 0
        assert row["popularity_rank"] >= 1
    assert json.loads(out.read_text()) == payload
    assert cli(["train", "--components", "3"], env).returncode == 0
    report = cli(
        ["report", "--output", str(tmp_path / "rep"), "--evaluation", str(out)], env, cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Recommendation quality" in html
    assert "The model&#x27;s map of movies" in html


def test_env_example_is_a_valid_configuration(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    (tmp_path / ".env").write_text((root / ".env.example").read_text())
    keys = [
        line.split("=")[0]
        for line in (root / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert {k.lower() for k in keys} == set(Settings.model_fields)  # every setting is documented
    clean = {k: v for k, v in env.items() if k not in keys or k == "MOVIELENS_SOURCE"}
    result = cli(["search", "heat", "--json"], clean)
    assert result.returncode == 0, result.stderr


def test_data_fetch_checks_a_local_copy(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    result = cli(["data", "fetch", env["MOVIELENS_SOURCE"], "--json"], env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["name"], info["movies"], info["users"]) == ("ml-tiny", 13, 24)
    missing = cli(["data", "fetch", str(tmp_path / "nope.zip")], env)
    assert missing.returncode == 1
    assert "MovieLens data not found" in missing.stderr


def test_evaluate_runs_on_the_ml100k_layout(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    from tests.helpers import write_100k

    source = write_100k(tmp_path)
    result = cli(
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
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dataset"] == "ml-100k"
    too_small = cli(["evaluate", "--dataset", str(source), "--layout", "dense"], env)
    assert too_small.returncode == 2
    assert "dense layout of this data set has no ratings left" in too_small.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--components", "0"], "expected a whole number of at least 1"),
        (["train", "--alpha", "-1"], "expected a number from 0 to 1,000,000"),
        (["train", "--alpha", "nan"], "expected a number from 0 to 1,000,000"),
        (["train", "--max-iter", "²"], "expected a whole number of at least 1"),
        (["recommend", "-n", "0"], "expected a whole number of at least 1"),
        (["evaluate", "--components", ",,,"], "expected a list separated by commas"),
        (["evaluate", "--components", "0"], "expected a whole number of at least 1"),
        (["evaluate", "--alpha", "nan"], "expected a number from 0 to 1,000,000"),
        (["evaluate", "--fold-in-reg", "1e308"], "expected a number from 0 to 1,000,000"),
        (["evaluate", "--reveal", "0"], "expected a whole number of at least 1"),
        (["evaluate", "--folds", "1"], "expected at least 2 folds"),
        (["evaluate", "--max-folds", "0"], "expected a whole number of at least 1"),
        (["import", "--member", "99999999999999999999", "x.csv"], "expected a member id"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    result = cli(args, env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_train_into_a_folder_is_refused_before_fitting(
    cli,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    result = cli(["train", "--output", str(tmp_path)], env)
    assert result.returncode == 2
    assert "is a folder" in result.stderr
    assert "Fitted" not in result.stdout


def test_model_settings_hold_for_train_and_every_refit(cli, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from recommender import load_bundle

    pinned = {**env, "MODEL_COMPONENTS": "50", "MODEL_ALPHA": "0.01"}
    trained = cli(["train"], pinned)
    assert trained.returncode == 0, trained.stderr
    assert "Model: 50 factors, alpha 0.01" in trained.stdout
    assert "(as set)" in trained.stdout
    retrained = cli(["console"], pinned, "/retrain\n")
    assert "Model: 50 factors, alpha 0.01" in retrained.stdout
    assert load_bundle(Path(env["MODEL_PATH"])).model.n_components == 50
    override = cli(["train", "--components", "7"], pinned)
    assert "Using n_components=7 for this run only" in override.stderr
    assert load_bundle(Path(env["MODEL_PATH"])).model.n_components == 7
    again = cli(["console"], pinned, "/retrain\n")  # the setting, not the last run, wins
    assert "Model: 50 factors" in again.stdout
    scoring = {**pinned, "MODEL_BLEND_BELOW": "5", "MODEL_FOLD_IN_REG": "10"}
    trained = cli(["train"], scoring)
    assert "blend below 5 ratings, fold-in regularization x10 (as set)" in trained.stdout
    model = load_bundle(Path(env["MODEL_PATH"])).model
    assert (model.blend_below, model.fold_in_reg) == (5, 10.0)


def test_a_bad_model_setting_is_refused_by_name(cli, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    for name, value in [
        ("MODEL_ALPHA", "-1"),
        ("MODEL_BLEND_BELOW", "0"),
        ("MODEL_FOLD_IN_REG", "x"),
        ("MODEL_FOLD_IN_REG", "1e308"),  # would overflow the fold-in into empty lists
    ]:
        result = cli(["search", "heat"], {**env, name: value})
        assert result.returncode == 2
        assert name in result.stderr


def test_discover_pushes_popular_films_down(cli, trained_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    ask = ["recommend", "--rate", "Casablanca=5", "--rate", "Heat=4", "-n", "11", "--json"]
    plain = json.loads(cli(ask, trained_env).stdout)["recommendations"]
    found = json.loads(cli([*ask, "--discover"], trained_env).stdout)["recommendations"]
    assert {r["movie_id"] for r in plain} == {r["movie_id"] for r in found}  # same films ...
    assert [r["score"] for r in plain] != [r["score"] for r in found]  # ... scored for novelty


def test_evaluate_the_quickrate_question_rules(cli, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        [
            "evaluate",
            "--protocol",
            "questions",
            "--folds",
            "3",
            "--max-folds",
            "1",
            "--questions",
            "3,5",
            "--components",
            "3",
            "--json",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert {(r["rule"], r["questions"]) for r in rows} == {
        (rule, q) for rule in ("next_question", "most popular", "random") for q in (3, 5)
    }
