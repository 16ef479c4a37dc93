"""The HTTP API on a real port, over a real database: a client that speaks to it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from dialer_server.api.app import Services, create_app, server_options
from dialer_server.config import ApiConfig, Config
from dialer_server.daemon import load_strategy_files
from dialer_server.observability.metrics import Metrics
from dialer_server.telephony.pbx_pool import PbxPool

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "crm-write-token-0123456789"
READ_TOKEN = "dashboard-read-token-0123456789"
TOKENS = f"crm:{WRITE_TOKEN},dashboard:{READ_TOKEN}:read"

# A strategy for API tests: one call on phone 1, then phone 2.
SIMPLE = {
    "name": "simple",
    "version": 1,
    "attempts": [{"phone": 1, "max_tries": 2}, {"phone": 2, "ring_timeout_s": 20}],
}


@dataclasses.dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]
    raw: bytes


class Api:
    """Requests to the API with a bearer token; JSON bodies decoded."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None) -> None:
        self.session = session
        self.base = base
        self.token = token

    def with_token(self, token: str | None) -> Api:
        return Api(self.session, self.base, token)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        if json_body is not None:
            data = json.dumps(json_body)
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base + path, data=data, headers=sent, params=params
        ) as resp:
            raw = await resp.read()
            body: Any = raw
            if resp.content_type == "application/json":
                body = json.loads(raw)
            return Reply(resp.status, body, dict(resp.headers), raw)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json_body=json_body, **kw)

    async def patch(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("PATCH", path, json_body=json_body, **kw)

    async def put(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, json_body=json_body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)

    # --- shortcuts ---------------------------------------------------------------------
    async def ok(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        status: int = 200,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        reply = await self.request(method, path, json_body=json_body, params=params)
        assert reply.status == status, (method, path, reply.status, reply.body)
        return reply.body

    async def new_strategy(self, definition: Mapping[str, Any] = SIMPLE) -> Any:
        return await self.ok("POST", "/api/v1/strategies", definition, status=201)

    async def new_campaign(self, name: str = "spring", **settings: Any) -> Any:
        body = {"name": name, "strategy": "simple", **settings}
        return await self.ok("POST", "/api/v1/campaigns", body, status=201)

    async def upload(self, campaign_id: int, rows: list[dict[str, Any]], **extra: Any) -> Any:
        return await self.ok(
            "POST", f"/api/v1/campaigns/{campaign_id}/contacts", {"contacts": rows, **extra}
        )


def api_config(config: Config, tokens: str = TOKENS) -> Config:
    return dataclasses.replace(config, api=ApiConfig(tokens=tokens))


@contextlib.asynccontextmanager
async def api_server(config: Config) -> AsyncIterator[Api]:
    """The daemon's HTTP app (probes + API) on a free port, without the engine."""
    pool = await asyncpg.create_pool(config.database.url, min_size=1, max_size=5)
    try:
        await load_strategy_files(pool, ROOT / "strategies")
        app = create_app(
            Services(pool=pool, pbxs=PbxPool(config), metrics=Metrics(), config=config)
        )
        server = TestServer(app, host="127.0.0.1")
        # (TestServer drops the runner's settings given to its constructor.)
        await server.start_server(**server_options())
        try:
            async with aiohttp.ClientSession() as session:
                yield Api(session, f"http://127.0.0.1:{server.port}", WRITE_TOKEN)
        finally:
            await server.close()
    finally:
        await pool.close()


async def user_token(database_url: str, username: str, role: str) -> str:
    """An API token of a new user with ``role`` (admin, supervisor...): for the operations
    the config tokens' integration role may not use."""
    from dialer_server.accounts import users

    conn = await asyncpg.connect(database_url)
    try:
        user = await users.create_user(conn, {"username": username, "role": role})
        token, _ = await users.create_token(
            conn, user["id"], kind="api", name=f"{username}-token", expires_at=None
        )
    finally:
        await conn.close()
    return token
