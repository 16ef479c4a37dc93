"""Personal callbacks in the engine's claim, against real PostgreSQL: a callback
waits until its agent is free, never holds up other contacts, goes to its agent
only, and no follow-up is dialled before its time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer_server.config import Config
from dialer_server.engine import store
from dialer_server.engine.answered_calls import DEFAULT_QUEUE, callback_dialplan
from dialer_server.engine.instance import Instance
from dialer_server.engine.scheduler import Scheduler, call_variables
from dialer_server.observability.metrics import Metrics
from dialer_server.telephony.originate import CallTracker
from dialer_server.telephony.pbx_pool import PbxPool
from dialer_server.telephony.sms import NullSmsProvider

from ..support.campaign_setup import add_campaign
from ..support.sql import sql

pytestmark = pytest.mark.stack

ONE_CALL = {"name": "callbacks", "version": 1, "attempts": [{"phone": 1, "max_tries": 3}]}


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    status: str


class FakeRoster:
    """The agent roster (agents.py), in sync, with these agents free in the default queue."""

    def __init__(self, free: Sequence[str]) -> None:
        self.free = list(free)
        self.ready = True
        self.on_change: list[Callable[[], None]] = []

    def free_agents(self, queue: str) -> list[str]:
        return list(self.free) if queue == DEFAULT_QUEUE else []

    def members(self, queue: str) -> Sequence[Member]:
        return [Member(name, "free") for name in self.free_agents(queue)]

    def queues(self) -> Sequence[str]:
        return [DEFAULT_QUEUE]


async def scheduler_for(pool: Any, config: Config) -> Scheduler:
    instance = Instance(config.database.url)
    async with pool.acquire() as conn:
        instance.id = int(await conn.fetchval(sql("register_instance"), "test", 1, ["default"]))
    return Scheduler(
        pool=pool,
        pbxs=PbxPool(config),
        tracker=CallTracker(),
        sms=NullSmsProvider(),
        config=config,
        instance=instance,
        metrics=Metrics(),
    )


async def plan(
    conn: Any, contact_id: int, at: datetime, agent: str | None = None, detail: str = "$none"
) -> None:
    """The contact as a disposition leaves it: open, due at ``at`` on step 0."""
    await conn.execute(
        sql("disposition_reopen_contact"), contact_id, detail, at, 0, "call", 1, agent
    )


async def due_at(conn: Any, contact_id: int) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT next_attempt_at FROM contacts WHERE id = $1", contact_id
    )
    return value


async def test_a_personal_callback_waits_for_its_agent_and_never_holds_up_other_contacts(
    pool: Any, config: Config
) -> None:
    scheduler = await scheduler_for(pool, config)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        campaign_id, (plain, cb1, cb2, cb1_later, follow) = await add_campaign(
            conn, "cb", ONE_CALL, [[f"+1202555010{i}"] for i in range(5)]
        )
        await plan(conn, plain, now - timedelta(seconds=10))
        await plan(conn, cb1, now - timedelta(seconds=60), "agent01", "$follow_up_personal")
        await plan(conn, cb2, now - timedelta(seconds=50), "agent02", "$follow_up_personal")
        await plan(conn, cb1_later, now - timedelta(seconds=40), "agent01", "$follow_up_personal")
        await plan(conn, follow, now + timedelta(hours=1), None, "$follow_up_auto")
        (row,) = await store.running_campaigns(conn)
    (slot,) = scheduler.slots.update([row])

    # No roster (no agent runtime): no agent is free. The three callbacks are
    # due first, yet a claim of one takes the plain contact.
    jobs = await scheduler._claim(slot, 1, list(scheduler.pbxs))
    assert [(j.contact_id, j.agent) for j in jobs] == [(plain, None)]
    async with pool.acquire() as conn:
        assert await due_at(conn, cb1) == now - timedelta(seconds=60)
        assert await due_at(conn, follow) == now + timedelta(hours=1)
    assert await scheduler._claim(slot, 10, list(scheduler.pbxs)) == []

    # agent01 frees up: its first callback goes to it, its second waits (one
    # call per agent per claim), agent02's waits for agent02.
    scheduler.agents.roster = FakeRoster(["agent01"])
    jobs = await scheduler._claim(slot, 10, list(scheduler.pbxs))
    assert [(j.contact_id, j.agent) for j in jobs] == [(cb1, "agent01")]
    assert slot.dialplan is not None
    variables = call_variables(jobs[0], slot.dialplan)
    assert variables["DIALER_AGENT"] == "PJSIP/agent01"
    # An automated campaign's callback still goes where agents are: [dialer-agents].
    assert slot.dialplan.context == config.dialing.context
    dialplan = callback_dialplan(slot.dialplan, config.dialing)
    assert (dialplan.context, dialplan.variables["DIALER_AGENT_WAIT_S"]) == ("dialer-agents", "2")
    async with pool.acquire() as conn:
        assert await due_at(conn, cb1_later) == now - timedelta(seconds=40)
        assert await due_at(conn, cb2) == now - timedelta(seconds=50)
        attempt = await conn.fetchrow(
            "SELECT contact_id, number, state FROM attempts WHERE id = $1", jobs[0].attempt_id
        )
        assert dict(attempt) == {"contact_id": cb1, "number": "+12025550101", "state": "created"}
        dialling = await store.get_contact(conn, cb1)
        assert dialling is not None
        assert (dialling["state"], dialling["callback_agent"]) == ("sent_to_dialer", "agent01")

    scheduler.agents.roster = FakeRoster(["agent02", "agent01"])
    jobs = await scheduler._claim(slot, 10, list(scheduler.pbxs))
    assert sorted((j.contact_id, j.agent) for j in jobs) == sorted(
        [(cb2, "agent02"), (cb1_later, "agent01")]
    )
    # The follow-up's time has not come, whoever is free.
    assert await scheduler._claim(slot, 10, list(scheduler.pbxs)) == []
    async with pool.acquire() as conn:
        assert await due_at(conn, follow) == now + timedelta(hours=1)
        assert campaign_id == row["id"]


async def test_no_follow_up_is_claimed_before_its_time(pool: Any) -> None:
    at = datetime.now(UTC) + timedelta(hours=2)
    async with pool.acquire() as conn:
        campaign_id, (auto, personal) = await add_campaign(
            conn, "later", ONE_CALL, [["+12025550111"], ["+12025550112"]]
        )
        await plan(conn, auto, at, None, "$follow_up_auto")
        await plan(conn, personal, at, "agent05", "$follow_up_personal")
        claim = sql("claim_due_contacts")
        just_before = at - timedelta(milliseconds=1)
        # ($5: a preview campaign's claim; this one is not.)
        assert await conn.fetch(claim, campaign_id, 10, just_before, ["agent05"], False) == []
        # On time: the automatic one; the personal one only with its agent free.
        rows = await conn.fetch(claim, campaign_id, 10, at, ["agent01"], False)
        assert [(r["id"], r["due_at"]) for r in rows] == [(auto, at)]
        # (The claim locks what it returns, and writes nothing: both are still due.)
        rows = await conn.fetch(claim, campaign_id, 10, at + timedelta(days=1), [], False)
        assert [r["id"] for r in rows] == [auto]
        rows = await conn.fetch(claim, campaign_id, 10, at, ["agent05"], False)
        assert [(r["id"], r["callback_agent"]) for r in rows] == [
            (auto, None),
            (personal, "agent05"),
        ]
