"""Movie night through the service: picks for a group, the vote, the watched list, the lobby."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import UserFacingError
from bot.service import MovieService
from tests.helpers import ACTION, ROMANCE, tiny_service

GUILD, CHANNEL = 77, 700
ALICE, BOB, CAROL, DAN = 11, 12, 13, 14


@pytest.fixture
async def service(tmp_path: Path, store: dict[str, Any]) -> AsyncIterator[MovieService]:
    async with tiny_service(tmp_path, **store) as svc:
        await svc.rate(ALICE, 1, 5.0)  # Heat
        await svc.rate(ALICE, 2, 4.5)  # Die Hard
        await svc.rate(BOB, 3, 5.0)  # The Terminator
        await svc.rate(CAROL, 7, 2.0)  # The Notebook
        yield svc


async def start(service: MovieService, members: list[int] | None, **kwargs: object) -> object:
    return await service.nights.start(
        guild_id=GUILD,
        channel_id=CHANNEL,
        invoker=ALICE,
        voice_members=members,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_voice_channel_night_offers_films_nobody_rated_and_opens_the_vote(
    service: MovieService,
) -> None:
    await service.dismiss(BOB, 4)  # Aliens: Bob is not interested
    night = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[BOB, CAROL, DAN]
    )
    assert night.night.state == "voting"
    assert set(night.members) == {ALICE, BOB, CAROL, DAN}
    assert night.newcomers == (DAN,)  # Dan has no ratings: he counts as "anyone"
    offered = {c.movie.movie_id for c in night.choices}
    assert len(offered) == 5
    assert offered.isdisjoint({1, 2, 3, 7, 4})  # rated by someone, or hidden by Bob
    for choice in night.choices:
        assert 1 <= choice.best_rank <= choice.worst_rank <= night.candidates


async def test_voting_changing_a_vote_and_closing_put_the_winner_on_the_watched_list(
    service: MovieService,
) -> None:
    night = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[BOB, CAROL]
    )
    night_id = night.night.id
    _, previous = await service.nights.vote(night_id, BOB, 2)
    assert previous is None
    _, previous = await service.nights.vote(night_id, BOB, 3)  # Bob changes his mind
    assert previous == 2
    view, _ = await service.nights.vote(night_id, CAROL, 3)
    assert [c.votes for c in view.choices] == [0, 0, 2, 0, 0]
    with pytest.raises(UserFacingError, match="were in the voice channel"):
        await service.nights.vote(night_id, DAN, 1)  # Dan was not there
    with pytest.raises(UserFacingError, match="Only the member who started this night"):
        await service.nights.close(night_id, BOB)
    closed = await service.nights.close(night_id, BOB, admin=True)  # an admin may
    assert closed.night.state == "closed"
    assert closed.winner == view.choices[2].movie
    page = await service.nights.watched(GUILD)
    assert [(e.movie, set(e.members)) for e in page.items] == [(closed.winner, {ALICE, BOB, CAROL})]
    with pytest.raises(UserFacingError, match="This vote is closed"):
        await service.nights.vote(night_id, BOB, 1)
    # The next night never offers the watched film again.
    again = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[BOB, CAROL]
    )
    assert closed.winner not in {c.movie for c in again.choices}


async def test_without_votes_the_best_group_score_wins(service: MovieService) -> None:
    night = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[BOB]
    )
    closed = await service.nights.close(night.night.id, ALICE)
    assert closed.winner == night.choices[0].movie


async def test_bad_starts_change_nothing(service: MovieService) -> None:
    with pytest.raises(UserFacingError, match="only one in your voice channel"):
        await service.nights.start(
            guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[ALICE]
        )
    await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[BOB]
    )
    with pytest.raises(UserFacingError, match="already open in this channel"):
        await service.nights.start(
            guild_id=GUILD, channel_id=CHANNEL, invoker=BOB, voice_members=[CAROL]
        )
    with pytest.raises(UserFacingError, match="1 to 5 films"):
        await service.nights.start(
            guild_id=GUILD, channel_id=CHANNEL + 1, invoker=ALICE, voice_members=[BOB], count=9
        )


async def test_a_crowded_channel_is_scored_for_the_25_with_most_ratings(
    service: MovieService,
) -> None:
    crowd = list(range(1000, 1040))
    for member in crowd[:26]:
        await service.rate(member, ROMANCE[member % len(ROMANCE)], 4.0)
    night = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=crowd[0], voice_members=crowd
    )
    assert len(night.members) == 25
    assert len(night.left_out) == 15
    assert set(night.left_out) <= set(crowd[25:])


async def test_the_lobby_collects_members_then_votes(service: MovieService) -> None:
    lobby = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=None, genre="action"
    )
    assert lobby.night.state == "lobby"
    assert lobby.choices == ()
    await service.nights.join(lobby.night.id, BOB)
    with pytest.raises(UserFacingError, match="already in"):
        await service.nights.join(lobby.night.id, BOB)
    with pytest.raises(UserFacingError, match="hasn't started yet"):
        await service.nights.vote(lobby.night.id, BOB, 1)
    voting = await service.nights.begin_vote(lobby.night.id, ALICE)
    assert voting.night.state == "voting"
    assert {c.movie.movie_id for c in voting.choices} <= set(ACTION) - {1, 2, 3}
    with pytest.raises(UserFacingError, match="joined the lobby"):
        await service.nights.vote(lobby.night.id, CAROL, 1)
    with pytest.raises(UserFacingError, match="lobby has closed"):
        await service.nights.join(lobby.night.id, CAROL)


async def test_timers_move_lobbies_to_votes_and_close_votes(service: MovieService) -> None:
    lobby = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=None
    )
    await service.nights.join(lobby.night.id, CAROL)
    later = int(time.time()) + service.nights.config.lobby_seconds + 1
    [voting] = await service.nights.due(later)
    assert voting.night.state == "voting"
    assert await service.nights.due(later) == []  # the vote has hours to go
    [closed] = await service.nights.due(later + service.nights.config.vote_seconds + 1)
    assert closed.night.state == "closed"
    assert closed.winner is not None


async def test_the_watched_list_by_hand(service: MovieService) -> None:
    heat = await service.nights.add_watched(GUILD, 1, ALICE)
    with pytest.raises(UserFacingError, match="already on the watched list"):
        await service.nights.add_watched(GUILD, 1, ALICE)
    page = await service.nights.watched(GUILD)
    assert [(e.movie, e.by_hand) for e in page.items] == [(heat, True)]
    await service.nights.remove_watched(GUILD, 1)
    with pytest.raises(UserFacingError, match="isn't on the watched list"):
        await service.nights.remove_watched(GUILD, 1)
    assert (await service.nights.watched(GUILD)).total == 0


async def test_a_lobby_whose_members_all_left_is_cancelled_not_stuck(
    service: MovieService,
) -> None:
    lobby = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=DAN, voice_members=None
    )
    with pytest.raises(UserFacingError, match="Nobody has joined yet"):
        await service.nights.begin_vote(lobby.night.id, DAN)
    await service.forget(DAN)  # the lobby's only member
    stuck_elsewhere = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL + 1, invoker=ALICE, voice_members=[BOB]
    )
    later = int(time.time()) + service.nights.config.vote_seconds + 1
    closed = {view.night.id: view.night.state for view in await service.nights.due(later)}
    assert closed == {lobby.night.id: "cancelled", stuck_elsewhere.night.id: "closed"}
    again = await service.nights.start(
        guild_id=GUILD, channel_id=CHANNEL, invoker=ALICE, voice_members=[BOB]
    )
    assert again.night.state == "voting"  # the channel is free again


async def test_a_busy_database_leaves_a_due_night_open_for_the_next_check(
    tmp_path: Path,
) -> None:
    import sqlite3

    async with tiny_service(tmp_path, busy_timeout_ms=100) as svc:
        started = await svc.nights.start(
            guild_id=77, channel_id=5, invoker=ALICE, voice_members=None
        )
        await svc.nights.join(started.night.id, BOB)
        other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert await svc.nights.due(2**40) == []  # busy: nothing moved, nothing cancelled
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await svc.nights.view(started.night.id)).night.state == "lobby"
        moved = await svc.nights.due(2**40)  # the next check moves it
        assert [v.night.id for v in moved] == [started.night.id]
        assert moved[0].night.state == "voting"  # the lobby became a vote, as it should
