"""Agent campaigns end to end: sipp agents in a real Asterisk queue, sipp contacts.

Agents (tests/agents.py) are registered queue members on auto-answer who hold
each call for a random talk time. Contacts answer with a set probability: a
contact's number ends in 260 (answers, would stay 60 s: the agent ends the
call) or in 486 (busy), drawn with a seeded random. Each mode dials its own
campaign to the end and prints talk minutes per agent-hour, the abandon rate
and calls per agent-hour (agent_stats.py). What is asserted are properties
that hold whatever the timing: progressive never has more calls up than
agents, power never more than its ratio allows, every answered call was either
taken by an agent or abandoned (never both, never neither), and predictive
keeps the abandon rate of its rolling 24 h under the 3 % cap. Timings are the
bench's business (bench/agents.py).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dialer_server.campaigns.agent_stats import AgentStats, agent_stats
from dialer_server.config import Config

from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.sipp_agents import QUEUE, SippAgents, TalkTime, seed_call_history

pytestmark = pytest.mark.stack

AGENTS = 4
ANSWERS = "12025550260"
BUSY = "12025550486"
ANSWER_RATE = 0.5

ONE_CALL = {
    "name": "agent-sim",
    "version": 1,
    "description": "one call per contact",
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}

CALLS_SQL = """
SELECT id, contact_id, outcome, created_at, ended_at, agent, agent_connected_at,
       agent_wait_ms, abandoned, abandon_reason
FROM attempts WHERE campaign_id = $1 AND channel = 'call' ORDER BY created_at
"""


@pytest.fixture
async def agents(stack: Any) -> AsyncIterator[SippAgents]:
    async with SippAgents(talk=TalkTime(min_s=2.0, spread_s=2.0)) as sipp:
        await sipp.register(AGENTS)
        yield sipp


def _numbers(count: int, seed: int) -> list[list[str | None]]:
    rng = random.Random(seed)
    return [[ANSWERS if rng.random() < ANSWER_RATE else BUSY] for _ in range(count)]


async def _run(
    config: Config,
    database_url: str,
    mode: str,
    contacts: int,
    *,
    history: tuple[int, int] = (0, 0),
    **settings: Any,
) -> tuple[AgentStats, list[dict[str, Any]], Any]:
    """Dial a campaign of ``contacts`` in ``mode`` to the end: its stats, calls, and daemon."""
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            f"sim-{mode}",
            ONE_CALL,
            _numbers(contacts, seed=len(mode)),
            start=False,
            mode=mode,
            max_concurrent_calls=30,
            max_calls_per_second=20,
            **settings,
        )
        earlier_answered, earlier_calls = history
        await seed_call_history(
            conn,
            campaign_id,
            ANSWERS,
            answered=earlier_answered,
            not_answered=earlier_calls - earlier_answered,
        )
        # Time-compressed: a tick of 50 ms; answered calls wait 2 s for an agent.
        async with running_daemon(engine_config(config)) as daemon:
            await _wait_roster(daemon)
            started = datetime.now(UTC)
            await conn.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=120, alive=daemon.alive
            )
            metrics = daemon.metrics.render().decode()
        stats = await agent_stats(conn, campaign_id, start=started, agents=AGENTS)
        calls = [
            dict(r) for r in await conn.fetch(CALLS_SQL, campaign_id) if r["created_at"] >= started
        ]
        window = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')) AS answered, "
            "count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned FROM attempts "
            "WHERE campaign_id = $1 AND ended_at > now() - interval '24 hours'",
            campaign_id,
        )
    finally:
        await conn.close()
    day_rate = window["abandoned"] / window["answered"] if window["answered"] else 0.0
    print(
        f"\n{mode:12} {stats.talk_min_per_agent_hour:5.1f} talk-min/agent-hour  "
        f"{stats.calls_per_agent_hour:6.1f} calls/agent-hour  "
        f"abandon: this run {stats.abandon_rate:5.1%} ({stats.abandoned}/{stats.answered}), "
        f"rolling 24 h {day_rate:5.2%} ({window['abandoned']}/{window['answered']}, cap 3 %)  "
        f"{stats.calls} calls in {stats.hours * 3600:.1f} s"
    )
    return stats, calls, (window, metrics)


async def _wait_roster(daemon: Any) -> None:
    """Until the daemon's roster has synced and sees the registered agents free."""
    async with asyncio.timeout(15):
        while not (daemon.roster.ready and len(daemon.roster.free_agents(QUEUE)) == AGENTS):
            await asyncio.sleep(0.05)


def _every_answered_call_was_taken_or_abandoned(calls: list[dict[str, Any]]) -> None:
    for call in calls:
        if call["outcome"] == "answered":
            assert call["agent"] is not None and call["agent_connected_at"] is not None, call
            assert call["abandoned"] is False and call["agent_wait_ms"] is not None, call
        elif call["outcome"] == "abandoned":
            assert call["abandoned"] is True and call["agent"] is None, call
            assert call["abandon_reason"] in ("TIMEOUT", "HANGUP"), call
        else:
            assert call["agent"] is None and call["abandoned"] is None, call


def _most_calls_up_at_once(calls: list[dict[str, Any]]) -> int:
    """The most calls of the campaign up at any one time (placed and not yet ended)."""
    edges = sorted(
        [(c["created_at"], 1) for c in calls] + [(c["ended_at"], -1) for c in calls],
        key=lambda edge: (edge[0], edge[1]),
    )
    up = most = 0
    for _, step in edges:
        up += step
        most = max(most, up)
    return most


def _most_calls_waiting_at_once(calls: list[dict[str, Any]]) -> int:
    """The most calls placed and not yet taken by an agent (nor ended) at any one time."""
    edges = []
    for c in calls:
        edges.append((c["created_at"], 1))
        edges.append((c["agent_connected_at"] or c["ended_at"], -1))
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    up = most = 0
    for _, step in edges:
        up += step
        most = max(most, up)
    return most


async def test_progressive_never_has_more_calls_up_than_agents(
    config: Config, database_url: str, agents: SippAgents
) -> None:
    stats, calls, _ = await _run(config, database_url, "progressive", 24)
    assert len(calls) == 24 and stats.calls == 24
    _every_answered_call_was_taken_or_abandoned(calls)
    # Each agent has at most one call: ringing for them, or talking to them.
    assert _most_calls_up_at_once(calls) <= AGENTS
    assert stats.abandoned == 0
    assert stats.connected == sum(1 for c in calls if c["outcome"] == "answered") > 0


async def test_power_dials_its_ratio_per_free_agent(
    config: Config, database_url: str, agents: SippAgents
) -> None:
    stats, calls, (_, metrics) = await _run(config, database_url, "power", 24, dial_ratio=2.0)
    assert stats.calls == 24
    _every_answered_call_was_taken_or_abandoned(calls)
    assert _most_calls_waiting_at_once(calls) <= 2 * AGENTS
    assert stats.answered == stats.connected + stats.abandoned
    assert 'dialer_pacing_ratio{campaign="' in metrics and "} 2.0" in metrics
    assert f'dialer_calls_abandoned_total{{campaign="{stats.campaign_id}"}} ' in metrics


async def test_predictive_keeps_its_abandon_rate_under_the_cap(
    config: Config, database_url: str, agents: SippAgents
) -> None:
    # A campaign that dialled earlier today (100 of 200 calls answered, none
    # abandoned): the pacer has an answer rate and room under its cap to use.
    stats, calls, (window, metrics) = await _run(
        config, database_url, "predictive", 40, history=(100, 200)
    )
    assert stats.calls == 40
    _every_answered_call_was_taken_or_abandoned(calls)
    assert stats.answered == stats.connected + stats.abandoned
    # The cap is on the rolling 24 h (and 30 days), history included.
    assert window["answered"] == 100 + stats.answered
    assert window["abandoned"] / window["answered"] <= 0.03
    assert 'dialer_abandon_rate{campaign="' in metrics
    assert _most_calls_waiting_at_once(calls) <= 3 * AGENTS  # max_dial_ratio
