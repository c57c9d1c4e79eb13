"""The real bot against the fake Discord API on loopback, over the tiny data set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import discord.gateway
import discord.http
import pytest
import yarl

from bot.client import MovieBot
from bot.service import MovieService
from bot.settings import Settings
from tests.fake_discord import GUILD_ID, FakeDiscord
from tests.helpers import tiny_service

TOKEN = "fake-token-for-tests"


@dataclass
class Harness:
    fake: FakeDiscord
    bot: MovieBot
    service: MovieService


async def start_harness(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    config: dict[str, Any] | None = None,
    voice: dict[int, int] | None = None,
    **settings: object,
) -> AsyncIterator[Harness]:
    """Run the real bot against the fake Discord API, over the tiny data set.

    ``config`` changes the service's configuration; ``voice`` puts members in voice channels
    before the bot connects (member id -> channel id); ``guilds`` are the servers the fake
    knows and ``recommended_shards`` what it recommends; other keywords are settings.
    """
    heartbeat_ms = int(settings.pop("heartbeat_ms", 41_250))  # type: ignore[call-overload]
    guilds = tuple(settings.pop("guilds", (GUILD_ID,)))  # type: ignore[call-overload]
    recommended = int(settings.pop("recommended_shards", 1))  # type: ignore[call-overload]
    fake = FakeDiscord(
        heartbeat_interval_ms=heartbeat_ms, guilds=guilds, recommended_shards=recommended
    )
    fake.voice.update(voice or {})
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.base_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
    )
    values: dict[str, object] = {
        "discord_token": TOKEN,
        "refit_interval_minutes": 0,
        "command_cooldown_burst": 50,
        **settings,
    }
    try:
        async with tiny_service(tmp_path, **(config or {})) as service:
            bot = MovieBot(
                service,
                Settings(_env_file=None, **values),  # type: ignore[arg-type]
                guild_ready_timeout=0.05,  # the fake sends every guild at once
                identify_interval=0,  # the fake takes every shard's login at once
            )
            runner = asyncio.create_task(bot.start(TOKEN))
            await asyncio.wait_for(fake.ready.wait(), 10)
            await asyncio.wait_for(bot.wait_until_ready(), 10)
            try:
                yield Harness(fake, bot, service)
            finally:
                await bot.close()
                await asyncio.wait_for(runner, 10)
    finally:
        await fake.stop()
