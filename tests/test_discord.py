"""The cogs through the real discord.py client, against the fake Discord API on loopback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from pathlib import Path

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from bot.client import MovieBot
from bot.cogs.errors import APOLOGY
from bot.db import ratings as rating_store
from bot.settings import Settings
from tests.fake_discord import ADMIN_PERMISSIONS, FakeDiscord, components
from tests.harness import TOKEN, Harness, start_harness
from tests.helpers import gate_refits, tiny_service


def assert_quiet(exchange_payloads: list[dict]) -> None:
    """Every message the bot sent allows no mentions, so nothing it echoes can ping anyone."""
    messages = [p for p in exchange_payloads if p.get("content") or p.get("embeds")]
    assert messages
    for payload in messages:
        assert payload.get("allowed_mentions", {}).get("parse") == [], payload


async def test_login_syncs_commands_once_and_not_again_when_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(tmp_path, monkeypatch):
        names = {c["name"] for c in h.fake.global_command_syncs[0]}
        assert names == {
            "rate",
            "unrate",
            "recommend",
            "similar",
            "movienight",
            "watched",
            "quickrate",
            "import",
            "myratings",
            "export",
            "forgetme",
            "stats",
            "retrain",
            "help",
        }
        retrain = next(c for c in h.fake.global_command_syncs[0] if c["name"] == "retrain")
        assert int(retrain["default_member_permissions"]) == 32  # Manage Server
    async for h in start_harness(tmp_path, monkeypatch):
        assert h.fake.global_command_syncs == []  # same definitions: no global sync on boot


async def test_dev_guild_gets_commands_instantly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(tmp_path, monkeypatch, dev_guild_id=123):
        assert len(h.fake.guild_command_syncs) == 1
        assert (
            "PUT",
            f"/applications/{h.bot.application_id}/guilds/123/commands",
        ) in h.fake.requests


async def test_rate_autocomplete_offers_titles_carrying_the_id(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.autocomplete("rate", {"title": "hea"}, "title"))
    choices = ex.responses[0]["data"]["choices"]
    assert ex.responses[0]["type"] == 8
    assert choices[:2] == [
        {"name": "Heat (1995)", "value": "#1"},
        {"name": "The Heat (2013)", "value": "#6"},
    ]


async def test_rate_by_autocomplete_pick_and_rerate(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("rate", {"title": "#1", "rating": 4.5}))
    assert ex.responses[0]["type"] == 5
    assert ex.responses[0]["data"]["flags"] == 64
    assert "Rated **Heat (1995)** ★★★★½ (4.5)." in ex.text()
    ex = await h.fake.settle(await h.fake.command("rate", {"title": "heat", "rating": 3.0}))
    assert "Your previous rating was ★★★★½ (4.5)." in ex.text()
    assert ex.first_response_seconds < 3
    assert await rating_store.for_user(h.service.db, 1001) == {1: 3.0}


async def test_ambiguous_title_asks_with_a_menu_then_saves_the_choice(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("rate", {"title": "hamlet", "rating": 4.0}))
    assert "matches several movies" in ex.text()
    message = h.fake.last_message(ex)
    select = components(message)[0]
    assert select["type"] == 3
    options = {o["label"]: o["value"] for o in select["options"]}
    assert set(options) == {"Hamlet (1948)", "Hamlet (1996)"}
    assert await rating_store.for_user(h.service.db, 1001) == {}  # nothing guessed
    # Someone else cannot pick for this member.
    other = await h.fake.settle(
        await h.fake.click(
            message,
            select["custom_id"],
            values=[options["Hamlet (1948)"]],
            component_type=3,
            user_id=2002,
        )
    )
    assert "someone else's" in other.text()
    pick = await h.fake.settle(
        await h.fake.click(
            message, select["custom_id"], values=[options["Hamlet (1948)"]], component_type=3
        )
    )
    assert pick.responses[0]["type"] == 6  # acknowledged at once, before the write
    assert "Rated **Hamlet (1948)** ★★★★ (4)." in pick.text()
    assert "Rated **Hamlet (1948)**" in message["content"]  # the menu message now says so
    assert message["components"] == []
    assert await rating_store.for_user(h.service.db, 1001) == {12: 4.0}


async def test_unknown_title_and_bad_rating_get_friendly_errors(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("rate", {"title": "zzzqqq", "rating": 4.0}))
    assert "couldn't find a movie called “zzzqqq”" in ex.text()
    ex = await h.fake.settle(await h.fake.command("rate", {"title": "heat", "rating": 4.25}))
    assert "did you mean 4 or 4.5?" in ex.text()
    assert ex.responses[0]["data"]["flags"] == 64
    assert await rating_store.for_user(h.service.db, 1001) == {}


async def test_recommend_before_and_after_rating(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("recommend", {"count": 3}))
    embed = ex.messages[0]["embeds"][0]
    assert embed["title"] == "Popular picks"
    assert "rate a few films with /rate" in embed["footer"]["text"]
    for title in ("#7", "#9", "#10"):
        await h.fake.settle(await h.fake.command("rate", {"title": title, "rating": 5.0}))
    ex = await h.fake.settle(await h.fake.command("recommend", {"count": 2}))
    embed = ex.messages[0]["embeds"][0]
    assert embed["title"] == "Your top 2 picks"
    assert "Based on your 3 ratings." in embed["footer"]["text"]
    assert "Pride & Prejudice (2005)" in embed["description"]
    assert "[IMDb](https://www.imdb.com/title/tt" in embed["description"]
    assert ex.first_response_seconds < 3


async def test_recommend_genre_autocomplete_and_unknown_genre(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.autocomplete("recommend", {"genre": "rom"}, "genre"))
    assert ex.responses[0]["data"]["choices"] == [{"name": "Romance", "value": "Romance"}]
    ex = await h.fake.settle(await h.fake.command("recommend", {"genre": "Cartoons"}))
    assert "I don't know the genre “Cartoons”" in ex.text()


async def test_retrain_as_admin_and_refused_for_members(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("retrain"))
    assert "Only members with the Manage Server permission" in ex.text()
    ex = await h.fake.settle(
        await h.fake.command("retrain", permissions=ADMIN_PERMISSIONS), within=60
    )
    assert ex.responses[0]["type"] == 5
    assert "Retrained in" in ex.text()
    assert "The new model is live." in ex.text()


async def test_second_retrain_while_one_runs_is_friendly(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_refits(monkeypatch)
    first = await h.fake.command("retrain", permissions=ADMIN_PERMISSIONS)
    await asyncio.wait_for(first.answered.wait(), 5)
    second = await h.fake.settle(await h.fake.command("retrain", permissions=ADMIN_PERMISSIONS))
    assert "already running" in second.text()
    # Other members are served while the refit runs.
    quick = await h.fake.settle(await h.fake.command("recommend", {"count": 1}, user_id=3003))
    assert quick.first_response_seconds < 3
    gate.set()
    await h.fake.settle(first, within=60)
    assert "Retrained in" in first.text()


async def test_myratings_pages_with_buttons(h: Harness) -> None:
    for movie_id in range(1, 14):
        await h.service.rate(1001, movie_id, 3.5)
    ex = await h.fake.settle(await h.fake.command("myratings"))
    message = h.fake.last_message(ex)
    assert message["embeds"][0]["footer"]["text"] == "Page 1 of 2"
    buttons = {c["label"]: c for c in components(message)}
    assert buttons["Previous"]["disabled"] is True
    nxt = await h.fake.settle(await h.fake.click(message, buttons["Next"]["custom_id"]))
    assert nxt.responses[0]["type"] == 6  # acknowledged first; the page is read after
    assert message["embeds"][0]["footer"]["text"] == "Page 2 of 2"


async def test_export_sends_a_csv_and_forgetme_needs_the_button(h: Harness) -> None:
    await h.service.rate(1001, 9, 4.5)
    ex = await h.fake.settle(await h.fake.command("export"))
    name, data = ex.files[0]
    assert name == "moviebot-ratings.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert rows[0]["title"] == "Casablanca (1942)"
    assert rows[0]["rating"] == "4.5"

    ex = await h.fake.settle(await h.fake.command("forgetme"))
    assert "can't be undone" in ex.text()
    assert await rating_store.for_user(h.service.db, 1001) == {9: 4.5}
    message = h.fake.last_message(ex)
    confirm = next(c for c in components(message) if c["label"] == "Delete all my ratings")
    done = await h.fake.settle(await h.fake.click(message, confirm["custom_id"]))
    assert "Deleted all 1 of your ratings" in done.text()
    assert await rating_store.for_user(h.service.db, 1001) == {}


async def test_help_lists_every_command(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("help"))
    text = ex.text()
    registered = {c.name for c in h.bot.tree.get_commands()}
    assert len(registered) >= 9
    for name in registered:
        assert f"`/{name}" in text, f"/help does not mention /{name}"


async def test_unexpected_error_is_logged_and_the_member_gets_an_apology(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(h.service, "recommend", broken)
    with caplog.at_level(logging.ERROR):
        ex = await h.fake.settle(await h.fake.command("recommend"))
    assert APOLOGY in ex.text()
    assert any(
        "boom" in (r.exc_text or "") or (r.exc_info and "boom" in str(r.exc_info[1]))
        for r in caplog.records
    )


async def test_bursts_are_slowed_down_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(
        tmp_path, monkeypatch, command_cooldown_burst=2, command_cooldown_seconds=60
    ):
        for _ in range(2):
            await h.fake.settle(await h.fake.command("help"))
        ex = await h.fake.settle(await h.fake.command("help"))
        assert "You're going a bit fast. Try again in" in ex.text()
        other = await h.fake.settle(await h.fake.command("help", user_id=4004))
        assert "moviebot" in other.text()


async def test_replies_never_ping_anyone(h: Harness) -> None:
    ex = await h.fake.settle(
        await h.fake.command("rate", {"title": "@everyone <@&1> <@42>", "rating": 4.0})
    )
    assert_quiet(ex.all_payloads())
    assert "@everyone" not in ex.text().replace("@\u200beveryone", "")


async def test_heartbeats_keep_flowing_during_a_refit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for h in start_harness(tmp_path, monkeypatch, heartbeat_ms=200):
        gate = gate_refits(monkeypatch)  # after start-up, so only this refit is held
        task = asyncio.create_task(h.service.retrain("admin"))
        await asyncio.sleep(0.1)
        before = len(h.fake.heartbeats)
        await asyncio.sleep(1.2)
        assert len(h.fake.heartbeats) - before >= 4
        gate.set()
        await task


async def test_bot_keeps_serving_after_a_gateway_reconnect(h: Harness) -> None:
    await h.fake.force_reconnect()
    await asyncio.wait_for(h.fake.ready.wait(), 15)
    assert h.fake.resumes == 1
    ex = await h.fake.settle(await h.fake.command("help"))
    assert "moviebot" in ex.text()


def test_token_is_never_in_settings_repr() -> None:
    settings = Settings(_env_file=None, discord_token=TOKEN)  # type: ignore[call-arg]
    assert TOKEN not in repr(settings)
    assert TOKEN not in json.dumps(settings.model_dump(mode="json"))


async def test_stats_shows_server_numbers_with_a_chart(h: Harness) -> None:
    from tests.fake_discord import GUILD_ID

    for user in (1, 2, 3):
        await h.service.rate(user, 1, 4.5, guild_id=GUILD_ID)
    ex = await h.fake.settle(await h.fake.command("stats"))
    embed = ex.messages[0]["embeds"][0]
    assert "3 members rated 3 movies here." in embed["description"]
    assert "**Heat (1995)** — mean 4.5 from 3 ratings" in embed["description"]
    assert embed["image"]["url"] == "attachment://ratings.png"
    assert ex.files[0][0] == "ratings.png"
    assert ex.files[0][1].startswith(b"\x89PNG")
    assert (ex.responses[0].get("data") or {}).get("flags", 0) & 64 == 0  # shared with the channel


async def test_token_never_appears_in_logs_even_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async for h in start_harness(tmp_path, monkeypatch):
            await h.fake.settle(await h.fake.command("help"))
            await h.fake.settle(
                await h.fake.command("rate", {"title": "nothing like it", "rating": 4.0})
            )
    assert "IDENTIFY" in caplog.text  # the gateway login really was logged at debug level
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(r.args) for r in caplog.records)


async def test_sync_publishes_commands_globally_and_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.base_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
    )
    try:
        async with tiny_service(tmp_path) as service:
            settings = Settings(_env_file=None, discord_token=TOKEN)  # type: ignore[call-arg]
            bot = MovieBot(service, settings, sync_only=True, guild_ready_timeout=0.05)
            async with bot:
                await asyncio.wait_for(bot.start(TOKEN), 20)
            assert len(fake.global_command_syncs) == 1
            assert fake.identifies == 0  # it never went online
    finally:
        await fake.stop()


async def test_an_expired_interaction_is_logged_and_the_bot_carries_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.fake.expire_next = 1  # the bot's first answer arrives after Discord gave up
    with caplog.at_level(logging.WARNING):
        late = await h.fake.command("recommend")
        await asyncio.wait_for(late.settled.wait(), 10)
        await asyncio.sleep(0.2)
    assert late.responses == []
    assert late.messages == []
    assert "expired before it was answered" in caplog.text
    assert "Traceback" not in caplog.text
    ex = await h.fake.settle(await h.fake.command("recommend", {"count": 1}))
    assert "Popular picks" in ex.text()


async def test_the_schedule_refits_after_new_ratings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import model_runs

    async for h in start_harness(tmp_path, monkeypatch, refit_interval_minutes=0.01):
        await h.service.rate(1001, 1, 4.0)
        for _ in range(100):
            runs = model_runs(tmp_path)
            if runs[0]["trigger"] == "schedule" and runs[0]["status"] == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert runs[0]["trigger"] == "schedule"
        assert runs[0]["status"] == "succeeded"
        assert runs[0]["n_chat_ratings"] == 1
        assert await h.service.pending_changes() == 0


async def test_menu_pick_and_delete_button_answer_at_once_while_the_database_is_locked(
    h: Harness, tmp_path: Path
) -> None:
    import sqlite3

    ex = await h.fake.settle(await h.fake.command("rate", {"title": "hamlet", "rating": 4.0}))
    menu = h.fake.last_message(ex)
    select = components(menu)[0]
    await h.service.rate(1001, 9, 3.0)
    ex = await h.fake.settle(await h.fake.command("forgetme"))
    confirm_message = h.fake.last_message(ex)
    confirm = next(c for c in components(confirm_message) if c["label"] == "Delete all my ratings")

    other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for a while
    try:
        pick = await h.fake.click(
            menu, select["custom_id"], values=[select["options"][0]["value"]], component_type=3
        )
        delete = await h.fake.click(confirm_message, confirm["custom_id"])
        await asyncio.wait_for(pick.answered.wait(), 3)
        await asyncio.wait_for(delete.answered.wait(), 3)
        assert pick.responses[0]["type"] == 6  # acknowledged before the write could wait
        assert delete.responses[0]["type"] == 6
        assert pick.first_response_seconds < 1
        assert delete.first_response_seconds < 1
        await asyncio.sleep(0.5)
    finally:
        other.execute("ROLLBACK")
        other.close()
    await h.fake.settle(pick)
    await h.fake.settle(delete)
    assert "Rated **Hamlet" in pick.text()
    assert "Deleted all" in delete.text()


async def test_similar_lists_movies_like_the_one_named(h: Harness) -> None:
    ex = await h.fake.settle(await h.fake.command("similar", {"title": "#7"}))  # The Notebook
    text = ex.text()
    assert "Movies like The Notebook (2004)" in text
    assert "Casablanca (1942)" in text or "Titanic (1997)" in text
    ambiguous = await h.fake.settle(await h.fake.command("similar", {"title": "hamlet"}))
    assert "matches several movies" in ambiguous.text()


async def test_every_pick_says_which_rated_film_it_comes_from(h: Harness) -> None:
    for movie_id in (7, 9, 10):
        await h.service.rate(1001, movie_id, 5.0)
    ex = await h.fake.settle(await h.fake.command("recommend", {"count": 3}))
    description = ex.messages[0]["embeds"][0]["description"]
    assert description.count("because you rated") == 3
    assert any(t in description for t in ("The Notebook (2004)", "Casablanca", "Titanic (1997)"))


async def test_not_interested_hides_a_pick_until_undone(h: Harness) -> None:
    for movie_id in (7, 9, 10):
        await h.service.rate(1001, movie_id, 5.0)
    ex = await h.fake.settle(await h.fake.command("recommend", {"count": 3}))
    message = h.fake.last_message(ex)
    hide = next(c for c in components(message) if c["placeholder"] == "Not interested in…")
    first = hide["options"][0]
    done = await h.fake.settle(
        await h.fake.click(message, hide["custom_id"], values=[first["value"]], component_type=3)
    )
    assert f"Hidden **{first['label']}**" in done.text()
    again = await h.fake.settle(await h.fake.command("recommend", {"count": 3}))
    assert first["label"] not in again.messages[0]["embeds"][0]["description"]

    mine = await h.fake.settle(await h.fake.command("myratings"))
    page = h.fake.last_message(mine)
    toggle = next(c for c in components(page) if c.get("label") == "Not interested")
    await h.fake.settle(await h.fake.click(page, toggle["custom_id"]))
    assert first["label"] in page["embeds"][0]["description"]
    undo = next(c for c in components(page) if c["type"] == 3)
    undone = await h.fake.settle(
        await h.fake.click(page, undo["custom_id"], values=["0"], component_type=3)
    )
    for _ in range(100):  # the confirmation follows the page update
        if "can be recommended to you again" in undone.text():
            break
        await asyncio.sleep(0.02)
    assert "can be recommended to you again" in undone.text()
    assert "Nothing hidden" in page["embeds"][0]["description"]
    assert await h.service.dismissed(1001) == ()


async def test_seen_it_asks_for_the_rating_and_saves_it(h: Harness) -> None:
    await h.service.rate(1001, 7, 5.0)
    ex = await h.fake.settle(await h.fake.command("recommend", {"count": 3}))
    message = h.fake.last_message(ex)
    seen = next(c for c in components(message) if c["placeholder"] == "Seen it: rate…")
    pick = seen["options"][0]
    asked = await h.fake.settle(
        await h.fake.click(message, seen["custom_id"], values=[pick["value"]], component_type=3)
    )
    stars_menu = h.fake.last_message(asked)
    select = components(stars_menu)[0]
    assert [o["value"] for o in select["options"]] == [f"{x / 2:g}" for x in range(10, 0, -1)]
    rated = await h.fake.settle(
        await h.fake.click(stars_menu, select["custom_id"], values=["3.5"], component_type=3)
    )
    assert "★★★½ (3.5)" in rated.text()
    assert (await rating_store.for_user(h.service.db, 1001))[int(pick["value"])] == 3.5


async def test_export_has_a_second_file_for_not_interested(h: Harness) -> None:
    await h.service.rate(1001, 9, 4.5)
    await h.service.dismiss(1001, 10)
    ex = await h.fake.settle(await h.fake.command("export"))
    files = dict(ex.files)
    ratings = list(csv.DictReader(io.StringIO(files["moviebot-ratings.csv"].decode())))
    hidden = list(csv.DictReader(io.StringIO(files["moviebot-not-interested.csv"].decode())))
    assert [r["title"] for r in ratings] == ["Casablanca (1942)"]
    assert list(hidden[0]) == ["movieId", "title", "dismissed_at"]
    assert hidden[0]["title"] == "Titanic (1997)"


OTHER_GUILD = 900_000_000_004_194_405  # (id >> 22) % 2 == 0, while GUILD_ID's shard is 1


async def test_one_process_runs_every_shard_and_answers_in_each_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_discord import GUILD_ID

    async for h in start_harness(
        tmp_path, monkeypatch, guilds=(GUILD_ID, OTHER_GUILD), recommended_shards=2
    ):
        assert h.fake.identifies == 2  # Discord recommended two shards; this process runs both
        assert h.fake.shard_of(GUILD_ID) != h.fake.shard_of(OTHER_GUILD)
        assert sorted(h.bot.shards) == [0, 1]
        assert {g.id for g in h.bot.guilds} == {GUILD_ID, OTHER_GUILD}
        rated = await h.fake.settle(
            await h.fake.command("rate", {"title": "Heat (1995)", "rating": 5}, user_id=77)
        )
        assert "5" in rated.text()
        picks = await h.fake.settle(
            await h.fake.command("myratings", {}, user_id=77, guild_id=OTHER_GUILD)
        )
        assert "Heat (1995)" in picks.text()  # the same member, the same ratings, any shard


async def test_shard_settings_pick_the_shards_this_process_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fake_discord import GUILD_ID

    async for h in start_harness(
        tmp_path, monkeypatch, guilds=(GUILD_ID, OTHER_GUILD), shard_count=2, shard_ids="1"
    ):
        assert h.fake.identifies == 1
        assert list(h.bot.shards) == [1]
        assert [g.id for g in h.bot.guilds] == [GUILD_ID]  # only the servers on shard 1
        answer = await h.fake.settle(await h.fake.command("help", {}))
        assert answer.text()
        # Movie nights whose time is up are moved by the process that serves their server.
        cog = h.bot.get_cog("MovieNight")
        assert cog.serves(GUILD_ID)  # type: ignore[union-attr]
        assert not cog.serves(OTHER_GUILD)  # type: ignore[union-attr]
        nights = h.service.nights
        here = await nights.start(guild_id=GUILD_ID, channel_id=1, invoker=5, voice_members=None)
        there = await nights.start(
            guild_id=OTHER_GUILD, channel_id=2, invoker=5, voice_members=None
        )
        later = 2**40  # long after both lobbies ran out
        moved = await nights.due(later, serves=cog.serves)  # type: ignore[union-attr]
        assert [v.night.id for v in moved] == [here.night.id]
        assert (await nights.view(there.night.id)).night.state == "lobby"  # the other's
