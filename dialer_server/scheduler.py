"""The campaign engine's loop: claim due contacts, dial them, record results.

PostgreSQL decides what is dialled. A contact is claimed and its attempt row
written in one transaction *before* the Originate goes out, so after any crash
the database knows a call may exist. Nothing is ever re-sent on a reconnect:
open attempts are reconciled with the channels Asterisk still has, and an
attempt whose fate cannot be known closes as dangling, never redialled.

Agent-mode campaigns (progressive, power, predictive) dial for the free agents
of their queue (the roster, fed by AMI queue events): each tick, and whenever
the roster changes, ``agent_pacing.calls_to_place`` says how many calls the free
agents need beyond those already ringing for them, within the same line limit,
rate limit, calling window, do-not-call and pause rules as every campaign. One
daemon paces a queue's agents at a time (pacing_locks.py), and none does
while the roster is not known (AMI down).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import asyncpg

from . import results, store
from .agent_pacing import (
    Mode,
    PacingStats,
    PredictiveSettings,
    calls_to_place,
    predictive_ratio,
)
from .ami import AmiClient, AmiState, Event
from .answered_calls import (
    AGENT_MODES,
    DEFAULT_QUEUE,
    AnsweredCalls,
    Dialplan,
    callback_dialplan,
    dialplan_for,
)
from .calling_window import (
    HORIZON_DAYS,
    CallingWindow,
    CallingWindowError,
    next_allowed,
    parse_window,
    zones_for_contact,
)
from .config import Config
from .db import query
from .errors import AmiDisconnected, AmiError
from .instance import Instance
from .metrics import Metrics
from .originate import CallRequest, CallResult, CallTracker
from .outcomes import Outcome
from .pacing import RateLimiter, capacity
from .pacing_locks import PacingLocks
from .sms import InboundSms, SmsProvider, inbound_from_event, render_text
from .strategy import Close, Decision, Dial, SendSms, Strategy, close_for, first_action

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "PostgreSQL is away for now", not "this query is wrong".
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
DB_RETRY_MAX_S = 5.0
# A contact whose campaign has no usable strategy cannot be dialled.
ENGINE_ERROR = Close("not_connected", "failed", "$error")
COMPLETION_CHECK_S = 1.0
# A call that waited this long for the rate limit checks its campaign was not paused.
PAUSE_RECHECK_S = 0.05


# Without a window of its own a campaign calls every day 08:00-21:00 local time,
# the hours most regulations allow.
DEFAULT_WINDOW_HOURS = {
    "hours": {day: ["08:00-21:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
}
DEFAULT_WINDOW = parse_window(DEFAULT_WINDOW_HOURS)

# A queue member's states as the roster reports them (agents.AgentState.status).
AGENT_STATES = ("free", "ringing", "busy", "wrapup", "paused", "unavailable")
# How often a predictive campaign's counts are read again from the database.
PACING_REFRESH_S = 1.0
# The latest call results the answer rate is measured over.
ANSWER_RATE_CALLS = 200


class AgentState(Protocol):
    """One queue member as the roster knows it (agents.AgentState)."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...


class Roster(Protocol):
    """Who is logged in to which queue and free, from AMI queue events (agents.py)."""

    @property
    def ready(self) -> bool: ...
    @property
    def on_change(self) -> list[Callable[[], None]]: ...
    def free_agents(self, queue: str) -> list[str]: ...
    def members(self, queue: str) -> Sequence[AgentState]: ...
    def queues(self) -> Sequence[str]: ...


@dataclasses.dataclass
class AgentPacing:
    """An agent-mode campaign's pacing: its settings and what the loop last measured."""

    mode: Mode
    queue: str
    dial_ratio: float
    predictive: PredictiveSettings
    grace_s: float = 2.0
    # Calls of this campaign towards agents: from the claim until the call ends.
    calls: set[str] = dataclasses.field(default_factory=set)
    stats: PacingStats = dataclasses.field(default_factory=PacingStats)
    stats_read_at: float = float("-inf")
    ratio: float = 1.0


@dataclasses.dataclass
class CampaignSlot:
    """What the loop keeps per running campaign between ticks."""

    id: int
    name: str
    max_concurrent: int
    calls_per_second: float
    trunk: str | None
    caller_id: str | None
    limiter: RateLimiter
    in_flight: int = 0
    window: CallingWindow = dataclasses.field(default_factory=lambda: DEFAULT_WINDOW)
    # Where answered calls go (the campaign's mode) and the variables for it.
    dialplan: Dialplan | None = None
    # Agent modes only.
    agents: AgentPacing | None = None


@dataclasses.dataclass(frozen=True)
class Job:
    attempt_id: str
    campaign_id: int
    contact_id: int
    channel: str
    number: str
    step: int
    phone_slot: int
    ring_timeout_s: int
    text: str = ""
    # A personal callback: dialled to this agent (queue member name).
    agent: str | None = None


@dataclasses.dataclass(frozen=True)
class OpenAttempt:
    id: str
    campaign_id: int
    contact_id: int
    channel: str
    state: str


class Scheduler:
    def __init__(
        self,
        *,
        pool: Any,
        ami: AmiClient,
        tracker: CallTracker,
        sms: SmsProvider,
        config: Config,
        instance: Instance,
        metrics: Metrics,
        roster: Roster | None = None,
    ) -> None:
        self.pool = pool
        self.ami = ami
        self.tracker = tracker
        self.sms = sms
        self.config = config
        self.instance = instance
        self.metrics = metrics
        self.strategies = results.StrategyLookup()
        self._slots: dict[int, CampaignSlot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Attempts being followed by a task of ours (claimed, dialling, adopted).
        self._active: set[str] = set()
        # Sent calls whose AMI link dropped before their result: reconcile them.
        self._unresolved: dict[str, OpenAttempt] = {}
        self._reconcile_needed = asyncio.Event()
        self._stop = asyncio.Event()
        self._db_down_since: float | None = None
        # Agent modes: who is free, and the lock that makes this daemon their pacer.
        self.roster = roster
        self._pacing_locks = PacingLocks(config.database.url, config.database.connect_timeout_s)
        # Set when agents free up: the loop ticks at once instead of at its cadence.
        self._wake = asyncio.Event()
        # Which campaign of a shared queue is paced first: changes every tick.
        self._turn = 0
        if roster is not None:
            roster.on_change.append(self._wake.set)
        ami.on_state_change(self._ami_state_changed)
        ami.subscribe(self._handle_event)
        # AMD verdicts and IVR keys reach each call's result before its Hangup.
        ami.subscribe(AnsweredCalls(tracker).handle_event)

    # --- the loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Dial until ``stop`` is set, then drain (see ``_drain``)."""
        self._stop = stop
        self._reconcile_needed.set()  # on start: take over what a previous life left open
        tick_s = self.config.dialing.tick_s
        next_reconcile = 0.0
        next_completion = 0.0
        due = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                lag = max(0.0, now - due)
                self.metrics.tick_lag.observe(lag)
                self.metrics.last_tick.set(time.time())
                ready = self.ami.connected and self.instance.locked.is_set()
                try:
                    if ready and (self._reconcile_needed.is_set() or now >= next_reconcile):
                        self._reconcile_needed.clear()
                        await self._reconcile()
                        next_reconcile = now + self.config.dialing.reconcile_interval_s
                    if ready:
                        await self._tick()
                    if now >= next_completion:
                        await self._complete_finished_campaigns()
                        next_completion = now + COMPLETION_CHECK_S
                    self._db_back()
                except TRANSIENT_DB_ERRORS as exc:
                    self._db_down(exc)
                except Exception:
                    # A bug or a bad row must not stop every campaign: log it
                    # loudly and go on; what it left open is reconciled later.
                    logger.exception("scheduler tick failed", extra={"action": "tick"})
                    await asyncio.sleep(1.0)
                self.metrics.tick_duration.observe(time.monotonic() - now)
                # A fixed cadence: a slow tick shortens the wait before the next
                # one; a loop more than a tick behind starts afresh, no bursts.
                due = (due if lag <= tick_s else now) + tick_s
                await self._sleep(stop, max(0.0, due - time.monotonic()))
                if self._wake.is_set():
                    due = time.monotonic()  # an early tick: the cadence starts from it
                self._wake.clear()
        finally:
            await self._drain()
            await self._pacing_locks.close()

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Until the next tick, or until stopped, or until the roster says agents changed."""
        waits = [
            asyncio.create_task(stop.wait(), name="scheduler-stop"),
            asyncio.create_task(self._wake.wait(), name="scheduler-wake"),
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def _drain(self) -> None:
        """On stop: no new call starts; calls in flight may finish and be recorded.

        They get up to ``dialing.drain_s`` (AMI and the instance lock stay up
        meanwhile: the daemon stops them after this returns). Whatever is still
        open then stays open in the database, for the next start of this or
        another daemon to reconcile with Asterisk.
        """
        drain_s = self.config.dialing.drain_s
        if self._tasks:
            logger.info(
                "stopping: waiting up to %.0f s for %d attempts in flight",
                drain_s,
                len(self._active),
                extra={"action": "drain", "attempt_ids": sorted(self._active)},
            )
            started = time.monotonic()
            _, pending = await asyncio.wait(self._tasks, timeout=drain_s)
            if pending:
                logger.warning(
                    "drain time over: %d attempts left open, reconciled at the next start",
                    len(self._active),
                    extra={"action": "drain", "attempt_ids": sorted(self._active)},
                )
            else:
                logger.info(
                    "every attempt in flight recorded after %.1f s",
                    time.monotonic() - started,
                    extra={"action": "drain"},
                )
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    async def _tick(self) -> None:
        async with self.pool.acquire() as conn:
            campaigns = await store.running_campaigns(conn)
        running = set()
        slots = [self._slot(row) for row in campaigns]
        for_agents = await self._agent_calls_wanted([s for s in slots if s.agents is not None])
        for slot in slots:
            running.add(slot.id)
            wanted = capacity(
                max_concurrent=slot.max_concurrent,
                in_flight=slot.in_flight,
                limiter=slot.limiter,
                now=time.monotonic(),
            )
            if slot.agents is not None:
                wanted = min(wanted, for_agents.get(slot.id, 0))
            if wanted <= 0:
                continue
            for job in await self._claim(slot, wanted):
                if slot.agents is not None and job.channel == "call":
                    slot.agents.calls.add(job.attempt_id)
                self._spawn(self._run_job(slot, job), job.attempt_id, slot)
        self._agent_gauges()
        for campaign_id in list(self._slots):
            if campaign_id not in running and self._slots[campaign_id].in_flight == 0:
                del self._slots[campaign_id]

    # --- agent modes -------------------------------------------------------------------
    async def _agent_calls_wanted(self, slots: list[CampaignSlot]) -> dict[int, int]:
        """Calls each agent-mode campaign should place now for its queue's free agents.

        Campaigns sharing a queue share its agents: each sees the calls the
        others have ringing and are about to place (the first of them in turn
        changes every tick, so none starves the others).
        """
        queues: dict[str, list[CampaignSlot]] = {}
        for slot in slots:
            assert slot.agents is not None
            queues.setdefault(slot.agents.queue, []).append(slot)
        if self.roster is None or not self.roster.ready:
            # Who is free is unknown (AMI down, roster not synced): no call.
            await self._pacing_locks.keep_only(set())
            return {}
        await self._pacing_locks.keep_only(set(queues))
        self._turn += 1
        wanted: dict[int, int] = {}
        for queue, group in queues.items():
            if not await self._pacing_locks.hold(queue):
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

    def _agent_gauges(self) -> None:
        if self.roster is None or not self.roster.ready:
            return
        for queue in self.roster.queues():
            counts = dict.fromkeys(AGENT_STATES, 0)
            for member in self.roster.members(queue):
                state = member.status if member.status in counts else "unavailable"
                counts[state] += 1
            self.metrics.set_agents(queue, counts)

    def _slot(self, row: dict[str, Any]) -> CampaignSlot:
        cps = float(row["max_calls_per_second"])
        slot = previous = self._slots.get(row["id"])
        if slot is None or slot.calls_per_second != cps:
            slot = CampaignSlot(
                id=row["id"],
                name=row["name"],
                max_concurrent=row["max_concurrent_calls"],
                calls_per_second=cps,
                trunk=row["trunk"],
                caller_id=row["caller_id"],
                limiter=RateLimiter(cps),
                in_flight=slot.in_flight if slot else 0,
            )
            self._slots[slot.id] = slot
            self.metrics.campaign_seen(slot.id, slot.trunk or self.config.dialing.trunk)
        slot.max_concurrent = row["max_concurrent_calls"]
        slot.trunk, slot.caller_id = row["trunk"], row["caller_id"]
        slot.window = campaign_window(row["calling_window"], row["timezone"])
        slot.dialplan = dialplan_for(row, self.config.dialing)
        # A new slot (the rate changed) keeps following the calls of the old one.
        slot.agents = self._agent_pacing(row, previous.agents if previous else None)
        return slot

    @staticmethod
    def _agent_pacing(row: dict[str, Any], current: AgentPacing | None) -> AgentPacing | None:
        if row.get("mode") not in AGENT_MODES:
            return None
        predictive = PredictiveSettings(
            abandon_cap=float(row["abandon_cap"]),
            abandon_target=float(row["abandon_target"]),
            max_ratio=float(row["max_dial_ratio"]),
        )
        pacing = AgentPacing(
            mode=Mode(row["mode"]),
            queue=row["queue"],
            dial_ratio=float(row["dial_ratio"]),
            predictive=predictive,
            grace_s=float(row["agent_wait_s"]),
        )
        if current is not None:
            # The calls in flight and the measured counts outlive a settings change.
            pacing.calls, pacing.stats = current.calls, current.stats
            pacing.stats_read_at, pacing.ratio = current.stats_read_at, current.ratio
        return pacing

    # --- claiming ----------------------------------------------------------------------
    def _callback_agents(self, slot: CampaignSlot) -> list[str]:
        """The agents a due personal callback of this campaign may be dialled to now:
        the free members of its queue (agent modes) or of the default queue. Without
        a roster in sync nobody is free, and personal callbacks wait."""
        if self.roster is None or not self.roster.ready:
            return []
        queue = slot.agents.queue if slot.agents is not None else DEFAULT_QUEUE
        return list(self.roster.free_agents(queue))

    async def _claim(self, slot: CampaignSlot, limit: int) -> list[Job]:
        now = datetime.now(UTC)
        jobs: list[Job] = []
        closed: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            max_calls = await conn.fetchval(query("lock_campaign_lines"), slot.id)
            if max_calls is None:
                return jobs  # paused or stopped since the tick began
            open_calls = await conn.fetchval(query("open_campaign_calls"), slot.id)
            limit = min(limit, max_calls - open_calls)
            if limit <= 0:
                return jobs
            free = self._callback_agents(slot)
            rows = await conn.fetch(query("claim_due_contacts"), slot.id, limit, now, free)
            if not rows:
                return jobs
            rows, later = one_call_per_agent(rows)
            for contact in later:
                await conn.execute(query("unclaim_contact"), contact["id"], contact["due_at"])
            strategy = await self.strategies.get(conn, slot.id)
            for contact in rows:
                job = await self._prepare(conn, slot, strategy, contact, now, closed)
                if job is not None:
                    jobs.append(job)
        # Counted once the transaction has committed.
        for state in closed:
            self.metrics.contact_closed(slot.id, state)
        return jobs

    async def _prepare(
        self,
        conn: Any,
        slot: CampaignSlot,
        strategy: Strategy | None,
        contact: Any,
        now: datetime,
        closed: list[str],
    ) -> Job | None:
        """Turn a claimed contact into an attempt row (or a plan, or a final state).

        The final states given to contacts are appended to ``closed``.
        """
        contact_id = contact["id"]
        if strategy is None:
            await results.apply_decision(conn, contact_id, ENGINE_ERROR)
            closed.append(ENGINE_ERROR.state)
            return None
        phones = results.phones_of(contact)
        if contact["next_step"] is None:
            decision = first_action(strategy, phones, now)
            if isinstance(decision, Close) or decision.at > now:
                await results.apply_decision(conn, contact_id, decision)
                if isinstance(decision, Close):
                    closed.append(decision.state)
                return None
            step, slot_no, number = decision.step, decision.phone_slot, decision.number
            channel = "call" if isinstance(decision, Dial) else "sms"
        else:
            step, channel = contact["next_step"], contact["next_channel"]
            slot_no = contact["next_phone_slot"] or 1
            planned = phones[slot_no - 1] or phones[0]
            if planned is None:
                await results.apply_decision(
                    conn, contact_id, Close("not_connected", "failed", "$invalid_contact")
                )
                closed.append("not_connected")
                return None
            number = planned
        step_def = strategy.steps[step] if step < len(strategy.steps) else None
        ring = step_def.ring_timeout_s if step_def is not None and channel == "call" else 0
        # Compliance first: outside the contact's calling window the plan waits.
        zones = zones_for_contact(contact["timezone"], [number], slot.window.default_zone)
        allowed_at = next_allowed(slot.window, zones, now, timedelta(seconds=ring))
        if allowed_at != now:
            later = allowed_at or now + timedelta(days=HORIZON_DAYS)
            plan: Decision = (
                Dial(step, slot_no, number, later, ring)
                if channel == "call"
                else SendSms(step, slot_no, number, later, "")
            )
            await results.apply_decision(conn, contact_id, plan)
            return None
        if await conn.fetchval(query("is_do_not_call"), number, slot.id):
            await results.apply_decision(conn, contact_id, close_for("dnc_listed"))
            closed.append("dnc_listed")
            logger.info(
                "contact on a do-not-call list: not contacted",
                extra=_ids(slot.id, contact_id, action="dnc"),
            )
            return None
        if await conn.fetchval(query("contact_has_open_attempt"), contact_id):
            return None  # its open attempt's result will plan what comes next
        attempt_id = str(
            await conn.fetchval(
                query("insert_engine_attempt"),
                slot.id,
                contact_id,
                channel,
                slot_no,
                number,
                step,
                self.instance.id,
            )
        )
        await conn.execute(query("mark_contact_dialling"), contact_id)
        text = ""
        if channel == "sms":
            template = (step_def.text if step_def and step_def.text else None) or strategy.sms_text
            text = render_text(template or "", _params(contact))
        return Job(
            attempt_id,
            slot.id,
            contact_id,
            channel,
            number,
            step,
            slot_no,
            ring,
            text,
            contact["callback_agent"] if channel == "call" else None,
        )

    # --- one attempt ------------------------------------------------------------------
    def _spawn(
        self, coro: Awaitable[None], attempt_id: str | None, slot: CampaignSlot | None
    ) -> None:
        if attempt_id is not None:
            self._active.add(attempt_id)
        if slot is not None:
            slot.in_flight += 1
            self.metrics.set_in_flight(slot.id, slot.in_flight)

        async def runner() -> None:
            try:
                await coro
            finally:
                if attempt_id is not None:
                    self._active.discard(attempt_id)
                if slot is not None:
                    if slot.agents is not None and attempt_id is not None:
                        slot.agents.calls.discard(attempt_id)
                    slot.in_flight -= 1
                    self.metrics.set_in_flight(slot.id, slot.in_flight)

        task = asyncio.create_task(
            runner(), name=f"attempt-{attempt_id}" if attempt_id else "sms-reply"
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "attempt task %s failed: %r",
                task.get_name(),
                task.exception(),
                extra={
                    "action": "attempt",
                    "attempt_id": task.get_name().removeprefix("attempt-")
                    if task.get_name().startswith("attempt-")
                    else None,
                },
            )

    async def _run_job(self, slot: CampaignSlot, job: Job) -> None:
        if job.channel == "sms":
            await self._send_sms(job)
            return
        claimed = time.monotonic()
        if not await self._wait_for_rate(slot):
            # Stopping: a call not yet sent is not started; the contact is due again.
            await self._unclaim(job)
            return
        if time.monotonic() - claimed > PAUSE_RECHECK_S and not await self._still_running(job):
            # Paused while this call waited for its turn: pause means no new call.
            await self._unclaim(job)
            return
        trunk = slot.trunk or self.config.dialing.trunk
        sent_at: float | None = None
        answered_at: float | None = None

        async def on_sent() -> None:
            nonlocal sent_at
            sent_at = time.monotonic()
            self.metrics.call_originated(job.campaign_id, trunk)
            logger.debug(
                "call sent",
                extra={
                    **_ids(job.campaign_id, job.contact_id, action="originate"),
                    "attempt_id": job.attempt_id,
                },
            )
            await self._best_effort(lambda conn: store.mark_attempt_sent(conn, job.attempt_id))

        async def on_answered() -> None:
            nonlocal answered_at
            answered_at = time.monotonic()
            if sent_at is not None:
                self.metrics.call_answered(job.campaign_id, answered_at - sent_at)
            await self._best_effort(lambda conn: store.mark_attempt_answered(conn, job.attempt_id))

        dialplan = slot.dialplan or dialplan_for({}, self.config.dialing)
        if job.agent is not None:
            dialplan = callback_dialplan(dialplan, self.config.dialing)
        request = CallRequest(
            attempt_id=job.attempt_id,
            number=job.number,
            trunk=trunk,
            context=dialplan.context,
            extension=self.config.dialing.extension,
            ring_timeout_s=job.ring_timeout_s,
            caller_id=slot.caller_id or self.config.dialing.caller_id,
            variables=call_variables(job, dialplan),
            max_call_s=self.config.dialing.max_call_s,
            result_margin_s=self.config.dialing.result_margin_s,
        )
        try:
            result = await self.tracker.place_call(self.ami, request, on_sent, on_answered)
        except AmiDisconnected:
            if sent_at is None:
                await self._unclaim(job)
                return
            self._unresolved[job.attempt_id] = OpenAttempt(
                job.attempt_id, job.campaign_id, job.contact_id, "call", "sent"
            )
            self._reconcile_needed.set()
            return
        except AmiError as exc:
            await self._record_outcome(
                job.attempt_id, Outcome.DANGLING.value, "call", detail=str(exc)
            )
            return
        if answered_at is not None:
            self.metrics.call_ended(job.campaign_id, time.monotonic() - answered_at)
        await self._record_call(result)

    async def _still_running(self, job: Job) -> bool:
        try:
            async with asyncio.timeout(2.0), self.pool.acquire() as conn:
                return bool(await conn.fetchval(query("campaign_is_running"), job.campaign_id))
        except TRANSIENT_DB_ERRORS as exc:
            self._db_down(exc)
            return True  # the claim stands; the database decides again next time

    async def _wait_for_rate(self, slot: CampaignSlot) -> bool:
        """Wait for the campaign's rate to allow one more call; False if stopping."""
        # Checked and recorded with no await in between: a strict window.
        while not self._stop.is_set():
            wait = slot.limiter.wait_s(time.monotonic())
            if wait <= 0:
                slot.limiter.record(time.monotonic())
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
        return False

    async def _send_sms(self, job: Job) -> None:
        # An SMS already claimed is sent even when stopping: it is bounded by
        # sms.timeout_s, and its attempt row is written.
        result = await self.sms.send(job.number, job.text, attempt_id=job.attempt_id)
        outcome = "sent" if result.sent else "failed"
        self.metrics.sms_result(job.campaign_id, outcome)
        await self._record_outcome(job.attempt_id, outcome, "sms", detail=result.detail)

    async def _unclaim(self, job: Job) -> None:
        """The Originate never left: forget the attempt, the contact is due again."""

        async def undo(conn: Any) -> None:
            async with conn.transaction():
                if await conn.fetchval(query("delete_unsent_attempt"), job.attempt_id) is None:
                    return
                await results.apply_decision(
                    conn,
                    job.contact_id,
                    Dial(
                        job.step, job.phone_slot, job.number, datetime.now(UTC), job.ring_timeout_s
                    ),
                )

        await self._with_db(undo)

    # --- results -----------------------------------------------------------------------
    async def _record_call(self, result: CallResult) -> None:
        recorded = await self._with_db(
            lambda conn: results.record_call(conn, result, self.strategies)
        )
        self._after_record(recorded, "call")

    async def _record_outcome(
        self, attempt_id: str, outcome: str, channel: str, detail: str | None
    ) -> None:
        recorded = await self._with_db(
            lambda conn: results.record_outcome(
                conn, attempt_id, outcome, self.strategies, detail=detail
            )
        )
        self._after_record(recorded, channel)

    def _after_record(self, recorded: results.Recorded | None, channel: str) -> None:
        if recorded is None:
            return
        self.metrics.attempt_closed(recorded.campaign_id, channel, recorded.outcome)
        if recorded.outcome == Outcome.ABANDONED:
            self.metrics.call_abandoned(recorded.campaign_id)
        if isinstance(recorded.decision, Close):
            self.metrics.contact_closed(recorded.campaign_id, recorded.decision.state)
        elif recorded.decision is not None:
            self.metrics.retry_scheduled(recorded.campaign_id)
        logger.info(
            "attempt %s: %s",
            recorded.outcome,
            results.describe(recorded.decision),
            extra={
                **_ids(recorded.campaign_id, recorded.contact_id, action="result"),
                "attempt_id": recorded.attempt_id,
                "outcome": recorded.outcome,
            },
        )

    # --- reconciliation ----------------------------------------------------------------
    async def _reconcile(self) -> None:
        """Settle every open attempt nobody follows, against Asterisk's live channels."""
        assert self.instance.id is not None
        async with self.pool.acquire() as conn:
            adopted = await conn.fetch(query("adopt_orphaned_attempts"), self.instance.id)
            mine = await conn.fetch(query("open_attempts_of_instance"), self.instance.id)
        candidates = dict(self._unresolved)
        for row in [*adopted, *mine]:
            attempt_id = str(row["id"])
            if attempt_id not in self._active:
                candidates[attempt_id] = OpenAttempt(
                    attempt_id, row["campaign_id"], row["contact_id"], row["channel"], row["state"]
                )
        for attempt_id in candidates:
            self.tracker.watch(attempt_id)
        try:
            reply = await self.ami.send_action({"Action": "CoreShowChannels"})
        except (AmiError, TimeoutError):
            for attempt_id in candidates:
                self.tracker.unwatch(attempt_id)
            self._reconcile_needed.set()
            return
        live = {
            m.get("Uniqueid"): m.get("ChannelStateDesc")
            for m in reply
            if m.get("Event") == "CoreShowChannel"
        }
        # Answered calls we follow whose channel is gone (Asterisk restarted):
        # their Hangup will never come.
        for attempt_id in self._active:
            if attempt_id not in live:
                self.tracker.end_if_answered(attempt_id)
        if adopted:
            logger.warning(
                "taking over %d open attempts of stopped daemons",
                len(adopted),
                extra={
                    "action": "reconcile",
                    "instance_id": self.instance.id,
                    "attempt_ids": sorted(str(row["id"]) for row in adopted),
                },
            )
        for attempt in candidates.values():
            self._unresolved.pop(attempt.id, None)
            await self._settle(attempt, live)

    async def _settle(self, attempt: OpenAttempt, live: dict[Any, Any]) -> None:
        ended = self.tracker.hung_up(attempt.id)
        if ended is not None:
            self.tracker.unwatch(attempt.id)
            await self._record_call(ended)
            return
        if attempt.channel == "call" and attempt.id in live:
            answered = live[attempt.id] == "Up" or attempt.state == "answered"
            timeout = (
                self.config.dialing.max_call_s
                if answered
                else self.config.dialing.ring_timeout_s + self.config.dialing.result_margin_s
            )
            self._spawn(
                self._follow(attempt, answered, timeout),
                attempt.id,
                self._slots.get(attempt.campaign_id),
            )
            return
        self.tracker.unwatch(attempt.id)
        if attempt.state == "answered":
            now = datetime.now(UTC)
            await self._record_call(
                CallResult(attempt.id, Outcome.ANSWERED, "Success", None, None, None, None, now)
            )
        else:
            await self._record_outcome(
                attempt.id,
                Outcome.DANGLING.value,
                attempt.channel,
                detail="no result: the call was lost",
            )

    async def _follow(self, attempt: OpenAttempt, answered: bool, timeout: float) -> None:
        result = await self.tracker.follow(attempt.id, answered=answered, timeout_s=timeout)
        if result is None:
            await self._record_outcome(
                attempt.id, Outcome.DANGLING.value, "call", detail="no result in time"
            )
        else:
            await self._record_call(result)

    async def _complete_finished_campaigns(self) -> None:
        async with self.pool.acquire() as conn:
            for row in await store.running_campaigns(conn):
                slot = self._slots.get(row["id"])
                if slot is not None and slot.in_flight:
                    continue
                if await store.complete_campaign_if_done(conn, row["id"]):
                    logger.info(
                        "campaign completed", extra={"action": "campaign", "campaign_id": row["id"]}
                    )

    # --- AMI events --------------------------------------------------------------------
    def _ami_state_changed(self, state: AmiState) -> None:
        if state is AmiState.CONNECTED:
            self._reconcile_needed.set()

    def _handle_event(self, event: Event) -> None:
        if event.get("Event") != "UserEvent":
            return
        inbound = inbound_from_event(event)
        if inbound is None:
            return
        self._spawn(self._sms_reply(inbound), None, None)

    async def _sms_reply(self, inbound: InboundSms) -> None:
        reply = await self._with_db(
            lambda conn: results.sms_reply(
                conn, inbound.number, inbound.text, inbound.received_at, inbound.message_id
            )
        )
        if reply is None:
            return  # stopping
        if not reply.stored:
            # Every daemon gets the event; the one that stored it counts it.
            logger.info(
                "SMS reply already stored by another daemon",
                extra={
                    "action": "sms_in_duplicate",
                    "number": inbound.number,
                    "message_id": inbound.message_id,
                },
            )
            return
        self.metrics.sms_reply(matched=reply.contact_id is not None)
        logger.info(
            "SMS reply received",
            extra={"action": "sms_in", "contact_id": reply.contact_id, "number": inbound.number},
        )

    # --- database helpers ---------------------------------------------------------------
    async def _with_db(self, work: Callable[[Any], Awaitable[T]]) -> T | None:
        """Run ``work`` on a connection, retrying while PostgreSQL is away.

        A result in hand is never dropped because the database restarts; only a
        daemon stop gives up (the attempt then stays open for reconciliation).
        """
        delay = 0.2
        while True:
            try:
                async with self.pool.acquire() as conn:
                    value = await work(conn)
                self._db_back()
                return value
            except TRANSIENT_DB_ERRORS as exc:
                self._db_down(exc)
            if self._stop.is_set():
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, DB_RETRY_MAX_S)

    async def _best_effort(self, work: Callable[[Any], Awaitable[Any]]) -> None:
        # Progress marks (sent, answered) must never hold up a call.
        try:
            async with asyncio.timeout(2.0), self.pool.acquire() as conn:
                await work(conn)
        except TRANSIENT_DB_ERRORS as exc:
            self._db_down(exc)

    def _db_down(self, exc: BaseException) -> None:
        self.metrics.db_up.set(0)
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            logger.warning(
                "database unavailable, retrying: %s",
                str(exc) or type(exc).__name__,
                extra={"action": "database"},
            )

    def _db_back(self) -> None:
        self.metrics.db_up.set(1)
        if self._db_down_since is not None:
            logger.info(
                "database available again after %.1f s",
                time.monotonic() - self._db_down_since,
                extra={"action": "database"},
            )
            self._db_down_since = None


def one_call_per_agent(rows: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(claimed contacts to dial, those put back): an agent gets one personal
    callback per claim, the first due; the others wait for the next claim."""
    keep: list[Any] = []
    later: list[Any] = []
    agents: set[str] = set()
    for row in rows:
        agent = row["callback_agent"]
        if agent is None or agent not in agents:
            keep.append(row)
            if agent is not None:
                agents.add(agent)
        else:
            later.append(row)
    return keep, later


def call_variables(job: Job, dialplan: Dialplan) -> dict[str, str]:
    """The channel variables of a call's Originate."""
    variables = {
        "DIALER_ATTEMPT_ID": job.attempt_id,
        "DIALER_CAMPAIGN_ID": str(job.campaign_id),
        "DIALER_CONTACT_ID": str(job.contact_id),
        **dialplan.variables,
    }
    if job.agent is not None:
        # A personal callback: the dialplan connects it to its owner only.
        variables["DIALER_AGENT"] = f"PJSIP/{job.agent}"
    return variables


def campaign_window(raw: Any, campaign_zone: str) -> CallingWindow:
    """The campaign's window; its zone for unknown contacts defaults to the campaign's."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    data = dict(data) if data else dict(DEFAULT_WINDOW_HOURS)
    data.setdefault("timezone", campaign_zone)
    try:
        return parse_window(data)
    except CallingWindowError:
        # The API validates windows; a bad one stored anyway must not open the
        # campaign to any hour: fall back to the default hours.
        logger.error("invalid calling window %r: using the default", raw)
        return parse_window({**DEFAULT_WINDOW_HOURS, "timezone": "UTC"})


def _ids(campaign_id: int, contact_id: int, *, action: str) -> dict[str, Any]:
    return {"action": action, "campaign_id": campaign_id, "contact_id": contact_id}


def _params(contact: Any) -> dict[str, str | None]:
    params: dict[str, str | None] = {f"param{i}": contact[f"param{i}"] for i in range(1, 13)}
    params["external_id"] = contact["external_id"]
    return params
