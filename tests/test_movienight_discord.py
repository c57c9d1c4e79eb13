"""Movie night through the real discord.py client against the fake Discord API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.night_config import NightConfig
from tests.fake_discord import ADMIN_PERMISSIONS, VOICE_CHANNEL_ID, components
from tests.harness import Harness, start_harness

ALICE, BOB, CAROL, OUTSIDER = 1001, 2002, 3003, 4004
IN_VOICE = {ALICE: VOICE_CHANNEL_ID, BOB: VOICE_CHANNEL_ID, CAROL: VOICE_CHANNEL_ID}


async def rate_some(h: Harness) -> None:
    await h.service.rate(ALICE, 1, 5.0)
    await h.service.rate(BOB, 3, 4.5)
    await h.service.rate(CAROL, 7, 4.0)


@pytest.fixture
async def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    async for harness in start_harness(tmp_path, monkeypatch, voice=IN_VOICE):
        await rate_some(harness)
        yield harness


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["label"]: c for c in components(message)}


async def eventually(check: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


async def said(exchange: Any, phrase: str) -> None:
    """Wait until the member was told ``phrase`` (follow-ups come after the first answer)."""
    await eventually(lambda: phrase in exchange.text())


async def shows(message: dict[str, Any], phrase: str, part: str = "description") -> None:
    """Wait until the night's message shows ``phrase`` (the bot edits it after each click)."""
    await eventually(lambda: phrase in message["embeds"][0][part], seconds=8)


async def start_night(h: Harness, **options: Any) -> dict[str, Any]:
    ex = await h.fake.settle(await h.fake.command("movienight", options, user_id=ALICE))
    assert ex.responses[0]["data"]["flags"] == 64  # the command's own answer is private
    assert h.fake.channel_posts, ex.text()
    return h.fake.channel_posts[-1]  # the night itself is a channel message


async def test_a_night_for_the_voice_channel_vote_change_and_close(h: Harness) -> None:
    message = await start_night(h, count=3)
    embed = message["embeds"][0]
    assert embed["title"] == "Movie night: vote for tonight's film"
    for member in (ALICE, BOB, CAROL):
        assert f"<@{member}>" in embed["description"]
    assert "someone's #" in embed["description"]
    assert "★" not in embed["description"]
    votes = [b for label, b in buttons(message).items() if label[0].isdigit()]
    assert len(votes) == 3

    vote = await h.fake.settle(await h.fake.click(message, votes[1]["custom_id"], user_id=BOB))
    await said(vote, "You voted for")
    assert "1 vote" in message["embeds"][0]["description"]
    moved = await h.fake.settle(await h.fake.click(message, votes[0]["custom_id"], user_id=BOB))
    await said(moved, "your vote moved")
    await h.fake.settle(await h.fake.click(message, votes[0]["custom_id"], user_id=CAROL))
    await shows(message, "2 votes")

    outsider = await h.fake.settle(
        await h.fake.click(message, votes[2]["custom_id"], user_id=OUTSIDER)
    )
    await said(outsider, "were in the voice channel")
    close = buttons(message)["Close the vote"]["custom_id"]
    refused = await h.fake.settle(await h.fake.click(message, close, user_id=BOB))
    await said(refused, "Only the member who started this night")

    closed = await h.fake.settle(await h.fake.click(message, close, user_id=ALICE))
    await said(closed, "wins")
    winner = votes[0]["label"].split(". ", 1)[1]
    assert message["embeds"][0]["title"] == f"Movie night: tonight it's {winner}"
    assert message["components"] == []  # no buttons on a closed night
    watched = await h.fake.settle(await h.fake.command("watched", user_id=CAROL))
    text = watched.text()
    assert winner in text
    assert f"<@{ALICE}>" in text


async def test_the_lobby_when_the_starter_is_not_in_voice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(tmp_path, monkeypatch):
        await rate_some(h)
        message = await start_night(h)
        assert message["embeds"][0]["title"] == "Movie night: who's in?"
        join = buttons(message)["I'm in"]["custom_id"]
        joined = await h.fake.settle(await h.fake.click(message, join, user_id=BOB))
        await said(joined, "You're in")
        await shows(message, f"<@{BOB}>")
        start = buttons(message)["Start the vote"]["custom_id"]
        refused = await h.fake.settle(await h.fake.click(message, start, user_id=BOB))
        await said(refused, "Only the member who started")
        await h.fake.settle(await h.fake.click(message, start, user_id=ALICE))
        await shows(message, "vote for tonight", "title")
        assert "I'm in" not in buttons(message)  # joining ended with the lobby
        vote = next(b for label, b in buttons(message).items() if label.startswith("1."))
        late = await h.fake.settle(await h.fake.click(message, vote["custom_id"], user_id=CAROL))
        await said(late, "members who joined the lobby")


async def test_a_second_night_in_the_channel_and_a_lonely_voice_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(tmp_path, monkeypatch, voice={ALICE: VOICE_CHANNEL_ID}):
        alone = await h.fake.settle(await h.fake.command("movienight", user_id=ALICE))
        assert "only one in your voice channel" in alone.text()
        assert h.fake.channel_posts == []
        await h.fake.set_voice(BOB)
        await asyncio.sleep(0.1)
        await start_night(h)
        again = await h.fake.settle(await h.fake.command("movienight", user_id=BOB))
        assert "already open in this channel" in again.text()
        assert len(h.fake.channel_posts) == 1


async def test_an_open_vote_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(tmp_path, monkeypatch, voice=IN_VOICE):
        await rate_some(h)
        message = await start_night(h, count=2)
    async for h in start_harness(tmp_path, monkeypatch, voice=IN_VOICE):  # a new process
        h.fake.messages[message["id"]] = message  # Discord still has the night's message
        vote = next(b for label, b in buttons(message).items() if label.startswith("2."))
        ex = await h.fake.settle(await h.fake.click(message, vote["custom_id"], user_id=CAROL))
        await said(ex, "You voted for")
        assert h.fake.channel_edits  # the restarted bot edits the old message
        assert "1 vote" in h.fake.channel_edits[-1]["embeds"][0]["description"]


async def test_a_vote_closes_by_itself_when_its_time_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(
        tmp_path,
        monkeypatch,
        voice=IN_VOICE,
        config={"nights": NightConfig(lobby_seconds=1, vote_seconds=1)},
        movie_night_check_seconds=0.2,
    ):
        await rate_some(h)
        message = await start_night(h)
        await shows(message, "tonight it's", "title")
        assert message["components"] == []


async def test_admins_edit_the_watched_list(h: Harness) -> None:
    refused = await h.fake.settle(await h.fake.command("watched", {"add": "#9"}, user_id=BOB))
    assert "Manage Server" in refused.text()
    added = await h.fake.settle(
        await h.fake.command("watched", {"add": "#9"}, user_id=BOB, permissions=ADMIN_PERMISSIONS)
    )
    assert "Added **Casablanca (1942)** to the watched list" in added.text()
    listing = await h.fake.settle(await h.fake.command("watched"))
    assert "Casablanca (1942)" in listing.text()
    assert "added by hand" in listing.text()
    removed = await h.fake.settle(
        await h.fake.command(
            "watched", {"remove": "#9"}, user_id=BOB, permissions=ADMIN_PERMISSIONS
        )
    )
    assert "Removed **Casablanca (1942)**" in removed.text()
