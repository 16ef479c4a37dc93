"""Agent-mode calls: where they enter the dialplan, and what its reports make of them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from dialer_server.engine import results, store
from dialer_server.telephony.outcomes import Outcome
from dialer_server.webhooks import record_events

from ..support.campaign_setup import add_campaign
from ..support.webhook_events import answered, dial, events, hooks

THREE_TRIES = {"name": "three-tries", "version": 1, "attempts": [{"phone": 1, "max_tries": 3}]}


@pytest.mark.stack
async def test_agent_reports_are_stored_sent_and_acted_on_with_the_result(pool: Any) -> None:
    await record_events(pool, hooks())
    lookup = results.StrategyLookup()
    async with pool.acquire() as conn:
        campaign_id, (taken, dropped) = await add_campaign(
            conn, "agents", THREE_TRIES, [["12025550201"], ["12025550202"]], mode="predictive"
        )
        await conn.execute(
            "UPDATE campaigns SET webhook_attempts = true WHERE id = $1", campaign_id
        )
        connected_at = datetime.now(UTC)
        taken_id = await dial(conn, campaign_id, taken)
        took = dataclasses.replace(
            answered(taken_id),
            agent="agent03",
            agent_connected_at=connected_at,
            abandoned=False,
            agent_wait_s=0.412,
        )
        assert await results.record_call(conn, took, lookup) is not None
        dropped_id = await dial(conn, campaign_id, dropped)
        drop = dataclasses.replace(
            answered(dropped_id),
            outcome=Outcome.ABANDONED,
            abandoned=True,
            abandon_reason="TIMEOUT",
            agent_wait_s=2.003,
        )
        recorded = await results.record_call(conn, drop, lookup)
        assert recorded is not None and recorded.outcome == "abandoned"
        rows = {
            str(r["id"]): dict(r)
            for r in await conn.fetch(
                "SELECT id, outcome, agent, agent_connected_at, agent_wait_ms, abandoned, "
                "abandon_reason FROM attempts WHERE campaign_id = $1",
                campaign_id,
            )
        }
        sent = {
            e["attempt"]["id"]: e["attempt"]
            for e in await events(conn)
            if e["type"] == "attempt.result"
        }
        plan = await store.get_contact(conn, dropped)
    assert rows[taken_id] == {
        "id": rows[taken_id]["id"],
        "outcome": "answered",
        "agent": "agent03",
        "agent_connected_at": connected_at,
        "agent_wait_ms": 412,
        "abandoned": False,
        "abandon_reason": None,
    }
    assert (rows[dropped_id]["outcome"], rows[dropped_id]["abandoned"]) == ("abandoned", True)
    assert (rows[dropped_id]["agent_wait_ms"], rows[dropped_id]["abandon_reason"]) == (
        2003,
        "TIMEOUT",
    )
    assert (sent[taken_id]["agent"], sent[taken_id]["agent_wait_ms"]) == ("agent03", 412)
    assert sent[taken_id]["abandoned"] is False and sent[taken_id]["agent_connected_at"]
    assert (sent[dropped_id]["outcome"], sent[dropped_id]["abandoned"]) == ("abandoned", True)
    # The built-in rule: a dropped caller is called again in 5 minutes.
    assert plan is not None and plan["closed_at"] is None
    delay = (plan["next_attempt_at"] - datetime.now(UTC)).total_seconds()
    assert 250 < delay <= 300
