"""A declined call and a refused trunk, through real Asterisk and the sipp far end.

Both reach Asterisk as Q.850 cause 21; the far end's SIP status tells them apart
(603: rejected; 401/402/403/407: trunk_error). A declined call follows its own
strategy rule, never busy's; a trunk error never counts against the contact, and
enough of them in a row pause the campaign, with a reason, a metric and a
webhook event.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dialer_server.config import Config
from dialer_server.engine import results, store
from dialer_server.telephony.originate import CallResult
from dialer_server.telephony.outcomes import Outcome
from dialer_server.webhooks import record_events

from ..support.campaign_setup import add_campaign, engine_config, running_daemon
from ..support.crm_receiver import Crm
from ..support.webhook_events import dial, events, hooks

pytestmark = pytest.mark.stack

DECLINE = "12025550603"
BUSY = "12025550486"
ANSWER = "12025550201"
# The carrier refusing our trunk (scripts/sipp/farend.xml: ...9401, 9402, 9403, 9407).
UNAUTHORIZED = "12025559401"
PAYMENT = "12025559402"
FORBIDDEN = "12025559403"
PROXY_AUTH = "12025559407"

# A busy line closes the contact at once, as a plain "not reachable": a declined
# call that were taken for busy would be closed the same way.
BUSY_CLOSES = {
    "name": "busy-closes",
    "version": 1,
    "on": {"busy": {"action": "close", "state": "not_connected", "status_detail": "busy line"}},
    "attempts": [{"phone": 1, "ring_timeout_s": 15, "max_tries": 2}],
}
# A strategy file's own rule for declined calls.
DECLINE_CLOSES = {
    "name": "decline-closes",
    "version": 1,
    "on": {"rejected": {"action": "close", "state": "not_connected", "status": "declined"}},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
# One call per contact: any attempt that counted would close it.
ONE_CALL = {
    "name": "one-call",
    "version": 1,
    "caps": {"per_contact": 1, "per_phone": 1, "per_day": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


@pytest.fixture
async def crm() -> AsyncIterator[Crm]:
    receiver = Crm()
    await receiver.start()
    yield receiver
    await receiver.close()


async def wait_attempts_ended(conn: Any, campaign_id: int, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while (
            await conn.fetchval(
                "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state = 'ended'",
                campaign_id,
            )
            < count
        ):
            await asyncio.sleep(0.1)


async def attempts_of(conn: Any, campaign_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT contact_id, number, outcome, hangup_cause, sip_code, result_source, sent_at,
                  ended_at
           FROM attempts WHERE campaign_id = $1 ORDER BY contact_id, created_at""",
        campaign_id,
    )
    return [dict(r) for r in rows]


async def test_a_declined_call_is_rejected_and_follows_its_own_rule_not_busys(
    config: Config, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        busy_closes, (declined, busy) = await add_campaign(
            conn, "busy-closes", BUSY_CLOSES, [[DECLINE], [BUSY]]
        )
        own_rule, (declined_too,) = await add_campaign(
            conn, "decline-closes", DECLINE_CLOSES, [[DECLINE]]
        )
        async with running_daemon(engine_config(config)):
            await wait_attempts_ended(conn, busy_closes, 2, timeout=30)
            await wait_attempts_ended(conn, own_rule, 1, timeout=30)
        rows = await attempts_of(conn, busy_closes) + await attempts_of(conn, own_rule)
        contacts = {
            contact_id: await store.get_contact(conn, contact_id)
            for contact_id in (declined, busy, declined_too)
        }
    finally:
        await conn.close()
    by_contact = {row["contact_id"]: row for row in rows}
    assert len(rows) == 3, rows
    for contact_id in (declined, declined_too):
        row = by_contact[contact_id]
        assert (row["outcome"], row["hangup_cause"], row["sip_code"]) == ("rejected", 21, 603)
        assert row["result_source"] == "live"
    assert (by_contact[busy]["outcome"], by_contact[busy]["sip_code"]) == ("busy", 486)
    # Busy closed its contact; the declined one was not taken for busy: the
    # built-in rule tries again 4 hours later.
    busy_contact, declined_contact = contacts[busy], contacts[declined]
    assert busy_contact is not None and declined_contact is not None
    assert (busy_contact["state"], busy_contact["status_detail"]) == ("not_connected", "busy line")
    assert declined_contact["closed_at"] is None
    wait = declined_contact["next_attempt_at"] - by_contact[declined]["ended_at"]
    assert timedelta(hours=4) <= wait < timedelta(hours=4, seconds=5), wait
    # A strategy's own rejected rule decides instead.
    own = contacts[declined_too]
    assert own is not None
    assert (own["state"], own["status"]) == ("not_connected", "declined")


async def test_trunk_errors_never_count_against_contacts_and_pause_the_campaign(
    config: Config, database_url: str, crm: Crm
) -> None:
    config = dataclasses.replace(
        engine_config(config, trunk_error_pause_after=3), webhooks=hooks(crm)
    )
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, contact_ids = await add_campaign(
            conn,
            "refused",
            ONE_CALL,
            [[UNAUTHORIZED], [FORBIDDEN], [PROXY_AUTH], [PAYMENT], [FORBIDDEN]],
            # One line: the calls go one after the other, and the third in a
            # row pauses the campaign before the fourth is claimed.
            max_concurrent_calls=1,
            webhook_attempts=True,
        )
        async with running_daemon(config) as daemon:
            async with asyncio.timeout(30):
                while await store.campaign_is_running(conn, campaign_id):
                    await asyncio.sleep(0.1)
            await crm.wait_for(lambda c: bool(c.of_type("campaign.trunk_errors")), timeout=10)
            await asyncio.sleep(1)  # no more call may start
            metrics = daemon.metrics.render().decode()
        campaign = await store.get_campaign(conn, campaign_id)
        rows = await attempts_of(conn, campaign_id)
        contacts = [await store.get_contact(conn, contact_id) for contact_id in contact_ids]
        # An operator fixes the trunk and resumes: the reason goes.
        await store.set_campaign_state(conn, campaign_id, "running")
        resumed = await store.get_campaign(conn, campaign_id)
    finally:
        await conn.close()

    assert campaign is not None and campaign["state"] == "paused"
    reason = campaign["state_reason"]
    assert "trunk errors" in reason and "carrier" in reason and "last 3 calls" in reason, reason
    assert resumed is not None and resumed["state_reason"] is None
    # Three calls, all refused by the carrier, and then no more.
    assert [(r["outcome"], r["hangup_cause"], r["sip_code"]) for r in rows] == [
        ("trunk_error", 21, 401),
        ("trunk_error", 21, 403),
        ("trunk_error", 21, 407),
    ], rows
    # One call per contact, per number and per day, yet none of them is used up:
    # the same step is due again after the built-in 300 s.
    for contact, row in zip(contacts[:3], rows, strict=True):
        assert contact is not None and contact["closed_at"] is None
        assert contact["next_step"] == 0 and contact["next_channel"] == "call"
        wait = contact["next_attempt_at"] - row["ended_at"]
        assert timedelta(seconds=300) <= wait < timedelta(seconds=305), wait
    assert all(c is not None and c["closed_at"] is None for c in contacts[3:])
    assert f'dialer_trunk_errors_total{{campaign="{campaign_id}",trunk="carrier"}} 3.0' in metrics
    assert (
        f'dialer_campaign_auto_pauses_total{{campaign="{campaign_id}",reason="trunk_errors"}} 1.0'
        in metrics
    )
    # The CRM hears of it: the pause with its reason, and what caused it.
    (event,) = crm.of_type("campaign.trunk_errors")
    assert event["campaign"] == {
        "id": campaign_id,
        "name": "refused",
        "state": "paused",
        "reason": reason,
    }
    assert (event["trunk"], event["trunk_errors"], event["sip_code"]) == ("carrier", 3, 407)
    changes = [e["campaign"] for e in crm.of_type("campaign.state_changed")]
    assert {"state": "paused", "previous_state": "running", "reason": reason}.items() <= changes[
        -1
    ].items()
    results_sent = [e["attempt"] for e in crm.of_type("attempt.result")]
    assert [(a["outcome"], a["sip_code"], a["result_source"]) for a in results_sent] == [
        ("trunk_error", code, "live") for code in (401, 403, 407)
    ]


def refused(attempt_id: str, at: datetime) -> CallResult:
    return CallResult(
        attempt_id, Outcome.TRUNK_ERROR, "Failure", 0, 21, "Call Rejected", None, at, sip_code=403
    )


def answered(attempt_id: str, at: datetime) -> CallResult:
    return CallResult(attempt_id, Outcome.ANSWERED, "Success", 4, 16, "Normal Clearing", at, at)


async def test_only_trunk_errors_in_a_row_pause_and_only_once(pool: Any) -> None:
    await record_events(pool, hooks())
    strategies = results.StrategyLookup()
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        campaign_id, contact_ids = await add_campaign(
            conn, "in-a-row", ONE_CALL, [[FORBIDDEN]] * 7, start=True
        )
        attempts = [await dial(conn, campaign_id, c) for c in contact_ids]
        outcomes = ["trunk", "trunk", "answered", "trunk", "trunk", "trunk", "trunk"]
        paused = []
        for i, (attempt_id, kind) in enumerate(zip(attempts, outcomes, strict=True)):
            at = now + timedelta(seconds=i)
            result = refused(attempt_id, at) if kind == "trunk" else answered(attempt_id, at)
            recorded = await results.record_call(
                conn, result, strategies, trunk_error_pause_after=3, default_trunk="carrier"
            )
            assert recorded is not None
            paused.append(recorded.paused is not None)
        state = await conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
        raised = [e for e in await events(conn) if e["type"] == "campaign.trunk_errors"]
    # Two, an answer, then the third of three in a row pauses; the fourth finds
    # the campaign paused already.
    assert paused == [False, False, False, False, False, True, False]
    assert state == "paused"
    assert len(raised) == 1 and raised[0]["sip_code"] == 403


async def test_without_a_pause_limit_trunk_errors_never_pause(pool: Any) -> None:
    await record_events(pool, hooks())
    strategies = results.StrategyLookup()
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        campaign_id, contact_ids = await add_campaign(
            conn, "no-limit", ONE_CALL, [[FORBIDDEN]] * 4, start=True
        )
        for i, contact_id in enumerate(contact_ids):
            attempt_id = await dial(conn, campaign_id, contact_id)
            recorded = await results.record_call(
                conn, refused(attempt_id, now + timedelta(seconds=i)), strategies
            )
            assert recorded is not None and recorded.paused is None
        assert await store.campaign_is_running(conn, campaign_id)
        assert not [e for e in await events(conn) if e["type"] == "campaign.trunk_errors"]
