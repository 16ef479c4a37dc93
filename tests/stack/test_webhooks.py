"""Webhooks to the CRM: events recorded by the database in the same transaction as
the change they report, delivered signed and at least once to a real HTTP
receiver, across CRM failures, PostgreSQL restarts and a killed daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.config import DatabaseConfig, WebhooksConfig
from dialer_server.engine import results, store
from dialer_server.observability.metrics import Metrics
from dialer_server.telephony.outcomes import Outcome
from dialer_server.webhooks import (
    WebhookSender,
    record_events,
    set_attempt_events,
)

from ..support import daemon_process as daemons
from ..support.campaign_setup import add_campaign, wait_campaign_state
from ..support.crm_receiver import Crm, Received, signature_ok
from ..support.daemon_process import DaemonProcess
from ..support.sql import sql
from ..support.webhook_events import SECRET, answered, dial, events, hooks, outbox

ONE_TRY = {
    "name": "one-try",
    "version": 1,
    "caps": {"per_contact": 1},
    "on": {
        "busy": {"action": "next"},
        "no_answer": {"action": "next"},
        "congestion": {"action": "next"},
    },
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


SMS_THEN_WAIT = {
    "name": "sms-wait",
    "version": 1,
    "sms": {"text": "Call us back about {param1}", "close_state": "sms_sent"},
    "attempts": [{"sms": True, "phone": 1}],
}


async def test_without_a_url_the_database_records_no_events(pool: Any) -> None:
    async with pool.acquire() as conn:
        await record_events(pool, WebhooksConfig())
        campaign_id, (contact_id,) = await add_campaign(conn, "quiet", ONE_TRY, [["12025550201"]])
        attempt_id = await dial(conn, campaign_id, contact_id)
        await results.record_call(conn, answered(attempt_id), results.StrategyLookup())
        assert (await store.get_contact(conn, contact_id) or {})["state"] == "connected"
        assert await outbox(conn) == []


async def test_campaign_state_changes_are_recorded_once_per_change(pool: Any) -> None:
    await record_events(pool, hooks())
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(conn, "states", ONE_TRY, [], start=False)
        for state in ("running", "running", "paused", "running", "stopped"):
            await store.set_campaign_state(conn, campaign_id, state)
        recorded = await events(conn)
    assert [(e["campaign"]["previous_state"], e["campaign"]["state"]) for e in recorded] == [
        ("stopped", "running"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "stopped"),
    ]
    first = recorded[0]
    assert first["type"] == "campaign.state_changed"
    assert first["campaign"] == {
        "id": campaign_id,
        "name": "states",
        "state": "running",
        "previous_state": "stopped",
        # Only a change the dialer makes itself has a reason (a pause for trunk errors).
        "reason": None,
    }
    assert first["occurred_at"].endswith("Z")


async def test_a_call_result_records_the_contact_final_state_and_attempts_only_when_opted_in(
    pool: Any,
) -> None:
    await record_events(pool, hooks())
    lookup = results.StrategyLookup()
    async with pool.acquire() as conn:
        quiet_id, (quiet_contact,) = await add_campaign(conn, "quiet", ONE_TRY, [["12025550201"]])
        loud_id, (loud_contact,) = await add_campaign(
            conn, "loud", {**ONE_TRY, "name": "one-try-2"}, [["12025550202"]]
        )
        assert await set_attempt_events(conn, loud_id, True)
        for campaign_id, contact_id in ((quiet_id, quiet_contact), (loud_id, loud_contact)):
            attempt_id = await dial(conn, campaign_id, contact_id)
            await results.record_call(conn, answered(attempt_id), lookup)
        rows = await outbox(conn)
        recorded = await events(conn)
        loud_attempt = (await store.contact_attempts(conn, loud_contact))[0]
    contact_events = [e for e in recorded if e["type"] == "contact.final_state"]
    attempt_events = [e for e in recorded if e["type"] == "attempt.result"]
    assert {e["contact"]["id"] for e in contact_events} == {quiet_contact, loud_contact}
    assert [e["contact"]["id"] for e in attempt_events] == [loud_contact]
    attempt_event = attempt_events[0]
    assert attempt_event["campaign"] == {"id": loud_id, "name": "loud"}
    assert attempt_event["contact"] == {"id": loud_contact, "external_id": "loud-0"}
    assert attempt_event["attempt"]["id"] == str(loud_attempt["id"])
    assert attempt_event["attempt"]["outcome"] == "answered"
    assert attempt_event["attempt"]["hangup_cause"] == 16
    assert attempt_event["attempt"]["number"] == "12025550202"
    # No AMD, no IVR on this call: both reported, as null.
    assert attempt_event["attempt"]["amd_status"] is None
    assert attempt_event["attempt"]["ivr_digits"] is None
    contact_event = next(e for e in contact_events if e["contact"]["id"] == loud_contact)
    assert contact_event["contact"]["external_id"] == "loud-0"
    assert contact_event["contact"]["state"] == "connected"
    assert contact_event["contact"]["previous_state"] == "sent_to_dialer"
    assert contact_event["contact"]["status"] == "success"
    assert contact_event["contact"]["status_detail"] == "$none"
    assert contact_event["contact"]["attempt_count"] == 1
    assert contact_event["contact"]["last_attempt"]["outcome"] == "answered"
    # The attempt's result comes before the contact's final state it led to.
    loud_rows = [r for r in rows if r["ordering_key"] == f"contact:{loud_contact}"]
    assert [r["event_type"] for r in loud_rows] == ["attempt.result", "contact.final_state"]
    assert all(str(r["id"]) in r["body"] for r in rows)


async def test_an_attempt_result_carries_the_amd_verdict_and_the_ivr_keys(pool: Any) -> None:
    await record_events(pool, hooks())
    lookup = results.StrategyLookup()
    reports = [
        (Outcome.ANSWERED, "HUMAN", "1"),
        (Outcome.MACHINE, "MACHINE", None),
        (Outcome.ANSWERED, None, ""),  # IVR without AMD: the prompt got no key
    ]
    async with pool.acquire() as conn:
        campaign_id, contact_ids = await add_campaign(
            conn, "ivr-amd", ONE_TRY, [[f"1202555030{i}"] for i in range(len(reports))]
        )
        assert await set_attempt_events(conn, campaign_id, True)
        attempt_ids = []
        for contact_id, (outcome, amd_status, ivr_digits) in zip(contact_ids, reports, strict=True):
            attempt_id = await dial(conn, campaign_id, contact_id)
            result = dataclasses.replace(
                answered(attempt_id), outcome=outcome, amd_status=amd_status, ivr_digits=ivr_digits
            )
            assert await results.record_call(conn, result, lookup) is not None
            attempt_ids.append(attempt_id)
        recorded = await events(conn)
        by_attempt = {
            e["attempt"]["id"]: e["attempt"] for e in recorded if e["type"] == "attempt.result"
        }
        last_attempts = {
            e["contact"]["last_attempt"]["id"]: e["contact"]["last_attempt"]
            for e in recorded
            if e["type"] == "contact.final_state"
        }
        stored = [
            await conn.fetchrow(
                "SELECT outcome, amd_status, ivr_digits FROM attempts WHERE id = $1", attempt_id
            )
            for attempt_id in attempt_ids
        ]
    expected = [(o.value, amd, digits) for o, amd, digits in reports]
    sent = [by_attempt[a] for a in attempt_ids]
    assert [(a["outcome"], a["amd_status"], a["ivr_digits"]) for a in sent] == expected
    assert [tuple(row) for row in stored] == expected
    # The contact's final state names the same in its last attempt.
    closing = [last_attempts[a] for a in attempt_ids]
    assert [(a["outcome"], a["amd_status"], a["ivr_digits"]) for a in closing] == expected


async def test_one_reply_seen_by_two_daemons_is_stored_and_reported_once(pool: Any) -> None:
    # Each daemon gets the same DialerSmsIn: two receivers at once, one message id.
    await record_events(pool, hooks())
    async with pool.acquire() as conn:
        campaign_id, (contact_id,) = await add_campaign(
            conn, "sms", SMS_THEN_WAIT, [["12025550777"]]
        )
        attempt_id = await dial(conn, campaign_id, contact_id, channel="sms")
        await results.record_outcome(conn, attempt_id, "sent", results.StrategyLookup())
    at = datetime.now(UTC)

    async def receive() -> results.SmsReply:
        async with pool.acquire() as conn:
            return await results.sms_reply(conn, "12025550777", "yes", at, "c1@carrier/7 MESSAGE")

    replies = await asyncio.gather(receive(), receive())
    async with pool.acquire() as conn:
        # A reply without an id cannot be told from another: always stored.
        plain = await results.sms_reply(conn, "12025550777", "again", at)
        stored = await conn.fetch(
            "SELECT body, contact_id, message_id FROM sms_inbound ORDER BY id"
        )
        recorded = [e for e in await events(conn) if e["type"] == "contact.final_state"]
    assert sorted(replies, key=lambda r: r.stored) == [
        results.SmsReply(stored=False, contact_id=None),
        results.SmsReply(stored=True, contact_id=contact_id),
    ]
    assert plain == results.SmsReply(stored=True, contact_id=None)
    assert [tuple(r) for r in stored] == [
        ("yes", contact_id, "c1@carrier/7 MESSAGE"),
        ("again", None, None),
    ]
    assert [e["contact"]["state"] for e in recorded] == ["sms_sent", "sms_responded"]


async def test_an_sms_reply_after_sms_sent_is_a_second_final_state_event(pool: Any) -> None:
    await record_events(pool, hooks())
    async with pool.acquire() as conn:
        campaign_id, (contact_id,) = await add_campaign(
            conn, "sms", SMS_THEN_WAIT, [["12025550777"]]
        )
        attempt_id = await dial(conn, campaign_id, contact_id, channel="sms")
        await results.record_outcome(conn, attempt_id, "sent", results.StrategyLookup())
        reply = await results.sms_reply(conn, "12025550777", "yes", datetime.now(UTC))
        assert reply == results.SmsReply(stored=True, contact_id=contact_id)
        recorded = [e for e in await events(conn) if e["type"] == "contact.final_state"]
    assert [(e["contact"]["previous_state"], e["contact"]["state"]) for e in recorded] == [
        ("sent_to_dialer", "sms_sent"),
        ("sms_sent", "sms_responded"),
    ]
    assert recorded[0]["id"] != recorded[1]["id"]


async def test_a_rolled_back_change_records_no_event(pool: Any) -> None:
    await record_events(pool, hooks())
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(conn, "rollback", ONE_TRY, [], start=False)
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await store.set_campaign_state(conn, campaign_id, "running")
                raise RuntimeError("the API request failed after the update")
        assert await outbox(conn) == []


async def test_a_contact_reset_for_redial_records_nothing_until_it_closes_again(
    pool: Any,
) -> None:
    await record_events(pool, hooks())
    async with pool.acquire() as conn:
        _, (contact_id,) = await add_campaign(conn, "redial", ONE_TRY, [["12025550201"]])
        await conn.execute(sql("close_contact"), contact_id, "not_connected", "failed", "$x")
        await conn.execute(
            "UPDATE contacts SET state = 'pending', closed_at = NULL WHERE id = $1", contact_id
        )
        await conn.execute(sql("close_contact"), contact_id, "cancelled", "declined", "$crm")
        recorded = [e["contact"]["state"] for e in await events(conn) if "contact" in e]
    assert recorded == ["not_connected", "cancelled"]


@pytest.fixture
async def crm() -> AsyncIterator[Crm]:
    receiver = Crm()
    await receiver.start()
    yield receiver
    await receiver.close()


@contextlib.asynccontextmanager
async def running_sender(
    pool: Any, config: WebhooksConfig, database_url: str | None, metrics: Metrics | None = None
) -> AsyncIterator[WebhookSender]:
    database = DatabaseConfig(url=database_url) if database_url is not None else None
    sender = WebhookSender(pool, config, database, metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop), name="sender-under-test")
    try:
        yield sender
        assert not task.done(), "the sender stopped on its own"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def wait_delivered(pool: Any, count: int, timeout: float) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while True:
            async with pool.acquire() as conn:
                rows = await outbox(conn)
            if len(rows) >= count and all(r["delivered_at"] is not None for r in rows):
                return rows
            await asyncio.sleep(0.05)


async def test_events_reach_the_crm_signed_with_their_id_as_idempotency_key(
    pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm)
    await record_events(pool, config)
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(conn, "signed", ONE_TRY, [])
    async with running_sender(pool, config, database_url):
        rows = await wait_delivered(pool, 1, timeout=10)
    (request,) = crm.requests
    assert signature_ok(SECRET, request)
    assert not signature_ok("wrong-secret", request)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Dialer-Event"] == "campaign.state_changed"
    assert abs(int(request.headers["X-Dialer-Timestamp"]) - time.time()) < 60
    assert request.key == str(rows[0]["id"]) == request.event["id"]
    assert request.body.decode() == rows[0]["body"]
    assert request.event["campaign"]["id"] == campaign_id
    assert rows[0]["attempts"] == 1


async def test_a_notify_wakes_the_sender_long_before_its_poll(
    pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm, poll_interval_s=60)
    await record_events(pool, config)
    async with running_sender(pool, config, database_url):
        await asyncio.sleep(0.5)  # idle: the sender now waits up to its 60 s poll
        async with pool.acquire() as conn:
            await add_campaign(conn, "woken", ONE_TRY, [])
        await crm.wait_for(lambda c: len(c.delivered()) == 1, timeout=5)


async def test_a_failing_crm_gets_the_event_after_retries_with_the_same_key_and_body(
    pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm, min_backoff_s=0.2, max_backoff_s=0.4)
    await record_events(pool, config)
    crm.fail_next, crm.fail_status = 3, 503
    async with pool.acquire() as conn:
        await add_campaign(conn, "flaky", ONE_TRY, [])
    metrics = Metrics()
    async with running_sender(pool, config, database_url, metrics):
        (row,) = await wait_delivered(pool, 1, timeout=15)
    assert [r.answered for r in crm.requests] == [503, 503, 503, 200]
    assert metrics.registry.get_sample_value("dialer_webhook_deliveries_total") == 1
    assert metrics.registry.get_sample_value("dialer_webhook_delivery_failures_total") == 3
    assert {r.key for r in crm.requests} == {str(row["id"])}
    assert {r.body for r in crm.requests} == {row["body"].encode()}
    assert all(signature_ok(SECRET, r) for r in crm.requests)
    gaps = [b.at - a.at for a, b in zip(crm.requests, crm.requests[1:], strict=False)]
    # Backoff: 0.1-0.2 s, then 0.2-0.4 s, then capped at 0.4 (jitter: at least half).
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.19, gaps
    assert row["attempts"] == 4
    assert row["last_error"].startswith("HTTP 503")


async def test_events_of_one_contact_keep_their_order_when_the_first_fails(
    pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm)
    await record_events(pool, config)
    async with pool.acquire() as conn:
        campaign_id, contact_ids = await add_campaign(
            conn, "ordered", ONE_TRY, [["12025550201"], ["12025550202"]], start=False
        )
        await set_attempt_events(conn, campaign_id, True)
    crm.fail_next = 2  # the first events tried, one per contact (heads of their queues)
    async with pool.acquire() as conn:
        for contact_id in contact_ids:
            attempt_id = await dial(conn, campaign_id, contact_id)
            await results.record_call(conn, answered(attempt_id), results.StrategyLookup())
    async with running_sender(pool, config, database_url):
        await wait_delivered(pool, 4, timeout=10)
    for contact_id in contact_ids:
        sent = [
            r.event["type"]
            for r in crm.requests
            if r.event.get("contact", {}).get("id") == contact_id
        ]
        assert sent == ["attempt.result", "attempt.result", "contact.final_state"], sent


async def test_an_unreachable_crm_is_retried_with_backoff_and_nothing_is_lost(
    pool: Any, database_url: str
) -> None:
    config = hooks(url="http://127.0.0.1:9/hooks", min_backoff_s=0.2, max_backoff_s=0.4)
    await record_events(pool, config)
    async with pool.acquire() as conn:
        await add_campaign(conn, "dead-crm", ONE_TRY, [])
    async with running_sender(pool, config, database_url):
        await asyncio.sleep(1.5)
        async with pool.acquire() as conn:
            (row,) = await outbox(conn)
    assert row["delivered_at"] is None
    # Tries 0.1-0.2 s apart at first, then 0.2-0.4 s: a handful, not hundreds.
    assert 3 <= row["attempts"] <= 12, row["attempts"]
    assert "Connect" in row["last_error"] or "refused" in row["last_error"], row["last_error"]


async def test_two_senders_on_one_database_deliver_each_event_once(
    pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm, batch_size=5)
    await record_events(pool, config)
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(conn, "busy", ONE_TRY, [], start=False)
        for i in range(40):
            await store.set_campaign_state(conn, campaign_id, "running" if i % 2 == 0 else "paused")
            await store.create_campaign(conn, f"other-{i}", strategy_id=1)
            await conn.execute(
                "UPDATE campaigns SET state = 'running' WHERE name = $1", f"other-{i}"
            )
    crm.delay_s = 0.02
    async with (
        running_sender(pool, config, database_url) as one,
        running_sender(pool, config, database_url) as two,
    ):
        rows = await wait_delivered(pool, 80, timeout=20)
    assert one.delivered > 0 and two.delivered > 0, (one.delivered, two.delivered)
    assert one.delivered + two.delivered == 80
    assert len(crm.requests) == len(rows) == 80
    assert len({r.key for r in crm.requests}) == 80
    # One campaign's state changes arrive in the order they happened.
    busy = [
        r.event["campaign"]["state"] for r in crm.requests if r.event["campaign"]["name"] == "busy"
    ]
    assert busy == ["running", "paused"] * 20


@pytest.mark.stack
async def test_the_sender_survives_a_postgresql_restart(
    stack: Any, pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm, poll_interval_s=0.5)
    await record_events(pool, config)
    async with running_sender(pool, config, database_url):
        try:
            stack.run("pg-stop")
            await asyncio.sleep(2)  # the sender meets a dead database meanwhile
        finally:
            stack.run("pg-start")
        conn = await asyncpg.connect(database_url)
        try:
            await add_campaign(conn, "after-restart", ONE_TRY, [])
        finally:
            await conn.close()
        await crm.wait_for(lambda c: len(c.delivered()) == 1, timeout=20)


async def test_delivered_events_are_deleted_after_the_retention_period(
    pool: Any, database_url: str, crm: Crm
) -> None:
    config = hooks(crm, retention_days=1)
    await record_events(pool, config)
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(conn, "old", ONE_TRY, [], start=False)
        await store.set_campaign_state(conn, campaign_id, "running")
        await store.set_campaign_state(conn, campaign_id, "paused")
        old, recent = [r["id"] for r in await outbox(conn)]
        await conn.execute(
            "UPDATE webhook_outbox SET delivered_at = $2 WHERE id = $1",
            old,
            datetime.now(UTC) - timedelta(days=2),
        )
        await conn.execute(
            "UPDATE webhook_outbox SET delivered_at = $2 WHERE id = $1", recent, datetime.now(UTC)
        )
        await store.set_campaign_state(conn, campaign_id, "running")  # one undelivered event
    async with running_sender(pool, config, database_url):
        rows = await wait_delivered(pool, 2, timeout=10)
    assert old not in {r["id"] for r in rows}
    assert recent in {r["id"] for r in rows}


async def start_daemon(stack: Any, url: str, log: Path, **env: str) -> DaemonProcess:
    # In a thread: the CRM receiver runs on this event loop and must keep answering.
    return await asyncio.to_thread(daemons.start_daemon, stack, url, log, **env)


async def count(url: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


@pytest.mark.stack
async def test_kill_9_before_delivery_then_restart_delivers_every_event_signed(
    stack: Any, database_url: str, tmp_path: Path, crm: Crm
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # Answer and hold 5 s, three at a time: calls are up when the daemon dies.
        campaign_id, contact_ids = await add_campaign(
            conn,
            "kill9-webhooks",
            ONE_TRY,
            [[f"1202{i:04d}205"] for i in range(6)],
            max_concurrent_calls=3,
            start=False,
        )
        await set_attempt_events(conn, campaign_id, True)
    finally:
        await conn.close()
    webhook_env = {
        "DIALER_WEBHOOKS_URL": crm.url,
        "DIALER_WEBHOOKS_SECRET": SECRET,
        "DIALER_WEBHOOKS_MIN_BACKOFF_S": "0.2",
        "DIALER_WEBHOOKS_MAX_BACKOFF_S": "1",
        "DIALER_WEBHOOKS_TIMEOUT_S": "3",
    }
    crm.status = 503  # the CRM is down: events pile up in the outbox
    first = await start_daemon(stack, database_url, tmp_path / "first.log", **webhook_env)
    try:
        conn = await asyncpg.connect(database_url)
        try:
            await store.set_campaign_state(conn, campaign_id, "running")
        finally:
            await conn.close()
        async with asyncio.timeout(60):
            while (
                await count(
                    database_url,
                    "SELECT count(*) FROM contacts WHERE campaign_id = $1 "
                    "AND closed_at IS NOT NULL",
                    campaign_id,
                )
                < 3
                or await count(
                    database_url,
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'",
                    campaign_id,
                )
                == 0
            ):
                assert first.alive(), first.log.read_text()
                await asyncio.sleep(0.1)
        await crm.wait_for(lambda c: len(c.requests) >= 3, timeout=10)
        first.proc.kill()  # SIGKILL: between the state changes and their delivery
        first.proc.wait()
    finally:
        first.close()
    undelivered_at_kill = await count(
        database_url, "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL"
    )
    assert undelivered_at_kill >= 7  # campaign start, 3 results, 3 final states at least
    assert crm.delivered() == []
    refused = len(crm.requests)

    crm.status = 200  # the CRM is back
    second = await start_daemon(stack, database_url, tmp_path / "second.log", **webhook_env)
    try:
        await wait_campaign_state(
            database_url, campaign_id, "completed", timeout=90, alive=second.alive
        )
        async with asyncio.timeout(30):
            while await count(
                database_url, "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL"
            ):
                assert second.alive(), second.log.read_text()
                await asyncio.sleep(0.1)
    finally:
        second.close()

    conn = await asyncpg.connect(database_url)
    try:
        rows = await outbox(conn)
        contacts = {
            r["id"]: dict(r)
            for r in await conn.fetch(
                "SELECT id, external_id, state, status, status_detail FROM contacts "
                "WHERE campaign_id = $1",
                campaign_id,
            )
        }
        attempt_ids = {
            str(r["id"])
            for r in await conn.fetch("SELECT id FROM attempts WHERE campaign_id = $1", campaign_id)
        }
    finally:
        await conn.close()
    delivered: list[Received] = crm.delivered()
    # Every event in the outbox reached the CRM, signed, body as stored.
    assert {r.key for r in delivered} == {str(row["id"]) for row in rows}
    by_key = {r.key: r for r in delivered}
    for row in rows:
        received = by_key[str(row["id"])]
        assert signature_ok(SECRET, received)
        assert received.body.decode() == row["body"]
        assert received.event["id"] == received.key
    assert all(signature_ok(SECRET, r) for r in crm.requests[:refused])
    # And the outbox holds what happened: one final state per contact, matching
    # the contacts table; one result per attempt; the campaign's life.
    finals = crm.of_type("contact.final_state")
    assert sorted(e["contact"]["id"] for e in finals) == sorted(contact_ids)
    for event in finals:
        contact = contacts[event["contact"]["id"]]
        assert {k: event["contact"][k] for k in ("external_id", "state", "status")} == {
            k: contact[k] for k in ("external_id", "state", "status")
        }
        assert event["contact"]["status_detail"] == contact["status_detail"]
    assert {e["attempt"]["id"] for e in crm.of_type("attempt.result")} == attempt_ids
    campaign_states = [
        (e["campaign"]["previous_state"], e["campaign"]["state"])
        for e in crm.of_type("campaign.state_changed")
    ]
    assert campaign_states == [("stopped", "running"), ("running", "completed")]
