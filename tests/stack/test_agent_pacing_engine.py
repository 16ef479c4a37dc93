"""The engine's agent pacing through real Asterisk, with a roster we control.

The roster here is a stand-in whose free agents the test sets (the real one,
fed by AMI queue events, is tested in tests/test_agents*.py and used by
tests/test_agent_sim.py): what is checked is what the scheduler does with
it. Contacts ring without answering (...180) for their 15 s ring time, so
every call placed is still ringing when the calls are counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import pytest

from dialer_server.config import Config
from dialer_server.engine.pacing_locks import PacingLocks

from ..support.campaign_setup import add_campaign, engine_config, running_daemon

pytestmark = pytest.mark.stack

RINGS = "12025550180"
ONE_CALL = {
    "name": "one-call",
    "version": 1,
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    status: str


class FakeRoster:
    def __init__(self) -> None:
        self.ready = False
        self.free: list[str] = []
        self.on_change: list[Callable[[], None]] = []

    def set_free(self, names: list[str]) -> None:
        self.ready = True
        self.free = names
        for callback in self.on_change:
            callback()

    def free_agents(self, queue: str) -> list[str]:
        return list(self.free) if queue == "dialer-agents" else []

    def members(self, queue: str) -> Sequence[Member]:
        return [Member(name, "free") for name in self.free_agents(queue)]

    def queues(self) -> Sequence[str]:
        return ["dialer-agents"]

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()


async def _calls(conn: Any, campaign_id: int) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM attempts WHERE campaign_id = $1", campaign_id)
    )


async def _settle(conn: Any, campaign_id: int, expected: int) -> int:
    """Wait until ``expected`` calls exist, then a little longer: the count placed."""
    async with asyncio.timeout(10):
        while await _calls(conn, campaign_id) < expected:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # ten ticks: time for any call too many
    return await _calls(conn, campaign_id)


@pytest.mark.parametrize(
    ("mode", "ratio", "per_agent"), [("progressive", 2.0, 1), ("power", 2.0, 2)]
)
async def test_calls_follow_the_free_agents_and_none_without_a_roster(
    config: Config, database_url: str, mode: str, ratio: float, per_agent: int
) -> None:
    roster = FakeRoster()
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn, mode, ONE_CALL, [[RINGS]] * 12, mode=mode, dial_ratio=ratio
        )
        # Nobody waits for calls that ring 15 s unanswered: stop without draining.
        daemon_config = engine_config(config, drain_s=0.0)
        async with running_daemon(daemon_config, roster=roster):
            # No roster yet (AMI queue state unknown): no call at all.
            await asyncio.sleep(0.5)
            assert await _calls(conn, campaign_id) == 0
            roster.set_free(["agent01", "agent02"])
            assert await _settle(conn, campaign_id, 2 * per_agent) == 2 * per_agent
            # The calls ring; the same free agents get no more of them.
            roster.set_free(["agent01", "agent02"])
            await asyncio.sleep(0.5)
            assert await _calls(conn, campaign_id) == 2 * per_agent
            # One more agent is free: calls for that one only.
            roster.set_free(["agent01", "agent02", "agent03"])
            assert await _settle(conn, campaign_id, 3 * per_agent) == 3 * per_agent
    finally:
        await conn.close()


async def test_campaigns_on_one_queue_share_its_free_agents(
    config: Config, database_url: str
) -> None:
    roster = FakeRoster()
    conn = await asyncpg.connect(database_url)
    try:
        first, _ = await add_campaign(conn, "first", ONE_CALL, [[RINGS]] * 6, mode="progressive")
        second, _ = await add_campaign(conn, "second", ONE_CALL, [[RINGS]] * 6, mode="progressive")
        async with running_daemon(engine_config(config, drain_s=0.0), roster=roster):
            roster.set_free(["agent01", "agent02", "agent03"])
            async with asyncio.timeout(10):
                while await _calls(conn, first) + await _calls(conn, second) < 3:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert await _calls(conn, first) + await _calls(conn, second) == 3
    finally:
        await conn.close()


async def test_one_daemon_at_a_time_paces_the_agents_of_a_queue(database_url: str) -> None:
    first, second = PacingLocks(database_url), PacingLocks(database_url)
    try:
        assert await first.hold("sales")
        assert await first.hold("sales")  # held: no new lock taken
        assert not await second.hold("sales")
        assert await second.hold("support") and not await first.hold("support")
        await first.keep_only(set())  # no campaign of the first uses "sales" any more
        await asyncio.sleep(1.1)  # the second asks again after its retry interval
        assert await second.hold("sales")
        await second.close()  # a daemon gone: its locks go with its session
        await asyncio.sleep(1.1)
        assert await first.hold("support")
    finally:
        await first.close()
        await second.close()
