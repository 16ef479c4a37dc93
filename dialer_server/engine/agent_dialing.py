"""Agent dialing: how many calls the agent-mode campaigns place for their free agents.

Agent-mode campaigns (progressive, power, predictive) dial for the free agents
of their queue (the roster, fed by AMI queue events): each tick, and whenever
the roster changes, ``agent_pacing.calls_to_place`` says how many calls the free
agents need beyond those already ringing for them. What it says is a ceiling:
the campaign's line limit, rate limit, calling window, do-not-call lists and
pause apply as to every campaign.

- One daemon paces a queue's agents at a time (``pacing_locks.py``): two would
  each count only their own ringing calls and dial twice as many. None does
  while the roster is not known (AMI down): no agent-mode call is placed then.
- Campaigns sharing a queue share its agents: each sees the calls the others
  have ringing and are about to place, and which of them goes first changes
  every tick, so none starves the others.
- A personal callback (and a preview call) is dialled only to its agent, while
  the roster shows that agent free in the campaign's queue (``callback_agents``),
  whatever the campaign's mode.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..db.queries import queries_of
from ..observability.metrics import Metrics
from ..telephony.originate import CallTracker
from .agent_pacing import Mode, PacingStats, calls_to_place, predictive_ratio
from .pacing_locks import PacingLocks
from .slots import AgentPacing, CampaignSlot

query = queries_of(__name__)

# A queue member's states as the roster reports them (roster.AgentState.status).
AGENT_STATES = ("free", "ringing", "busy", "wrapup", "paused", "unavailable")
# How often a predictive campaign's counts are read again from the database.
PACING_REFRESH_S = 1.0
# The agents' gauges are set at most this often: a scrape every few seconds reads them,
# and every member times every state per tick was a few % of the daemon's CPU.
GAUGES_EVERY_S = 1.0
# The latest call results the answer rate is measured over.
ANSWER_RATE_CALLS = 200


class AgentState(Protocol):
    """One queue member as the roster knows it (telephony/roster.py)."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...


class Roster(Protocol):
    """Who is logged in to which queue and free, from AMI queue events (telephony/roster.py)."""

    @property
    def ready(self) -> bool: ...
    @property
    def on_change(self) -> list[Callable[[], None]]: ...
    def free_agents(self, queue: str) -> list[str]: ...
    def members(self, queue: str) -> Sequence[AgentState]: ...
    def queues(self) -> Sequence[str]: ...


class AgentDialing:
    """The calls agent-mode campaigns want, and whom personal callbacks may ring."""

    def __init__(
        self,
        *,
        pool: Any,
        roster: Roster | None,
        tracker: CallTracker,
        metrics: Metrics,
        locks: PacingLocks,
    ) -> None:
        self.pool = pool
        self.roster = roster
        self.tracker = tracker
        self.metrics = metrics
        self._gauges_due = 0.0
        self.locks = locks
        # Which campaign of a shared queue is paced first: changes every tick.
        self._turn = 0

    async def calls_wanted(self, slots: Sequence[CampaignSlot]) -> dict[int, int]:
        """Calls each agent-mode campaign should place now for its queue's free agents."""
        queues: dict[str, list[CampaignSlot]] = {}
        for slot in slots:
            assert slot.agents is not None
            queues.setdefault(slot.agents.queue, []).append(slot)
        if self.roster is None or not self.roster.ready:
            # Who is free is unknown (AMI down, roster not synced): no call.
            await self.locks.keep_only(set())
            return {}
        await self.locks.keep_only(set(queues))
        self._turn += 1
        wanted: dict[int, int] = {}
        for queue, group in queues.items():
            if not await self.locks.hold(queue):
                continue  # another daemon paces these agents
            free_agents = self.roster.free_agents(queue)
            free_set = set(free_agents)
            free = len(free_agents)
            states = [m.status for m in self.roster.members(queue)]
            busy, wrapup = states.count("busy"), states.count("wrapup")
            ringing = sum(self._ringing(s.agents, free_set) for s in group if s.agents)
            first = self._turn % len(group)
            for slot in group[first:] + group[:first]:
                count = await self._pace(slot, free=free, wrapup=wrapup, busy=busy, ringing=ringing)
                wanted[slot.id] = count
                ringing += count
        return wanted

    def callback_agents(self, slot: CampaignSlot) -> list[str]:
        """The agents a due personal callback (or preview call) of this campaign may be
        dialled to now: the free members of its queue (agent modes, preview) or of the
        default queue. Without a roster in sync nobody is free, and they wait."""
        if self.roster is None or not self.roster.ready:
            return []
        return list(self.roster.free_agents(slot.agents_queue))

    def gauges(self) -> None:
        """The dialer_agents gauge: each queue's members by state (at most once a second)."""
        if self.roster is None or not self.roster.ready:
            return
        now = time.monotonic()
        if now < self._gauges_due:
            return
        self._gauges_due = now + GAUGES_EVERY_S
        members: list[tuple[str, str, str, str]] = []
        for queue in self.roster.queues():
            counts = dict.fromkeys(AGENT_STATES, 0)
            for member in self.roster.members(queue):
                state = member.status if member.status in counts else "unavailable"
                counts[state] += 1
                members.append((queue, member.name, state, getattr(member, "pause_reason", "")))
            self.metrics.set_agents(queue, counts)
        self.metrics.set_agent_states(members, AGENT_STATES)

    async def close(self) -> None:
        await self.locks.close()

    async def _pace(
        self, slot: CampaignSlot, *, free: int, wrapup: int, busy: int, ringing: int
    ) -> int:
        """Calls one campaign would place for ``free`` agents with ``ringing`` calls out.

        Predictive dials for the agents in wrap-up too: they are free again
        (a second or so) before a call placed now is answered.
        """
        pacing = slot.agents
        assert pacing is not None
        if pacing.mode is Mode.PREDICTIVE:
            free += wrapup
            now = time.monotonic()
            if now - pacing.stats_read_at >= PACING_REFRESH_S:
                pacing.stats = await self._pacing_stats(slot.id, pacing.grace_s)
                pacing.stats_read_at = now
            stats = dataclasses.replace(
                pacing.stats, ringing=ringing, free_agents=free, busy_agents=busy
            )
            pacing.ratio = predictive_ratio(stats, pacing.predictive)
        elif pacing.mode is Mode.POWER:
            pacing.ratio = pacing.dial_ratio
        else:
            pacing.ratio = 1.0
        self.metrics.set_pacing(
            slot.id, pacing.ratio, pacing.stats.day_rate(), pacing.stats.month_rate()
        )
        return calls_to_place(pacing.mode, free_agents=free, ringing=ringing, ratio=pacing.ratio)

    def _ringing(self, pacing: AgentPacing, free_agents: set[str]) -> int:
        """Calls of the campaign that may still need an agent.

        Dialling, ringing, answered and waiting in the queue; and connected to
        an agent the roster still shows as free (its queue events lag behind
        our dialplan's report), so that agent is not given a second call.
        """
        ringing = 0
        for attempt_id in pacing.calls:
            settled, agent = self.tracker.agent_fate(attempt_id)
            if not settled or (agent is not None and agent in free_agents):
                ringing += 1
        return ringing

    async def _pacing_stats(self, campaign_id: int, grace_s: float) -> PacingStats:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(query("agent_pacing_stats"), campaign_id, ANSWER_RATE_CALLS)
        return PacingStats(
            day_answered=row["day_answered"],
            day_abandoned=row["day_abandoned"],
            month_answered=row["month_answered"],
            month_abandoned=row["month_abandoned"],
            recent_calls=row["recent_calls"],
            recent_answered=row["recent_answered"],
            mean_talk_s=row["mean_talk_s"],
            grace_s=grace_s,
        )
