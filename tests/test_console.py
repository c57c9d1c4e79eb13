"""The console's line handler, in-process: odd input gets a friendly line, never a traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.console import Console, write_file
from bot.service import MovieService


class Recorder:
    """Stands in for the file writer: remembers what would be written, writes nothing."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def __call__(self, name: str, data: bytes) -> Path:
        if "\x00" in name:
            raise ValueError("embedded null byte")
        if not name.strip() or name.endswith("/"):
            raise IsADirectoryError(21, "Is a directory")
        self.files[name] = data
        return Path(name)


async def run_lines(service: MovieService, *lines: str, write: object = None) -> str:
    out = io.StringIO()
    console = Console(service, out, write=write or Recorder())  # type: ignore[arg-type]
    for line in lines:
        assert await console.handle(line)
    return out.getvalue()


ODD_INPUT = [
    ("/recommend ²", "1 to 25 movies"),
    ("/recommend " + "9" * 5000, "1 to 25 movies"),
    ("/myratings ²", "Usage: /myratings [page]"),
    ("/myratings " + "9" * 5000, "Usage: /myratings [page]"),
    ("/rate #² 4", "couldn't find a movie called"),
    ("/rate #" + "1" * 5000 + " 4", "couldn't find a movie called"),
    ("/unrate #²", "couldn't find a movie called"),
    ("/rate Heat 4_0", "isn't a rating I understand"),
    ("/rate Heat ４", "4 is"),  # a full-width digit is still a number
]


@pytest.mark.parametrize(("line", "reply"), ODD_INPUT)
async def test_odd_input_gets_a_friendly_reply(
    service: MovieService, line: str, reply: str
) -> None:
    out = await run_lines(service, line)
    assert reply in out or (reply == "4 is" and "Rated Heat (1995)" in out)
    assert "Traceback" not in out


async def test_unwritable_paths_are_explained_and_the_console_goes_on(
    service: MovieService, tmp_path: Path
) -> None:
    for member in (0, 1, 2):
        await service.rate(member, 1, 4.0)  # three raters: /stats has a chart to save
    out = await run_lines(
        service,
        f"/stats {tmp_path}/no/such/folder/x.png",
        "/stats /",
        "/export bad\x00name.csv",
        f"/export {tmp_path}/missing/dir/x.csv",
        f"/export {tmp_path}/mine.csv",
        "/myratings",
        write=write_file,
    )
    assert out.count("Could not write") == 4
    assert (tmp_path / "mine.csv").read_text().startswith("movieId,title,rating,timestamp")
    assert "Your ratings (1)" in out  # the console carried on after every refusal


async def test_markdown_escapes_do_not_reach_the_terminal(service: MovieService) -> None:
    out = await run_lines(service, "/rate Heat -5", "/rate #999 4", "/search *heat*")
    assert "\\-" not in out
    assert "\\#" not in out
    assert "\\*" not in out
    assert "-5 is out of range" in out


async def test_a_pick_from_the_numbered_list_finishes_the_rating(service: MovieService) -> None:
    out = await run_lines(service, "/rate hamlet 4", "2", "/myratings")
    assert "matches several movies" in out
    assert "Your ratings (1)" in out


LINES = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda command, rest: f"/{command} {rest}",
        st.sampled_from(
            ["rate", "unrate", "recommend", "myratings", "export", "search", "stats", "help", "x"]
        ),
        st.text(max_size=120),
    ),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(LINES, min_size=1, max_size=4))
async def test_any_unicode_line_gets_an_answer_not_a_traceback(
    service: MovieService, lines: list[str]
) -> None:
    # /export and /stats paths are parsed and handed to the recorder: no file is written.
    out = io.StringIO()
    console = Console(service, out, write=Recorder())
    for line in lines:
        await console.handle(line)  # raises on any bug: hypothesis then shows the input


async def test_similar_reasons_and_hiding_picks_in_the_console(service: MovieService) -> None:
    out = await run_lines(
        service,
        "/rate notebook 5",
        "/rate casablanca 5",
        "/rate titanic 5",
        "/recommend 2",
        "/similar Heat (1995)",
    )
    assert out.count("because you rated") == 2
    assert "Movies like Heat (1995)" in out
    console_out = io.StringIO()
    console = Console(service, console_out, write=Recorder())
    await console.handle("/recommend 2")
    first = console_out.getvalue().split("\n1. ")[1].split(" — ")[0]
    for line in ("/hide 1", "/recommend 2", "/hidden", "/unhide 1", "/recommend 2", "/seen 9 4"):
        await console.handle(line)
    text = console_out.getvalue()
    assert f"Hidden {first}" in text
    hidden_list = text.split("Not interested (1)")[1]
    assert f"1. {first}" in hidden_list
    assert f"{first} can be recommended to you again" in text
    assert "There is no number 9 in your last list" in text


async def test_a_whole_movie_night_in_the_console(service: MovieService) -> None:
    out = await run_lines(
        service,
        "/as 1",
        "/rate heat 5",
        "/as 2",
        "/rate notebook 5",
        "/as 0",
        "/movienight @0 @1 @2 3",
        "/vote 2",
        "/as 1",
        "/vote 1",
        "/vote 2",
        "/as 7",
        "/vote 1",
        "/as 0",
        "/close",
        "/watched",
    )
    assert "Movie night: vote for tonight's film" in out
    assert "Member 1 voted for 2 (instead of 1)." in out
    assert "This vote is for the members who were in the voice channel" in out  # member 7
    assert "tonight it's" in out
    winner = out.split("tonight it's ")[1].split("\n")[0]
    assert f"{winner} — " in out.split("Watched here (1)")[1]
    assert "with member 0, member 1, member 2" in out


async def test_control_characters_never_reach_the_terminal(service: MovieService) -> None:
    out = await run_lines(service, "/rate \x1b[2Jheat\x07 4", "/search \x1b]0;x\x07heat")
    assert "\x1b" not in out
    assert "\x07" not in out


async def test_console_export_includes_the_hidden_films(
    service: MovieService, tmp_path: Path
) -> None:
    await service.rate(0, 9, 4.0)
    await service.dismiss(0, 10)
    out = await run_lines(service, f"/export {tmp_path}/mine.csv", write=write_file)
    assert "the films you hid to" in out
    hidden = (tmp_path / "mine-not-interested.csv").read_text()
    assert hidden.startswith("movieId,title,dismissed_at")
    assert "Titanic (1997)" in hidden
