"""IVR campaigns and answering-machine detection, through real Asterisk and sipp.

The far end (scripts/sipp/farend.xml) answers like a person pressing a key
(...301 presses 1, ...302 presses 2, after saying "Hello?"), like a person
saying "Hello?" (...401), like an answering machine with a long greeting (...402)
and like a line that answers and says nothing (...403). Our dialplan runs AMD()
and Read() on the real audio and DTMF and reports back by UserEvent; what is
asserted here is what the engine recorded from those reports.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dialer_server.config import Config

from ..support.campaign_setup import (
    add_campaign,
    dumps,
    engine_config,
    running_daemon,
    wait_campaign_state,
)

PRESS_1 = "12025550301"


PRESS_2 = "12025550302"


PERSON = "12025550401"


MACHINE = "12025550402"


SILENT = "12025550403"


ONE_CALL = {
    "name": "one-call",
    "version": 1,
    "description": "one call per contact; a machine closes the contact",
    "on": {"machine": {"action": "close", "state": "not_connected"}},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


ATTEMPT_SQL = """
SELECT a.outcome, a.amd_status, a.ivr_digits, a.hangup_cause,
       extract(epoch FROM a.ended_at - a.answered_at)::float AS talk_s,
       c.state, c.status
FROM attempts a JOIN contacts c ON c.id = a.contact_id
WHERE a.contact_id = $1 ORDER BY a.created_at
"""


async def _run_campaign(
    config: Config, database_url: str, name: str, numbers: list[str], **settings: Any
) -> list[list[dict[str, Any]]]:
    """Dial one contact per number until the campaign completes; each contact's attempts."""
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, ids = await add_campaign(
            conn,
            name,
            ONE_CALL,
            [[number] for number in numbers],
            max_concurrent_calls=10,
            max_calls_per_second=10,
            **settings,
        )
        async with running_daemon(engine_config(config)) as daemon:
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=90, alive=daemon.alive
            )
        return [[dict(r) for r in await conn.fetch(ATTEMPT_SQL, cid)] for cid in ids]
    finally:
        await conn.close()


def _summary(attempts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (a["outcome"], a["amd_status"], a["ivr_digits"], a["state"], a["status"]) for a in attempts
    ]


@pytest.mark.stack
async def test_ivr_campaign_records_the_key_each_contact_pressed(
    config: Config, database_url: str
) -> None:
    results = await _run_campaign(config, database_url, "ivr", [PRESS_1, PRESS_2], mode="ivr")
    summaries = [_summary(attempts) for attempts in results]
    assert summaries == [
        [("answered", None, "1", "connected", "success")],
        [("answered", None, "2", "connected", "success")],
    ], dumps(results)
    # [dialer-ivr] hung up once it had the key: the far end would have held 30 s.
    assert all(attempts[0]["talk_s"] < 15 for attempts in results), dumps(results)


@pytest.mark.stack
async def test_amd_campaign_closes_machines_by_the_strategy_and_connects_people(
    config: Config, database_url: str
) -> None:
    results = await _run_campaign(config, database_url, "amd", [MACHINE, SILENT, PERSON], amd=True)
    summaries = [_summary(attempts) for attempts in results]
    assert summaries == [
        # the strategy's machine rule: close not_connected (its default status: failed)
        [("machine", "MACHINE", None, "not_connected", "failed")],
        [("machine", "MACHINE", None, "not_connected", "failed")],
        [("answered", "HUMAN", None, "connected", "success")],
    ], dumps(results)
    machine, silent, person = (attempts[0] for attempts in results)
    # Machines are hung up by [dialer-amd] as soon as AMD has its verdict (the far
    # end would hold 30 s); the person hangs up by itself after 5 s.
    assert machine["talk_s"] < 10 and silent["talk_s"] < 10, dumps(results)
    assert person["talk_s"] >= 4, dumps(results)


@pytest.mark.stack
async def test_ivr_campaign_with_amd_asks_people_only_and_leaves_machines_a_message(
    config: Config, database_url: str
) -> None:
    results = await _run_campaign(
        config,
        database_url,
        "ivr-amd",
        [PRESS_1, MACHINE],
        mode="ivr",
        amd=True,
        machine_message="vm-goodbye",
    )
    summaries = [_summary(attempts) for attempts in results]
    assert summaries == [
        [("answered", "HUMAN", "1", "connected", "success")],
        [("machine", "MACHINE", None, "not_connected", "failed")],
    ], dumps(results)
    # The message waits for the end of the 3 s greeting and its silence before
    # playing: the machine's call lasts well beyond AMD's verdict (~1.7 s).
    assert results[1][0]["talk_s"] >= 4, dumps(results)
