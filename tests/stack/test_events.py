"""/api/v1/events: Server-Sent Events from a daemon on the real stack.

The stream carries the webhook events (here with webhooks off: the event log is
kept for the stream all the same) and live ones, each with an id that follows
commit order; a client resuming with Last-Event-ID gets exactly what it missed;
filters hold; bad input is a JSON 4xx; a thousand clients that drop leave
nothing behind in the daemon.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..support.api_client import READ_TOKEN, TOKENS, WRITE_TOKEN
from ..support.daemon_process import DaemonProcess, http_get, start_daemon
from ..support.sse import SseClient

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]
STRATEGY = {"name": "events", "version": 1, "attempts": [{"phone": 1, "max_tries": 1}]}


@pytest.fixture
def daemon(stack: Any, database_url: str, tmp_path: Path) -> Iterator[DaemonProcess]:
    process = start_daemon(stack, database_url, tmp_path / "daemon.log", DIALER_API_TOKENS=TOKENS)
    try:
        yield process
    finally:
        process.close()


async def call(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, daemon.url(path), json=body, headers=headers) as reply,
    ):
        assert reply.status < 300, await reply.text()
        return await reply.json()


async def campaign(daemon: DaemonProcess, name: str) -> int:
    await call(daemon, "POST", "/api/v1/strategies", {**STRATEGY, "name": name})
    created = await call(daemon, "POST", "/api/v1/campaigns", {"name": name, "strategy": name})
    return int(created["id"])


def states(client: SseClient, campaign_id: int) -> list[str]:
    return [
        e["campaign"]["state"]
        for e in client.of_type("campaign.state_changed")
        if e["campaign"]["id"] == campaign_id
    ]


async def test_events_come_in_order_and_a_client_resumes_after_its_last_event_id(
    daemon: DaemonProcess,
) -> None:
    first = await campaign(daemon, "first")
    other = await campaign(daemon, "other")
    url = daemon.url("/api/v1/events")
    async with (
        SseClient(url, WRITE_TOKEN) as everything,
        SseClient(f"{url}?campaign={other}", READ_TOKEN) as only_other,
        SseClient(f"{url}?type=agent.state", WRITE_TOKEN) as only_agents,
    ):
        for action in ("start", "pause", "resume", "stop"):
            await call(daemon, "POST", f"/api/v1/campaigns/{first}/{action}")
        await call(daemon, "POST", f"/api/v1/campaigns/{other}/start")
        await everything.wait_for(lambda c: len(c.events) == 5, 10)
        assert states(everything, first) == ["running", "paused", "running", "stopped"]
        ids = [seq for seq, _, _ in everything.events]
        assert ids == sorted(ids) and len(set(ids)) == 5
        # The body is the webhook's: an id, a type, when, the campaign.
        body = everything.events[0][2]
        assert set(body) == {"id", "type", "occurred_at", "campaign"}
        await only_other.wait_for(lambda c: len(c.events) == 1, 10)
        assert states(only_other, other) == ["running"]
        await asyncio.sleep(0.5)
        assert only_agents.events == []

    # Resuming after the second event: the third and fourth first, then what comes.
    second = str(everything.events[1][0])
    async with SseClient(url, WRITE_TOKEN, last_event_id=second) as resumed:
        await resumed.wait_for(lambda c: len(c.events) == 3, 10)
        assert [seq for seq, _, _ in resumed.events] == ids[2:]
        await call(daemon, "POST", f"/api/v1/campaigns/{first}/start")
        await resumed.wait_for(lambda c: len(c.events) == 4, 10)
        assert states(resumed, first) == ["running", "stopped", "running"]
        assert resumed.events[-1][0] > ids[-1]
    # Without Last-Event-ID a stream starts with what happens from then on.
    async with SseClient(url, WRITE_TOKEN) as fresh:
        await call(daemon, "POST", f"/api/v1/campaigns/{first}/pause")
        await fresh.wait_for(lambda c: len(c.events) == 1, 10)
        assert states(fresh, first) == ["paused"]


async def test_bad_stream_requests_get_a_json_error(daemon: DaemonProcess) -> None:
    url = daemon.url("/api/v1/events")
    cases = [
        ({}, "", 401),
        ({"Authorization": f"Bearer {WRITE_TOKEN}"}, "?type=nonsense", 422),
        ({"Authorization": f"Bearer {WRITE_TOKEN}"}, "?campaign=x", 422),
        ({"Authorization": f"Bearer {WRITE_TOKEN}", "Last-Event-ID": "abc"}, "", 422),
    ]
    async with aiohttp.ClientSession() as session:
        for headers, query, status in cases:
            async with session.get(url + query, headers=headers) as reply:
                assert reply.status == status, (query, headers)
                assert (await reply.json())["error"]["code"]


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _open_stream(port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {WRITE_TOKEN}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return writer


def _drop(writer: asyncio.StreamWriter) -> None:
    """Gone without a word, like a closed laptop: a reset, no goodbye."""
    writer.transport.abort()
    writer.close()


async def test_a_thousand_clients_that_drop_leak_nothing(daemon: DaemonProcess) -> None:
    pid = daemon.proc.pid
    # A hundred streams first, so that what they make once and keep (the pool's
    # connections to PostgreSQL, grown to its maximum) is in the baseline.
    for writer in await asyncio.gather(*(_open_stream(daemon.port) for _ in range(100))):
        _drop(writer)
    async with asyncio.timeout(30):
        while daemon.metric("dialer_sse_clients") > 0:
            await asyncio.sleep(0.25)
    await asyncio.sleep(1)  # the last sockets close just after their stream ends
    baseline = _open_fds(pid)
    writers: list[asyncio.StreamWriter] = []
    for _ in range(10):
        writers += await asyncio.gather(*(_open_stream(daemon.port) for _n in range(100)))
    assert len(writers) == 1000
    assert daemon.metric("dialer_sse_clients") == 1000
    assert _open_fds(pid) >= baseline + 995  # a socket each
    for writer in writers:
        _drop(writer)
    try:
        async with asyncio.timeout(30):
            while daemon.metric("dialer_sse_clients") > 0 or _open_fds(pid) > baseline + 5:
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(
            f"streams {daemon.metric('dialer_sse_clients')}, fds {_open_fds(pid)} "
            f"(baseline {baseline})"
        ) from None
    # The daemon serves on as before.
    assert http_get(daemon.url("/healthz"))[0] == 200
    first = await campaign(daemon, "after-the-drops")
    async with SseClient(daemon.url("/api/v1/events"), WRITE_TOKEN) as client:
        await call(daemon, "POST", f"/api/v1/campaigns/{first}/start")
        await client.wait_for(lambda c: len(c.events) == 1, 10)
    assert daemon.alive()
