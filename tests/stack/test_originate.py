"""Originating real calls through Asterisk to the sipp far end.

Each far-end behaviour (picked by the number's last three digits, see
scripts/sipp/farend.xml) must come back as its normalised outcome, with the
attempt recorded in PostgreSQL before the Originate and closed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialer_server.engine import store
from dialer_server.telephony import pbx_results
from dialer_server.telephony.ami import AmiClient
from dialer_server.telephony.originate import CallRequest, CallTracker, pbx_result
from dialer_server.telephony.outcomes import Outcome


@pytest.fixture
async def ami(stack: Any) -> AsyncIterator[tuple[AmiClient, CallTracker]]:
    client = AmiClient(stack.ami_config())
    tracker = CallTracker()
    client.subscribe(tracker.handle_event)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    await client.wait_connected(15)
    yield client, tracker
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


async def _dial(pool: Any, ami: AmiClient, tracker: CallTracker, number: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        campaign_id = await store.upsert_campaign(
            conn, "originate-test", trunk="carrier", caller_id=None, ring_timeout_s=15
        )
        contact_id = await store.upsert_contact(conn, campaign_id, number, number)
        attempt_id = await store.insert_attempt(
            conn, campaign_id=campaign_id, contact_id=contact_id, number=number, phone_slot=1
        )
        before = await store.get_attempt(conn, attempt_id)
    assert before is not None and before["state"] == "created"
    states: list[str] = []

    async def sent() -> None:
        async with pool.acquire() as conn:
            await store.mark_attempt_sent(conn, attempt_id)
            row = await store.get_attempt(conn, attempt_id)
            assert row is not None
            states.append(row["state"])

    async def answered() -> None:
        async with pool.acquire() as conn:
            await store.mark_attempt_answered(conn, attempt_id)
        states.append("answered")

    result = await tracker.place_call(
        ami,
        CallRequest(
            attempt_id=attempt_id,
            number=number,
            trunk="carrier",
            context="dialer-answered",
            ring_timeout_s=15,
            call_end_context="dialer-call-end",
        ),
        on_sent=sent,
        on_answered=answered,
    )
    assert result.attempt_id == attempt_id
    assert result.source == "live"
    # The PBX recorded the same end, under the attempt id, for a daemon that
    # would not have been there to see it.
    record = await pbx_results.read(ami, attempt_id)
    assert record is not None, number
    from_pbx = pbx_result(record)
    assert (from_pbx.outcome, from_pbx.hangup_cause) == (result.outcome, result.hangup_cause)
    # The far end's own final status; a call Asterisk cancelled got none (the
    # Hangup says 480 for it).
    assert from_pbx.sip_code in (result.sip_code, None), number
    assert (from_pbx.sip_code is None) == (result.outcome in (Outcome.ANSWERED, Outcome.NO_ANSWER))
    await pbx_results.forget(ami, attempt_id)
    assert await pbx_results.read(ami, attempt_id) is None
    async with pool.acquire() as conn:
        assert await store.record_attempt_result(conn, result)
        # An attempt ends once: a repeated result changes nothing.
        assert not await store.record_attempt_result(conn, result)
        row = await store.get_attempt(conn, attempt_id)
    assert row is not None
    row["seen_states"] = states
    return row


# number, outcome, Q.850 cause, the far end's SIP status (Hangup's TechCause:
# Asterisk gives it for calls that failed, none for answered ones)
CASES = [
    ("15550100202", Outcome.ANSWERED, 16, None),
    ("15550100486", Outcome.BUSY, 17, 486),
    ("15550100180", Outcome.NO_ANSWER, 19, 480),
    ("15550100503", Outcome.CONGESTION, 34, 503),
    ("15550100404", Outcome.INVALID_NUMBER, 1, 404),
    ("15550100484", Outcome.INVALID_NUMBER, 28, 484),
    ("15550100488", Outcome.FAILED, 58, 488),
    # Cause 21 twice: a person's decline, and the carrier refusing our trunk.
    ("15550100603", Outcome.REJECTED, 21, 603),
    ("15550109401", Outcome.TRUNK_ERROR, 21, 401),
    ("15550109402", Outcome.TRUNK_ERROR, 127, 402),
    ("15550109403", Outcome.TRUNK_ERROR, 21, 403),
    ("15550109407", Outcome.TRUNK_ERROR, 21, 407),
]


async def test_every_far_end_behaviour_maps_to_its_outcome(
    pool: Any, ami: tuple[AmiClient, CallTracker]
) -> None:
    client, tracker = ami
    rows = await asyncio.gather(*(_dial(pool, client, tracker, n) for n, *_ in CASES))
    for (number, outcome, cause, sip), row in zip(CASES, rows, strict=True):
        assert (row["outcome"], row["hangup_cause"]) == (outcome.value, cause), number
        assert row["sip_code"] == sip, number
        assert row["result_source"] == "live"
        assert row["state"] == "ended"
        assert row["seen_states"][0] == "sent"
        assert row["sent_at"] <= row["ended_at"]
        # The channel Asterisk created carried our attempt id as its Uniqueid.
        assert row["hangup_cause_text"]
    answered = rows[0]
    assert answered["seen_states"] == ["sent", "answered"]
    talk = (answered["ended_at"] - answered["answered_at"]).total_seconds()
    assert 1.5 <= talk <= 5, talk
    no_answer = rows[2]
    assert no_answer["originate_reason"] == 3
    rang = (no_answer["ended_at"] - no_answer["sent_at"]).total_seconds()
    assert rang >= 14.5, rang
    assert tracker.in_flight == 0


async def test_unknown_trunk_is_a_failed_attempt_not_a_crash(
    pool: Any, ami: tuple[AmiClient, CallTracker]
) -> None:
    client, tracker = ami
    result = await tracker.place_call(
        client,
        CallRequest(
            attempt_id="00000000-0000-4000-8000-000000000001",
            number="15550100202",
            trunk="no-such-trunk",
            context="dialer-answered",
            ring_timeout_s=15,
        ),
    )
    assert result.outcome is Outcome.FAILED
    assert result.hangup_cause is None


async def test_the_same_attempt_cannot_be_dialled_twice_at_once(
    ami: tuple[AmiClient, CallTracker],
) -> None:
    client, tracker = ami
    request = CallRequest(
        attempt_id="00000000-0000-4000-8000-000000000002",
        number="15550100201",
        trunk="carrier",
        context="dialer-answered",
        ring_timeout_s=15,
    )
    first = asyncio.create_task(tracker.place_call(client, request))
    await asyncio.sleep(0.05)
    with pytest.raises(ValueError, match="already being dialled"):
        await tracker.place_call(client, request)
    assert (await first).outcome is Outcome.ANSWERED
