"""A campaign dialled by the engine through real Asterisk and sipp, end to end."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from dialer_server.config import Config, SmsConfig
from dialer_server.engine import store
from dialer_server.telephony.ami import AmiClient

from ..support.campaign_setup import (
    add_campaign,
    contact_report,
    dumps,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.daemon_process import ROOT, DaemonProcess, http_get, start_daemon
from ..support.webhook_events import dial

pytestmark = pytest.mark.stack

# Far-end numbers (scripts/sipp/farend.xml): the last three digits pick the behaviour.
ANSWER = "12025550202"
BUSY = "12025550486"
NO_ANSWER = "12025550180"
NOT_FOUND = "12025550404"
CONGESTION = "12025550503"

FLOW = {
    "name": "test-flow",
    "version": 1,
    "description": "phone 1 then phone 2, SMS when phone 1 is busy",
    "caps": {"per_contact": 6},
    "sms": {"text": "Hello {param1}, we tried to call you.", "close_state": "sms_sent"},
    "on": {
        "no_answer": {"action": "next"},
        "congestion": {"action": "retry", "delay_s": 1},
        "busy": {"action": "retry", "delay_s": 1},
    },
    "attempts": [
        {"phone": 1, "ring_timeout_s": 15, "max_tries": 2, "on": {"busy": {"action": "sms"}}},
        {"phone": 2, "ring_timeout_s": 15, "max_tries": 2},
    ],
}


class SmsGateway:
    """A local HTTP SMS gateway that accepts everything and keeps what it got."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"id": len(self.received)}, status=202)


@pytest.fixture
async def sms_gateway() -> Any:
    gateway = SmsGateway()
    app = web.Application()
    app.router.add_post("/sms", gateway.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield gateway, f"http://127.0.0.1:{port}/sms"
    await runner.cleanup()


async def test_campaign_reaches_the_final_state_the_strategy_implies(
    config: Config, database_url: str, sms_gateway: Any
) -> None:
    gateway, url = sms_gateway
    config = dataclasses.replace(engine_config(config), sms=SmsConfig(provider="http", url=url))
    conn = await asyncpg.connect(database_url)
    try:
        await store.add_do_not_call(conn, "12025550999", reason="asked not to be called")
        campaign_id, ids = await add_campaign(
            conn,
            "flow",
            FLOW,
            [
                [ANSWER],  # answered on phone 1
                [BUSY, ANSWER],  # busy on phone 1: SMS fallback, no phone 2
                [NO_ANSWER, ANSWER],  # no answer: phone 2 answers
                [NOT_FOUND, CONGESTION],  # wrong number, then congestion twice
                [NOT_FOUND, None],  # empty phone 2: its attempts go to phone 1
                ["12025550999"],  # do not call
            ],
            max_concurrent_calls=10,
            max_calls_per_second=10,
        )
        async with running_daemon(config) as daemon:
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=120, alive=daemon.alive
            )
        reports = [await contact_report(conn, contact_id) for contact_id in ids]
    finally:
        await conn.close()

    expected = [
        {
            "state": "connected",
            "status": "success",
            "status_detail": "$none",
            "attempts": [("call", 1, "answered")],
        },
        {
            "state": "sms_sent",
            "status": "open",
            "status_detail": "$none",
            "attempts": [("call", 1, "busy"), ("sms", 1, "sent")],
        },
        {
            "state": "connected",
            "status": "success",
            "status_detail": "$none",
            "attempts": [("call", 1, "no_answer"), ("call", 2, "answered")],
        },
        {
            "state": "retries_completed",
            "status": "failed",
            "status_detail": "$unavailable",
            "attempts": [
                ("call", 1, "invalid_number"),
                ("call", 2, "congestion"),
                ("call", 2, "congestion"),
            ],
        },
        {
            "state": "retries_completed",
            "status": "failed",
            "status_detail": "$unavailable",
            "attempts": [("call", 1, "invalid_number"), ("call", 1, "invalid_number")],
        },
        {
            "state": "dnc_listed",
            "status": "failed",
            "status_detail": "$do_not_call",
            "attempts": [],
        },
    ]
    assert reports == expected, dumps(reports)
    assert len(gateway.received) == 1
    assert gateway.received[0]["to"] == BUSY
    assert gateway.received[0]["text"] == "Hello p1, we tried to call you."


SMS_ONLY = {
    "name": "test-sms-only",
    "version": 1,
    "description": "one SMS, then wait for the reply",
    "sms": {"text": "Reply to this message, {param1}.", "close_state": "sms_sent"},
    "attempts": [{"sms": True, "phone": 1}],
}


async def test_sms_through_asterisk_and_the_reply_marks_the_contact_responded(
    config: Config, database_url: str
) -> None:
    # The far end answers every MESSAGE to a number ending in 777 with a reply
    # to our From number, which Asterisk raises as a DialerSmsIn UserEvent.
    config = dataclasses.replace(
        engine_config(config),
        sms=SmsConfig(provider="ami", endpoint="carrier", from_uri="15550001111"),
    )
    conn = await asyncpg.connect(database_url)
    try:
        await store.add_do_not_call(conn, "+15550200777")
        campaign_id, ids = await add_campaign(
            conn,
            "sms",
            SMS_ONLY,
            [["+15550100777"], ["+15550200777"]],
        )
        # Per-campaign do-not-call: only this campaign may not text it.
        await store.add_do_not_call(conn, "+15550300777", campaign_id=campaign_id)
        ids.append(
            await store.insert_contact(conn, campaign_id, phones=["+15550300777"], external_id="x")
        )
        async with running_daemon(config) as daemon:
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=60, alive=daemon.alive
            )
            async with asyncio.timeout(20):
                while (await store.get_contact(conn, ids[0]) or {}).get("state") != "sms_responded":
                    await asyncio.sleep(0.1)
        reports = [await contact_report(conn, contact_id) for contact_id in ids]
        inbound = await conn.fetch("SELECT number, body, contact_id FROM sms_inbound")
    finally:
        await conn.close()
    assert reports[0]["state"] == "sms_responded", dumps(reports)
    assert reports[0]["attempts"] == [("sms", 1, "sent")]
    assert reports[1]["state"] == reports[2]["state"] == "dnc_listed"
    assert reports[1]["attempts"] == reports[2]["attempts"] == []
    assert [(r["number"], r["contact_id"]) for r in inbound] == [("+15550100777", ids[0])]
    assert inbound[0]["body"] == "Re: Reply to this message, p0."


async def test_two_daemons_store_an_sms_reply_once_and_mark_the_contact_once(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    # Both daemons get the reply's DialerSmsIn UserEvent; its MessageId (the SIP
    # MESSAGE's Call-ID and CSeq) makes the second insert nothing.
    sms = {
        "DIALER_SMS_PROVIDER": "ami",
        "DIALER_SMS_ENDPOINT": "carrier",
        "DIALER_SMS_FROM_URI": "15550001111",
        "DIALER_DIALING_STRATEGIES_DIR": str(ROOT / "strategies"),
    }
    conn = await asyncpg.connect(database_url)
    daemons: list[DaemonProcess] = []
    try:
        campaign_id, (contact_id,) = await add_campaign(
            conn, "sms", SMS_ONLY, [["+15550100777"]], start=False
        )
        for name in ("first", "second"):
            daemons.append(start_daemon(stack, database_url, tmp_path / f"{name}.log", **sms))
        # Both ready (AMI connected) before the SMS goes out: both get the reply.
        await store.set_campaign_state(conn, campaign_id, "running")
        async with asyncio.timeout(30):
            while not all(
                any(e.get("action") in ("sms_in", "sms_in_duplicate") for e in d.logs())
                for d in daemons
            ):
                assert all(d.alive() for d in daemons)
                await asyncio.sleep(0.1)
        inbound = await conn.fetch("SELECT number, contact_id, message_id FROM sms_inbound")
        contact = await store.get_contact(conn, contact_id)
        counted = [replies_counted(d) for d in daemons]
    finally:
        for daemon in daemons:
            daemon.close()
        await conn.close()
    actions = sorted(
        e["action"] for d in daemons for e in d.logs() if e.get("action", "").startswith("sms_in")
    )
    assert actions == ["sms_in", "sms_in_duplicate"]
    assert [(r["number"], r["contact_id"]) for r in inbound] == [("+15550100777", contact_id)]
    assert inbound[0]["message_id"].endswith("/1 MESSAGE")
    assert contact is not None and contact["state"] == "sms_responded"
    # One reply in the metrics of the two daemons together, matched to the contact.
    assert sorted(counted) == [(0.0, 0.0), (1.0, 0.0)]


def replies_counted(daemon: DaemonProcess) -> tuple[float, float]:
    """dialer_sms_replies_total of a daemon: (matched, unmatched); absent counts 0."""
    _, body = http_get(daemon.url("/metrics"))
    values = {"true": 0.0, "false": 0.0}
    for line in body.splitlines():
        for matched in values:
            if line.startswith(f'dialer_sms_replies_total{{matched="{matched}"}} '):
                values[matched] = float(line.split()[1])
    return values["true"], values["false"]


async def test_outside_the_calling_window_a_contact_waits_and_is_not_dialled(
    config: Config, database_url: str
) -> None:
    today = datetime.now(UTC).date()
    closed_until = {
        "hours": {
            day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
        "blackout_dates": [str(today), str(today + timedelta(days=1))],
        "timezone": "UTC",
    }
    conn = await asyncpg.connect(database_url)
    try:
        _, ids = await add_campaign(
            conn, "window", FLOW, [["12025550202"]], calling_window=closed_until
        )
        async with running_daemon(engine_config(config)):
            async with asyncio.timeout(10):
                while (await store.get_contact(conn, ids[0]) or {}).get("next_step") is None:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # a few more scheduler ticks: still nothing dialled
        contact = await store.get_contact(conn, ids[0])
        attempts = await store.contact_attempts(conn, ids[0])
    finally:
        await conn.close()
    assert contact is not None and attempts == []
    opens = datetime.combine(today + timedelta(days=2), time(0), tzinfo=UTC)
    assert contact["next_attempt_at"] == opens
    assert contact["state"] == "pending"


ONE_CALL = {
    "name": "one-call",
    "version": 1,
    "caps": {"per_contact": 1},
    "on": {"busy": "next", "no_answer": "next"},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


async def test_a_call_is_sent_before_it_ends_even_when_it_ends_at_once(
    config: Config, database_url: str
) -> None:
    # 40 busy lines at once: each call ends a few milliseconds after its
    # Originate, while 40 others are being sent and recorded.
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "busy-burst",
            ONE_CALL,
            [[f"1202{i:04d}486"] for i in range(40)],
            max_concurrent_calls=40,
            max_calls_per_second=100,
        )
        async with running_daemon(engine_config(config)) as daemon:
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=60, alive=daemon.alive
            )
        rows = await conn.fetch(
            "SELECT created_at, sent_at, ended_at, outcome FROM attempts WHERE campaign_id = $1",
            campaign_id,
        )
    finally:
        await conn.close()
    assert len(rows) == 40 and {r["outcome"] for r in rows} == {"busy"}
    for row in rows:
        assert row["created_at"] <= row["sent_at"] <= row["ended_at"], dict(row)


async def test_calls_already_sent_keep_their_send_time_after_a_pause(
    stack: Any, config: Config, database_url: str
) -> None:
    # 40 calls (they ring out 2 s later); the campaign is paused the moment
    # Asterisk has 20 of them, as seen on Asterisk's own channel list. Every
    # call Asterisk had before the pause was sent before it: its sent_at says so.
    watcher = AmiClient(stack.ami_config())
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop), name="watcher")
    conn = await asyncpg.connect(database_url)
    try:
        await watcher.wait_connected(10)
        campaign_id, _ = await add_campaign(
            conn,
            "pause-sent",
            ONE_CALL,
            [[f"1202{i:04d}181"] for i in range(40)],
            max_concurrent_calls=40,
            max_calls_per_second=200,
        )
        async with running_daemon(engine_config(config)):
            async with asyncio.timeout(20):
                while True:
                    reply = await watcher.send_action({"Action": "CoreShowChannels"})
                    on_asterisk = {
                        m.get("Uniqueid") for m in reply if m.get("Event") == "CoreShowChannel"
                    }
                    ours = {
                        str(r["id"])
                        for r in await conn.fetch(
                            "SELECT id FROM attempts WHERE campaign_id = $1", campaign_id
                        )
                    }
                    if len(on_asterisk & ours) >= 20:
                        break
            await store.set_campaign_state(conn, campaign_id, "paused")
            paused_at = await conn.fetchval(
                "SELECT updated_at FROM campaigns WHERE id = $1", campaign_id
            )
            async with asyncio.timeout(20):
                while await conn.fetchval(
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'",
                    campaign_id,
                ):
                    await asyncio.sleep(0.1)
        rows = await conn.fetch(
            "SELECT id, sent_at, ended_at, outcome FROM attempts WHERE campaign_id = $1",
            campaign_id,
        )
    finally:
        await conn.close()
        stop.set()
        await asyncio.wait_for(watching, 10)
    seen = [r for r in rows if str(r["id"]) in on_asterisk]
    assert len(seen) >= 20
    for row in seen:
        assert row["outcome"] == "no_answer"
        assert row["sent_at"] < paused_at < row["ended_at"], dict(row)
    for row in rows:
        assert row["sent_at"] <= row["ended_at"], dict(row)


async def test_a_call_that_waited_for_its_sent_mark_goes_out_only_if_its_campaign_runs(
    pool: Any,
) -> None:
    # A call that got its connection at once goes out as claimed; one that
    # waited for it (a busy pool) re-checks the campaign, as after a wait for
    # the rate limit: paused meanwhile, it is not marked, so not sent.
    async with pool.acquire() as conn:
        campaign_id, (first, second) = await add_campaign(
            conn, "mark-wait", ONE_CALL, [[ANSWER], [BUSY]]
        )
        waited, at_once = [await dial(conn, campaign_id, c) for c in (first, second)]
        await store.set_campaign_state(conn, campaign_id, "paused")
        assert not await store.mark_attempt_sent(conn, waited, if_running=True)
        assert await store.mark_attempt_sent(conn, at_once)
        states = {
            str(r["id"]): r["state"]
            for r in await conn.fetch(
                "SELECT id, state FROM attempts WHERE campaign_id = $1", campaign_id
            )
        }
    assert states == {waited: "created", at_once: "sent"}


async def test_a_campaign_started_is_dialled_at_once_not_at_the_next_tick(
    config: Config, database_url: str
) -> None:
    # Ticks half a minute apart: only the campaign's state change (its NOTIFY, migration
    # 0020) can make the daemon look at it before the test gives up.
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, ids = await add_campaign(
            conn, "started", ONE_CALL, [["12025550201"]], start=False
        )
        async with running_daemon(engine_config(config, tick_s=30)) as daemon:
            async with asyncio.timeout(10):
                while not daemon.scheduler._campaign_changes.listening:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # its first tick read no running campaign
            assert await store.contact_attempts(conn, ids[0]) == []
            await store.set_campaign_state(conn, campaign_id, "running")
            async with asyncio.timeout(10):
                while not await store.contact_attempts(conn, ids[0]):
                    await asyncio.sleep(0.05)
    finally:
        await conn.close()
