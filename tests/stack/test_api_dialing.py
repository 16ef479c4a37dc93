"""The API driving a real daemon dialling through real Asterisk and sipp."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from dialer_server.config import Config

from ..support.api_client import WRITE_TOKEN, Api, api_config
from ..support.campaign_setup import ALWAYS, dumps, engine_config, running_daemon

pytestmark = pytest.mark.stack

ONE_CALL = {"name": "one-call", "version": 1, "attempts": [{"phone": 1, "ring_timeout_s": 15}]}


async def _wait(what: str, timeout: float, check: Any, conn: Any) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.1)
    except TimeoutError:
        attempts = [dict(r) for r in await conn.fetch("SELECT * FROM attempts")]
        contacts = [dict(r) for r in await conn.fetch("SELECT * FROM contacts")]
        raise AssertionError(
            f"timed out waiting for {what}: {dumps([attempts, contacts])}"
        ) from None


async def test_pause_while_calls_run_starts_no_call_until_resume_and_the_campaign_completes(
    config: Config, database_url: str
) -> None:
    config = api_config(engine_config(config))
    conn = await asyncpg.connect(database_url)
    try:
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as session:
            api = Api(session, f"http://127.0.0.1:{daemon.http_port}", WRITE_TOKEN)
            await api.new_strategy(ONE_CALL)
            campaign = await api.new_campaign(
                "hold",
                strategy="one-call",
                max_concurrent_calls=2,
                max_calls_per_second=20,
                calling_window=ALWAYS,  # the test runs at any hour
            )
            base = f"/api/v1/campaigns/{campaign['id']}"
            # The far end answers numbers ending in 205 and holds the call 5 s.
            rows = [{"external_id": f"c{i}", "phone1": f"+1202555{i}205"} for i in range(4)]
            report = await api.upload(campaign["id"], rows)
            assert report["inserted"] == 4, report
            await api.ok("POST", f"{base}/start")

            async def answered() -> bool:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) = 2 FROM attempts WHERE state = 'answered'"
                    )
                )

            await _wait("two calls up", 30, answered, conn)
            paused = await api.ok("POST", f"{base}/pause")
            assert paused["changed"] is True and paused["campaign"]["state"] == "paused"
            paused_at = await conn.fetchval("SELECT clock_timestamp()")

            async def both_ended() -> bool:
                return bool(
                    await conn.fetchval("SELECT count(*) = 2 FROM attempts WHERE state = 'ended'")
                )

            # The calls in progress end normally (5 s hold), then a while passes
            # (many engine ticks) with two free lines and two due contacts.
            await _wait("the two calls to end", 20, both_ended, conn)
            await asyncio.sleep(2.0)
            during_pause = await conn.fetch("SELECT * FROM attempts ORDER BY created_at")
            assert len(during_pause) == 2, dumps([dict(r) for r in during_pause])
            assert all(a["created_at"] < paused_at for a in during_pause)
            assert [a["outcome"] for a in during_pause] == ["answered", "answered"]
            assert all(a["ended_at"] > paused_at for a in during_pause)
            shown = await api.ok("GET", base)
            assert shown["state"] == "paused"
            assert shown["contacts"]["by_state"] == {"connected": 2, "pending": 2}

            resumed_at = await conn.fetchval("SELECT clock_timestamp()")
            resumed = await api.ok("POST", f"{base}/resume")
            assert resumed["campaign"]["state"] == "running"

            async def completed() -> bool:
                return bool((await api.ok("GET", base))["state"] == "completed")

            await _wait("the campaign to complete", 40, completed, conn)
        attempts = await conn.fetch("SELECT * FROM attempts ORDER BY created_at")
    finally:
        await conn.close()
    assert len(attempts) == 4, dumps([dict(r) for r in attempts])
    assert all(a["created_at"] > resumed_at for a in attempts[2:])
    assert [a["outcome"] for a in attempts] == ["answered"] * 4
    assert sorted(a["number"] for a in attempts) == sorted(r["phone1"] for r in rows)


async def test_an_agent_s_callback_set_during_a_real_call_replans_the_contact_when_it_ends(
    config: Config, database_url: str
) -> None:
    config = api_config(engine_config(config))
    conn = await asyncpg.connect(database_url)
    try:
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as session:
            api = Api(session, f"http://127.0.0.1:{daemon.http_port}", WRITE_TOKEN)
            await api.new_strategy(ONE_CALL)
            campaign = await api.new_campaign(
                "callback", strategy="one-call", calling_window=ALWAYS
            )
            base = f"/api/v1/campaigns/{campaign['id']}"
            # The far end answers numbers ending in 205 and holds the call 5 s.
            await api.upload(campaign["id"], [{"external_id": "c", "phone1": "+12025559205"}])
            await api.ok("POST", f"{base}/start")

            async def answered() -> bool:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) = 1 FROM attempts WHERE state = 'answered'"
                    )
                )

            await _wait("the call to be answered", 30, answered, conn)
            attempt_id = str(await conn.fetchval("SELECT id FROM attempts"))
            at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            reply = await api.ok(
                "POST",
                f"/api/v1/attempts/{attempt_id}/disposition",
                {"status": "call_back", "agent": "agent01", "callback_at": at},
                status=201,
            )
            # The call is still up: the disposition waits for its end.
            assert reply["disposition"]["applied_at"] is None
            assert reply["contact"]["state"] == "sent_to_dialer"

            async def applied() -> bool:
                disposition = await api.ok("GET", f"/api/v1/attempts/{attempt_id}/disposition")
                return disposition["applied_at"] is not None

            await _wait("the call to end", 20, applied, conn)
            (contact,) = (await api.ok("GET", f"{base}/contacts"))["items"]
            assert (contact["state"], contact["status"], contact["status_detail"]) == (
                "pending",
                "open",
                "$follow_up_personal",
            )
            assert contact["callback_agent"] == "agent01"
            assert datetime.fromisoformat(contact["next_attempt_at"]) == datetime.fromisoformat(at)
            attempt = await conn.fetchrow("SELECT outcome, state FROM attempts")
            assert dict(attempt) == {"outcome": "answered", "state": "ended"}
            # Open, so the campaign runs on (no agent is free: nothing is dialled).
            await asyncio.sleep(1.5)
            assert (await api.ok("GET", base))["state"] == "running"
            assert await conn.fetchval("SELECT count(*) FROM attempts") == 1
    finally:
        await conn.close()
