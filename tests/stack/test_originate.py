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
from dialer_server.telephony.ami import AmiClient
from dialer_server.telephony.originate import CallRequest, CallTracker
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
        ),
        on_sent=sent,
        on_answered=answered,
    )
    assert result.attempt_id == attempt_id
    async with pool.acquire() as conn:
        assert await store.record_attempt_result(conn, result)
        # An attempt ends once: a repeated result changes nothing.
        assert not await store.record_attempt_result(conn, result)
        row = await store.get_attempt(conn, attempt_id)
    assert row is not None
    row["seen_states"] = states
    return row


CASES = [
    ("15550100202", Outcome.ANSWERED, 16),
    ("15550100486", Outcome.BUSY, 17),
    ("15550100180", Outcome.NO_ANSWER, 19),
    ("15550100503", Outcome.CONGESTION, 34),
    ("15550100404", Outcome.INVALID_NUMBER, 1),
    ("15550100484", Outcome.INVALID_NUMBER, 28),
    ("15550100603", Outcome.BUSY, 21),
    ("15550100488", Outcome.FAILED, 58),
]


async def test_every_far_end_behaviour_maps_to_its_outcome(
    pool: Any, ami: tuple[AmiClient, CallTracker]
) -> None:
    client, tracker = ami
    rows = await asyncio.gather(*(_dial(pool, client, tracker, n) for n, _, _ in CASES))
    for (number, outcome, cause), row in zip(CASES, rows, strict=True):
        assert (row["outcome"], row["hangup_cause"]) == (outcome.value, cause), number
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
