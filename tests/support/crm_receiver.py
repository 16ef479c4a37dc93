"""A CRM's webhook endpoint on 127.0.0.1 (a real aiohttp server) for webhook tests.

It records every request and answers as told: 200, or a failure status for the
next N requests, or a failure status until told otherwise. Signatures are
checked here with hmac directly, independently of dialer_server.webhooks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclasses.dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def signature_ok(secret: str, received: Received) -> bool:
    """What a CRM does: HMAC-SHA256 over "<timestamp>.<raw body>", compared in constant time."""
    timestamp = received.headers["X-Dialer-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    given = received.headers["X-Dialer-Signature"]
    return given.startswith("sha256=") and hmac.compare_digest(given[7:], expected)


class Crm:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        # Requests received, counted on arrival: a request is only in `requests` once
        # answered, and a test that kills the sender wants it killed mid-answer.
        self.arrived = 0
        # Answer every request with this status...
        self.status = 200
        # ...except the next `fail_next` ones, answered with `fail_status`.
        self.fail_next = 0
        self.fail_status = 503
        # How long each answer takes.
        self.delay_s = 0.0
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/hooks/dialer"))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/dialer", self._receive)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.status
        if self.fail_next > 0:
            self.fail_next -= 1
            status = self.fail_status
        async with self._changed:
            self.requests.append(Received(dict(request.headers), body, status, time.monotonic()))
            self._changed.notify_all()
        if status >= 300:
            return web.Response(status=status, text="CRM down for maintenance")
        return web.json_response({"ok": True}, status=status)

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, at most one per event (duplicates dropped)."""
        seen: dict[str, Received] = {}
        for r in self.requests:
            if 200 <= r.answered < 300:
                seen.setdefault(r.key, r)
        return list(seen.values())

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [r.event for r in self.delivered() if r.event["type"] == event_type]

    async def wait_for(self, predicate: Callable[[Crm], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))
