"""A small fake of Discord's REST and gateway API on 127.0.0.1, for the real discord.py client.

discord.py builds every REST URL from ``discord.http.Route.BASE`` and opens the gateway at
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``; pointing both here runs the bot's real code
path (login, gateway, slash commands, autocomplete, components, follow-ups) with no network.
Only what the bot uses is implemented; responses are JSON with ``Content-Type: application/json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = 900_000_000_000_000_001
GUILD_ID = 900_000_000_000_000_100
CHANNEL_ID = 900_000_000_000_000_200
VOICE_CHANNEL_ID = 900_000_000_000_000_300
MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11)  # view channel, send messages
ADMIN_PERMISSIONS = MEMBER_PERMISSIONS | MANAGE_GUILD

_ids = itertools.count(950_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_ids))


def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


BOT_USER = user_payload(APP_ID, "moviebot", bot=True)


@dataclass
class Exchange:
    """One interaction sent to the bot and everything the bot answered to it."""

    id: str
    token: str
    sent_at: float
    responses: list[dict[str, Any]] = field(default_factory=list)  # callback payloads
    response_times: list[float] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # follow-ups and edits
    files: list[tuple[str, bytes]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)  # messages, as Discord stores them
    source: dict[str, Any] | None = None  # the message whose component was used
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def first_response_seconds(self) -> float:
        return self.response_times[0] - self.sent_at

    def texts(self) -> list[str]:
        """Every content and embed text the member was shown, in order."""
        out: list[str] = []
        for payload in [*(r.get("data") or {} for r in self.responses), *self.messages]:
            if payload.get("content"):
                out.append(payload["content"])
            for embed in payload.get("embeds") or []:
                out.extend(str(embed[key]) for key in ("title", "description") if embed.get(key))
                if embed.get("footer"):
                    out.append(embed["footer"]["text"])
        return out

    def text(self) -> str:
        return "\n".join(self.texts())

    def all_payloads(self) -> list[dict[str, Any]]:
        return [*(r.get("data") or {} for r in self.responses), *self.messages]


def channel_for(guild_id: int) -> int:
    """Return the text channel of a server: CHANNEL_ID in the main one, ``guild_id + 1`` else."""
    return CHANNEL_ID if guild_id == GUILD_ID else guild_id + 1


class FakeDiscord:
    """The fake API server. Start it, point discord.py at ``base_url`` and ``gateway_url``.

    It knows ``guilds`` (server ids; the main one has a voice channel too) and shards them as
    Discord does: a client that identifies as shard ``i`` of ``n`` gets the servers whose
    ``(guild_id >> 22) % n == i``, and their events. ``/gateway/bot`` recommends
    ``recommended_shards``.
    """

    def __init__(
        self,
        heartbeat_interval_ms: int = 41_250,
        *,
        guilds: tuple[int, ...] = (GUILD_ID,),
        recommended_shards: int = 1,
    ) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.guilds = guilds
        self.recommended_shards = recommended_shards
        self.shard_count = 1
        self.sockets: dict[int, web.WebSocketResponse] = {}  # shard id -> its gateway session
        self.app = web.Application()
        self.app.router.add_get("/ws", self._gateway)
        self.app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self.app.router.add_get("/attachments/{id}/{name}", self._attachment)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.sequence = 0
        self.session_id = "fake-session"
        self.ready = asyncio.Event()
        self.heartbeats: list[float] = []
        self.identifies = 0
        self.resumes = 0
        self.requests: list[tuple[str, str]] = []
        self.global_command_syncs: list[list[dict[str, Any]]] = []
        self.guild_command_syncs: list[list[dict[str, Any]]] = []
        self.exchanges: dict[str, Exchange] = {}
        self.expire_next = 0  # answer this many callbacks "Unknown interaction", as if too late
        self.messages: dict[str, dict[str, Any]] = {}
        self.voice: dict[int, int] = {}  # member id -> voice channel id
        self.attachments: dict[str, bytes] = {}  # uploaded files, served like Discord's CDN
        self.channel_posts: list[dict[str, Any]] = []  # messages the bot sent to a channel
        self.channel_edits: list[dict[str, Any]] = []  # edits of those messages

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        assert server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for ws in list(self.sockets.values()):
            if not ws.closed:
                await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        if status == 204:
            return web.Response(status=204)
        return web.Response(
            status=status, body=json.dumps(data), headers={"Content-Type": "application/json"}
        )

    def _message(self, data: dict[str, Any], *, flags: int = 0) -> dict[str, Any]:
        message_id = snowflake()
        message = {
            "id": message_id,
            "channel_id": str(CHANNEL_ID),
            "guild_id": str(GUILD_ID),
            "type": 0,
            "content": data.get("content") or "",
            "author": BOT_USER,
            "attachments": [],
            "embeds": data.get("embeds") or [],
            "components": data.get("components") or [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "edited_timestamp": None,
            "flags": data.get("flags", flags) or 0,
            "webhook_id": str(APP_ID),
            "application_id": str(APP_ID),
        }
        self.messages[message_id] = message
        return message

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            files: list[tuple[str, bytes]] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files.append((part.filename or "", await part.read()))  # type: ignore[union-attr]
            return payload, files
        if request.can_read_body:
            return await request.json(), []
        return {}, []

    def _exchange_by_token(self, token: str) -> Exchange | None:
        return next((e for e in self.exchanges.values() if e.token == token), None)

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        self.requests.append((request.method, path))
        parts = path.strip("/").split("/")
        body, files = await self._body(request)

        if path == "/users/@me":
            return self._json(BOT_USER)
        if path == "/gateway/bot":
            return self._json(
                {
                    "url": self.gateway_url,
                    "shards": self.recommended_shards,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if path == "/oauth2/applications/@me":
            return self._json(
                {
                    "id": str(APP_ID),
                    "name": "moviebot",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": BOT_USER,
                    "verify_key": "0" * 64,
                    "flags": 0,
                }
            )
        if parts[:1] == ["applications"] and parts[-1] == "commands" and request.method == "PUT":
            commands = [
                {**c, "id": snowflake(), "application_id": str(APP_ID), "version": "1"}
                for c in body
            ]
            if "guilds" in parts:
                self.guild_command_syncs.append(body)
            else:
                self.global_command_syncs.append(body)
            return self._json(commands)
        if parts[:1] == ["interactions"] and parts[-1] == "callback":
            exchange = self.exchanges.get(parts[1])
            if exchange is not None and self.expire_next > 0:
                self.expire_next -= 1
                exchange.settled.set()
                exchange.answered.set()
                return self._json({"message": "Unknown interaction", "code": 10062}, 404)
            if exchange is None:
                return self._json({"message": "Unknown interaction", "code": 10062}, 404)
            exchange.responses.append(body)
            exchange.response_times.append(time.monotonic())
            exchange.files.extend(files)
            exchange.answered.set()
            data = body.get("data") or {}
            flags = data.get("flags", 0) or 0
            interaction: dict[str, Any] = {
                "id": exchange.id,
                "type": 2,
                "response_message_loading": body.get("type") == 5,
                "response_message_ephemeral": bool(flags & 64),
            }
            result: dict[str, Any] = {"interaction": interaction}
            if body.get("type") == 7 and exchange.source is not None:
                message = exchange.source  # an update edits the message in place
                for key in ("content", "embeds", "components"):
                    if key in data:
                        message[key] = data[key] if data[key] is not None else []
                exchange.created.append(message)
                interaction["response_message_id"] = message["id"]
                result["resource"] = {"type": 7, "message": message}
            elif body.get("type") in (4, 5):
                message = self._message(data, flags=flags)
                exchange.created.append(message)
                interaction["response_message_id"] = message["id"]
                result["resource"] = {"type": body["type"], "message": message}
            if body.get("type") in (4, 7, 8, 9):
                exchange.settled.set()
            return self._json(result)
        if parts[:1] == ["channels"] and len(parts) >= 3 and parts[2] == "messages":
            if request.method == "POST" and len(parts) == 3:
                message = self._message(body)
                message["channel_id"] = parts[1]
                self.channel_posts.append(message)
                return self._json(message)
            if request.method == "PATCH" and len(parts) == 4 and parts[3] in self.messages:
                message = self.messages[parts[3]]
                for key in ("content", "embeds", "components"):
                    if key in body:
                        message[key] = body[key] if body[key] is not None else []
                self.channel_edits.append(message)
                return self._json(message)
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        if parts[:1] == ["webhooks"]:
            token = parts[2]
            exchange = self._exchange_by_token(token)
            if exchange is None:
                return self._json({"message": "Unknown webhook", "code": 10015}, 404)
            exchange.files.extend(files)
            deferred_update = bool(exchange.responses) and exchange.responses[0].get("type") == 6
            if (
                request.method == "PATCH"
                and parts[-1] == "@original"
                and deferred_update
                and exchange.source is not None
            ):
                # After a deferred update, editing the original edits the clicked message.
                message = exchange.source
                for key in ("content", "embeds", "components"):
                    if key in body:
                        message[key] = body[key] if body[key] is not None else []
                exchange.messages.append(body)
                exchange.created.append(message)
                exchange.settled.set()
                return self._json(message)
            if request.method in {"POST", "PATCH"}:
                exchange.messages.append(body)
                message = self._message(body)
                exchange.created.append(message)
                exchange.settled.set()
                return self._json(message)
            if request.method == "DELETE":
                return self._json(None, 204)
            return self._json(self._message({}))
        return self._json(
            {"message": f"Not implemented in the fake: {request.method} {path}", "code": 0}, 404
        )

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        shard_id = 0
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            op = payload.get("op")
            if op == 1:
                self.heartbeats.append(time.monotonic())
                await ws.send_json({"op": 11})
            elif op == 2:
                self.identifies += 1
                shard_id, self.shard_count = payload["d"].get("shard") or (0, 1)
                self.sockets[shard_id] = ws
                mine = [g for g in self.guilds if self.shard_of(g) == shard_id]
                await self._send(
                    ws,
                    "READY",
                    {
                        "v": 10,
                        "user": BOT_USER,
                        "guilds": [{"id": str(g), "unavailable": True} for g in mine],
                        "session_id": f"{self.session_id}-{shard_id}",
                        "resume_gateway_url": self.gateway_url,
                        "application": {"id": str(APP_ID), "flags": 0},
                        "shard": [shard_id, self.shard_count],
                    },
                )
                for guild in mine:
                    await self._send(ws, "GUILD_CREATE", self.guild_payload(guild))
                self.ready.set()
            elif op == 6:
                self.resumes += 1
                self.sockets[shard_id] = ws
                await self._send(ws, "RESUMED", {})
                self.ready.set()
        return ws

    def shard_of(self, guild_id: int) -> int:
        """Return the shard that carries a server's events (Discord's formula)."""
        return (guild_id >> 22) % self.shard_count

    @property
    def ws(self) -> web.WebSocketResponse | None:
        """The gateway session of shard 0 (the only one, unless the client shards)."""
        return self.sockets.get(0)

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self.sequence += 1
        await ws.send_json({"op": 0, "t": event, "s": self.sequence, "d": data})

    def guild_payload(self, guild_id: int = GUILD_ID) -> dict[str, Any]:
        """A server as GUILD_CREATE sends it: a text channel, and in the main server a voice
        channel and its voice states."""
        channel = {"permission_overwrites": [], "nsfw": False, "parent_id": None, "position": 0}
        channels = [{**channel, "id": str(channel_for(guild_id)), "type": 0, "name": "movies"}]
        if guild_id == GUILD_ID:
            voice = {"type": 2, "name": "Cinema", "bitrate": 64000, "user_limit": 0}
            channels.append({**channel, "id": str(VOICE_CHANNEL_ID), **voice})
        return {
            "id": str(guild_id),
            "name": "Movie club" if guild_id == GUILD_ID else f"Server {guild_id}",
            "icon": None,
            "owner_id": "1",
            "unavailable": False,
            "member_count": 100,
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": str(MEMBER_PERMISSIONS),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "channels": channels,
            "voice_states": [self._voice_state(u, c) for u, c in self.voice.items()]
            if guild_id == GUILD_ID
            else [],
            "members": [],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
        }

    @staticmethod
    def _voice_state(user_id: int, channel_id: int | None) -> dict[str, Any]:
        return {
            "guild_id": str(GUILD_ID),
            "channel_id": None if channel_id is None else str(channel_id),
            "user_id": str(user_id),
            "session_id": f"voice-{user_id}",
            "deaf": False,
            "mute": False,
            "self_deaf": False,
            "self_mute": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
            "member": {
                "user": user_payload(user_id, f"member{user_id}"),
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
            },
        }

    async def set_voice(self, user_id: int, channel_id: int | None = VOICE_CHANNEL_ID) -> None:
        """Move a member into a voice channel (None: out of voice), as VOICE_STATE_UPDATE."""
        if channel_id is None:
            self.voice.pop(user_id, None)
        else:
            self.voice[user_id] = channel_id
        if self.ws is not None:
            await self.dispatch(
                "VOICE_STATE_UPDATE", self._voice_state(user_id, channel_id), GUILD_ID
            )

    async def dispatch(self, event: str, data: dict[str, Any], guild_id: int | None = None) -> None:
        """Send an event on the shard that carries ``guild_id`` (shard 0 for direct messages)."""
        ws = self.sockets.get(0 if guild_id is None else self.shard_of(guild_id))
        assert ws is not None, f"no shard connected for server {guild_id}"
        await self._send(ws, event, data)

    async def force_reconnect(self) -> None:
        """Ask the client to reconnect and resume (op 7), as Discord does on maintenance."""
        assert self.ws is not None
        self.ready.clear()
        await self.ws.send_json({"op": 7, "d": None})

    # ------------------------------------------------------------------ interactions

    async def interact(
        self,
        interaction_type: int,
        data: dict[str, Any],
        *,
        user_id: int = 1001,
        permissions: int = MEMBER_PERMISSIONS,
        message: dict[str, Any] | None = None,
        in_guild: bool = True,
        guild_id: int = GUILD_ID,
    ) -> Exchange:
        """Send an interaction to the bot over the gateway (on the server's shard)."""
        channel_id = channel_for(guild_id)
        interaction_id = snowflake()
        token = f"token-{interaction_id}"
        user = user_payload(user_id, f"member{user_id}")
        payload: dict[str, Any] = {
            "id": interaction_id,
            "application_id": str(APP_ID),
            "type": interaction_type,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "channel": {
                "id": str(channel_id),
                "type": 0,
                "name": "movies",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                **({"guild_id": str(guild_id)} if in_guild else {}),
            },
            "app_permissions": str(ADMIN_PERMISSIONS),
            "locale": "en-US",
            "attachment_size_limit": 10 * 1024 * 1024,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)} if in_guild else {},
            "context": 0 if in_guild else 1,
        }
        if in_guild:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                "user": user,
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(permissions),
            }
        else:
            payload["user"] = user
        if message is not None:
            payload["message"] = message
        exchange = Exchange(interaction_id, token, time.monotonic(), source=message)
        self.exchanges[interaction_id] = exchange
        await self.dispatch("INTERACTION_CREATE", payload, guild_id if in_guild else None)
        return exchange

    async def command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        **kwargs: Any,
    ) -> Exchange:
        """Run a slash command, e.g. ``command("rate", {"title": "Heat", "rating": 4.5})``.

        ``subcommand`` runs ``/name subcommand``; ``files`` uploads attachments for options
        (option name -> (file name, bytes)), served back at a loopback URL like Discord's CDN.
        """
        opts = _options(options or {})
        resolved: dict[str, Any] = {}
        for option, (filename, data) in (files or {}).items():
            attachment_id = snowflake()
            self.attachments[attachment_id] = data
            url = f"http://127.0.0.1:{self.port}/attachments/{attachment_id}/{filename}"
            resolved.setdefault("attachments", {})[attachment_id] = {
                "id": attachment_id,
                "filename": filename,
                "size": len(data),
                "url": url,
                "proxy_url": url,
                "content_type": "application/octet-stream",
            }
            opts.append({"name": option, "type": 11, "value": attachment_id})
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        data: dict[str, Any] = {"id": snowflake(), "name": name, "type": 1, "options": opts}
        if resolved:
            data["resolved"] = resolved
        return await self.interact(2, data, **kwargs)

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        data = self.attachments.get(request.match_info["id"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def autocomplete(
        self, name: str, options: dict[str, Any], focused: str, **kwargs: Any
    ) -> Exchange:
        """Ask for autocomplete suggestions for one option."""
        opts = _options(options)
        for opt in opts:
            if opt["name"] == focused:
                opt["focused"] = True
        return await self.interact(
            4, {"id": snowflake(), "name": name, "type": 1, "options": opts}, **kwargs
        )

    async def click(
        self,
        message: dict[str, Any],
        custom_id: str,
        *,
        values: list[str] | None = None,
        component_type: int = 2,
        **kwargs: Any,
    ) -> Exchange:
        """Press a button (or choose from a select menu) on a message the bot sent."""
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        return await self.interact(3, data, message=message, **kwargs)

    async def settle(self, exchange: Exchange, within: float = 10.0) -> Exchange:
        """Wait until the bot has given its final answer to an interaction."""
        await asyncio.wait_for(exchange.answered.wait(), within)
        await asyncio.wait_for(exchange.settled.wait(), within)
        await asyncio.sleep(0)
        return exchange

    @staticmethod
    def last_message(exchange: Exchange) -> dict[str, Any]:
        """Return the newest message the bot created or edited for an interaction."""
        if not exchange.created:
            raise AssertionError(f"the bot sent no message for interaction {exchange.id}")
        return exchange.created[-1]


def _options(options: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in options.items():
        kind = 3 if isinstance(value, str) else 4 if isinstance(value, int) else 10
        out.append({"name": name, "type": kind, "value": value})
    return out


def components(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every component (buttons, selects) on a message, flattened."""
    found = []
    for row in message.get("components", []):
        found.extend(row.get("components", []))
    return found
