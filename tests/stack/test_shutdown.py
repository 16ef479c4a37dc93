"""Graceful SIGTERM: no new call, calls in flight end and are recorded (dialing.drain_s)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ..support.campaign_setup import add_campaign
from ..support.daemon_process import start_daemon

pytestmark = pytest.mark.stack

ONE_CALL = {
    "name": "one-call",
    "version": 1,
    "description": "one call per contact",
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
HOLD_10S = "12025550210"


async def wait_answered(url: str, campaign_id: int, timeout: float = 20) -> str:
    """The id of the campaign's first answered (and still open) attempt."""
    async with asyncio.timeout(timeout):
        while True:
            conn = await asyncpg.connect(url)
            try:
                attempt_id = await conn.fetchval(
                    "SELECT id FROM attempts WHERE campaign_id = $1 AND state = 'answered'",
                    campaign_id,
                )
            finally:
                await conn.close()
            if attempt_id is not None:
                return str(attempt_id)
            await asyncio.sleep(0.1)


async def attempts(url: str, campaign_id: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT a.id::text, a.state, a.outcome, c.state AS contact_state FROM attempts a "
            "JOIN contacts c ON c.id = a.contact_id WHERE a.campaign_id = $1",
            campaign_id,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_sigterm_waits_for_the_call_in_flight_records_it_and_starts_no_other(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # One line: the second and third contacts wait for the first call to end.
        campaign_id, _ = await add_campaign(
            conn,
            "drain",
            ONE_CALL,
            [["12025550205"], ["12025551205"], ["12025552205"]],
            max_concurrent_calls=1,
        )
    finally:
        await conn.close()
    daemon = start_daemon(stack, database_url, tmp_path / "daemon.log")
    try:
        attempt_id = await wait_answered(database_url, campaign_id)
        stopped_at = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=20) == 0
        waited = time.monotonic() - stopped_at
    finally:
        daemon.close()
    # The far end holds 5 s after answering: the daemon waited for the hangup.
    assert 2 < waited < 10, waited
    assert await attempts(database_url, campaign_id) == [
        {"id": attempt_id, "state": "ended", "outcome": "answered", "contact_state": "connected"}
    ]
    logs = daemon.logs()
    drain = [e for e in logs if e.get("action") == "drain"]
    assert drain[0]["msg"] == "stopping: waiting up to 60 s for 1 attempts in flight"
    assert drain[0]["attempt_ids"] == [attempt_id]
    assert drain[-1]["msg"].startswith("every attempt in flight recorded after")
    result = [e for e in logs if e.get("action") == "result"]
    assert [(e["attempt_id"], e["campaign_id"], e["outcome"]) for e in result] == [
        (attempt_id, campaign_id, "answered")
    ]
    assert logs[-1]["msg"] == "dialer stopped"


async def test_a_call_outliving_the_drain_time_is_left_open_and_settled_by_the_next_start(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(conn, "drain-over", ONE_CALL, [[HOLD_10S]])
    finally:
        await conn.close()
    first = start_daemon(stack, database_url, tmp_path / "first.log", DIALER_DIALING_DRAIN_S="1")
    try:
        attempt_id = await wait_answered(database_url, campaign_id)
        stopped_at = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=15) == 0
        assert time.monotonic() - stopped_at < 5
    finally:
        first.close()
    # Still talking: the attempt stays open for the next start to settle.
    [left] = await attempts(database_url, campaign_id)
    assert (left["state"], left["outcome"]) == ("answered", None)
    assert any(e["msg"].startswith("drain time over") for e in first.logs())

    second = start_daemon(stack, database_url, tmp_path / "second.log")
    try:
        async with asyncio.timeout(30):
            while (await attempts(database_url, campaign_id))[0]["state"] != "ended":
                await asyncio.sleep(0.2)
    finally:
        second.close()
    [settled] = await attempts(database_url, campaign_id)
    assert (settled["id"], settled["outcome"], settled["contact_state"]) == (
        attempt_id,
        "answered",
        "connected",
    )
