"""The campaign engine's loop: claim due contacts, dial them, record results.

PostgreSQL decides what is dialled. A contact is claimed and its attempt row
written in one transaction *before* the Originate goes out, so after any crash
the database knows a call may exist (``claims.py``); the row is marked sent, with
the send time, before its Originate (by the claim itself for a call that goes out as
soon as it commits), so a row still ``created`` never left.
Nothing is ever re-sent on a reconnect: open attempts are reconciled with what
the PBX they were placed on knows, its live channels and the records its hangup
handler kept of the calls that ended (``telephony/pbx_results.py``). Only an
attempt whose call the PBX itself lost (or that was away too long to be asked)
closes as dangling, never redialled; one never sent is put back.

The scheduler owns the loop (a tick at a fixed cadence, or at once when agents
free up), each attempt's life from its claim to its recorded result, and
reconciliation (at start, after every AMI reconnect, and periodically, it takes
over the open attempts of daemons that died). Calls go to the PBXs of the pool
(``telephony/pbx_pool.py``): each claim places them on the campaign's PBXs that
are up, by free capacity (``placement.py``), and each attempt is reconciled
against the PBX it was placed on and no other: its channels, its records, over
its own AMI connection. The calls of a PBX that is away are settled when it
comes back, or without it once ``dialing.result_margin_s`` has passed (answered
if they were, else dangling). Whether each PBX can keep those records is
checked at each of its AMI logins. Like procrastinate's worker, it
issues no SQL itself: what a campaign may dial is decided by ``slots.py``
(limits, windows), ``agent_dialing.py`` (the agent modes) and ``claims.py``; the
statements live with ``store.py`` and ``results.py``.

A preview call dialled agent-first rings the agent's phone first (its own
channel, ``agent-<attempt id>``) and originates the customer's leg, the
attempt's call, only once the agent answered; the attempt row exists from the
claim on, as for every call, and a preview whose agent does not answer is put
back like a call that never left. When an agent takes a call this daemon
follows, it writes the attempt.connected event and, for a desk user with
``[desk] wrapup``, pauses them for wrap-up. While PostgreSQL is away
(``db/outage.py``) a result in hand waits in memory and is written once it is
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..config import Config
from ..db.listen import Listener
from ..db.outage import TRANSIENT_ERRORS, Outage, with_db
from ..errors import AmiDisconnected, AmiError
from ..observability.metrics import Metrics
from ..telephony import pbx_results, queue_members
from ..telephony.ami import AmiState, Event
from ..telephony.originate import CallRequest, CallResult, CallTracker, pbx_result, ring_agent
from ..telephony.outcomes import Outcome
from ..telephony.pbx_pool import Pbx, PbxPool
from ..telephony.pbx_results import PbxResult
from ..telephony.sms import InboundSms, SmsProvider, inbound_from_event
from . import claims, results, store
from .agent_dialing import AgentDialing, Roster
from .answered_calls import AnsweredCalls, Dialplan, callback_dialplan, dialplan_for
from .batches import Batcher
from .claims import Job
from .instance import Instance
from .pacing import capacity
from .pacing_locks import PacingLocks
from .slots import CampaignSlot, Slots
from .strategy import Close

logger = logging.getLogger(__name__)

T = TypeVar("T")

COMPLETION_CHECK_S = 1.0
# A call that waited this long for the rate limit checks its campaign was not paused.
PAUSE_RECHECK_S = 0.05
# A PBX record of an attempt our database does not know (its campaign deleted)
# is removed once this old; records of ended attempts at once. At most this
# many records are looked up per reconciliation.
STALE_RECORD_AGE = timedelta(hours=1)
STALE_RECORDS_PER_PASS = 500
# A record of an ended attempt younger than this is left to the attempt's own
# task, which removes it right after committing the result.
OWN_RECORD_GRACE = timedelta(minutes=1)
# How long a call may wait for its sent mark before its Originate. Normally a
# millisecond; a busy pool (hundreds of calls starting at once) can take
# seconds, and a call that waits goes out late rather than not at all.
MARK_SENT_TIMEOUT_S = 10.0
# How long a result (or an answered mark) waits for others to be written with, in one
# transaction: a few round trips for the batch instead of a dozen per call. No line
# waits for it (a line is free when its call hangs up); a batch goes at once when no
# call this daemon follows is still up. Nothing outside hears of a result before it
# committed.
RESULT_LINGER_S = 0.2
# Woken (agents free, lines free), the loop ticks early, but at most once per this.
EARLY_TICK_GAP_S = 0.05
# How often the loop checks whether other daemons share the database.
ALONE_CHECK_S = 2.0
# What a campaign's state change notifies (migration 0020).
CAMPAIGNS_CHANNEL = "dialer_campaigns"


@dataclasses.dataclass(frozen=True)
class OpenAttempt:
    id: str
    campaign_id: int
    contact_id: int
    channel: str
    state: str
    # The PBX it was placed on (the pool's first for attempts from before the pool).
    pbx: str
    # When it was written, or when this daemon lost sight of it.
    created_at: datetime


class Scheduler:
    def __init__(
        self,
        *,
        pool: Any,
        pbxs: PbxPool,
        tracker: CallTracker,
        sms: SmsProvider,
        config: Config,
        instance: Instance,
        metrics: Metrics,
        roster: Roster | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.pool = pool
        self.pbxs = pbxs
        self.tracker = tracker
        self.sms = sms
        self.config = config
        self.instance = instance
        self.metrics = metrics
        self.outage = outage if outage is not None else Outage(metrics.db_up)
        self.strategies = results.StrategyLookup()
        self.slots = Slots(config.dialing, metrics)
        # Agent modes: who is free, and the lock that makes this daemon their pacer.
        self.agents = AgentDialing(
            pool=pool,
            roster=roster,
            tracker=tracker,
            metrics=metrics,
            locks=PacingLocks(config.database.url, config.database.connect_timeout_s),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # The writes of many calls at once, made together (batches.py): the sent marks
        # of the calls that go out in one turn, answered marks and results.
        self._sent_marks: Batcher[tuple[str, float], bool] = Batcher(
            "sent-marks", self._write_sent_marks, fails_all=TRANSIENT_ERRORS
        )
        self._answered_marks: Batcher[tuple[str, datetime], None] = Batcher(
            "answered-marks",
            self._write_answered_marks,
            linger_s=RESULT_LINGER_S,
            fails_all=TRANSIENT_ERRORS,
        )
        self._results: Batcher[tuple[CallResult, str], results.Recorded | None] = Batcher(
            "results", self._write_results, linger_s=RESULT_LINGER_S
        )
        # Attempts being followed by a task of ours (claimed, dialling, adopted).
        self._active: set[str] = set()
        # Sent calls whose AMI link dropped before their result: reconcile them.
        self._unresolved: dict[str, OpenAttempt] = {}
        # The PBX of each call this daemon follows, or settles: its metrics, where
        # its record is read and removed, and which followed calls a PBX's channel
        # list and records speak for.
        self._pbx_of: dict[str, str] = {}
        # Attempts on a PBX no daemon has are away since this daemon started.
        self._started = datetime.now(UTC)
        # Calls taken over and followed to their end (_follow): their channel
        # existed when reconciliation found them. Each with the time from which
        # its PBX's absence may end it (its answer, or the end of its ring time).
        self._followed: dict[str, datetime] = {}
        # The PBXs to check once per AMI login: can they record our calls' ends?
        self._check_pbx_setup: set[str] = set(pbxs.names)
        self._reconcile_needed = asyncio.Event()
        # Campaigns whose last claim found fewer due contacts than it had room for (not
        # one held back by full lines, its own or its PBXs'): when their last call in
        # flight ends, they may be done, and are checked at the next tick rather than at
        # the next periodic check. Only those: the check wakes the loop, and a daemon
        # woken whenever its calls ended together would take every line back before
        # another daemon's tick (issue 12).
        self._running_dry: set[int] = set()
        self._completion_due = False
        self._stop = asyncio.Event()
        # Set when agents free up, or a call of a campaign with due contacts ended: the
        # loop ticks at once instead of at its cadence (a line is not left idle until the
        # next tick).
        self._wake = asyncio.Event()
        # How each attempt task gives its line back (``_spawn``): as soon as its call
        # hung up, while its result is being written.
        self._releases: dict[str, Callable[[], None]] = {}
        # Those attempts, until their results commit: open in the database, they hold
        # no line (claims.claim does not count them).
        self._hung_up: set[str] = set()
        # Whether no other daemon runs on this database (checked every ALONE_CHECK_S).
        # Only then does a line take its next call as soon as its call hangs up: with
        # others, the line goes back at the commit, to whichever daemon claims first,
        # so that every daemon gets its share of a campaign (the one whose call it was
        # would otherwise always be first).
        self._alone = False
        self._alone_checked_at = float("-inf")
        # The running campaigns' rows, and when the loop read them (_tick): again at once
        # when a campaign's state changed (a NOTIFY of migration 0020 wakes the loop).
        self._campaigns: list[dict[str, Any]] = []
        self._campaigns_read_at = float("-inf")
        self._campaign_changes = Listener(
            config.database.url,
            CAMPAIGNS_CHANNEL,
            self._campaign_changed,
            connect_timeout_s=config.database.connect_timeout_s,
        )
        self._listening: asyncio.Task[None] | None = None
        if roster is not None:
            roster.on_change.append(self._wake.set)
        pbxs.on_state_change(self._pbx_state_changed)
        pbxs.subscribe(self._handle_event)
        # AMD verdicts and IVR keys reach each call's result before its Hangup.
        answered = AnsweredCalls(tracker)
        answered.on_connected.append(self._agent_connected)
        pbxs.subscribe(answered.handle_event)

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
                ready = self.pbxs.any_up and self.instance.locked.is_set()
                self._keep_listening()
                try:
                    if ready and (self._reconcile_needed.is_set() or now >= next_reconcile):
                        self._reconcile_needed.clear()
                        await self._reconcile()
                        next_reconcile = now + self.config.dialing.reconcile_interval_s
                    if ready:
                        await self._tick()
                    asked_database = ready
                    if now >= next_completion or self._completion_due:
                        self._completion_due = False
                        await self._complete_finished_campaigns()
                        next_completion = now + COMPLETION_CHECK_S
                        asked_database = True
                    # Only a tick that asked PostgreSQL something may say it is back.
                    if asked_database:
                        self.outage.back()
                except TRANSIENT_ERRORS as exc:
                    self.outage.down(exc, component="engine")
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
                    # An early tick, not sooner than EARLY_TICK_GAP_S after the last one
                    # (the calls that end together free their lines together); the
                    # cadence starts from it.
                    await asyncio.sleep(max(0.0, now + EARLY_TICK_GAP_S - time.monotonic()))
                    due = time.monotonic()
                self._wake.clear()
        finally:
            if self._listening is not None:
                self._listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._listening
            await self._campaign_changes.close()
            await self._drain()
            await self.agents.close()

    def _keep_listening(self) -> None:
        """(Re)open the LISTEN session in a task of its own: a connect to an unreachable
        PostgreSQL must not hold up the loop."""
        if self._campaign_changes.listening:
            return
        if self._listening is None or self._listening.done():
            self._listening = asyncio.create_task(
                self._campaign_changes.keep(), name="campaigns-listen"
            )

    def _campaign_changed(self) -> None:
        """A campaign started, paused, resumed...: the next tick reads them again, now."""
        self._campaigns_read_at = float("-inf")
        self._wake.set()

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Until the next tick, or until stopped, or until woken (``_wake``)."""
        if seconds <= 0:
            await asyncio.sleep(0)  # late already: the loop's other work still runs first
            return
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
        for batcher in (self._sent_marks, self._answered_marks, self._results):
            await batcher.close()

    async def _tick(self) -> None:
        # The running campaigns are read at the tick's cadence, and at once when one's
        # state changed; an early tick (a line freed) within half a tick of the last read
        # uses it: each claim re-checks its campaign under its lock.
        now = time.monotonic()
        if now - self._campaigns_read_at >= self.config.dialing.tick_s / 2:
            async with self.pool.acquire() as conn:
                self._campaigns = await store.running_campaigns(conn)
                if now - self._alone_checked_at >= ALONE_CHECK_S:
                    self._alone = await self.instance.alone(conn)
                    self._alone_checked_at = now
            self._campaigns_read_at = now
        slots = self.slots.update(self._campaigns)
        for_agents = await self.agents.calls_wanted([s for s in slots if s.agents is not None])
        for slot in slots:
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
            jobs = await self._claim(slot, wanted, self._usable(slot))
            for job in jobs:
                if slot.agents is not None and job.channel == "call":
                    slot.agents.calls.add(job.attempt_id)
                self._spawn(self._run_job(slot, job), job.attempt_id, slot, pbx=job.pbx)
        self.agents.gauges()
        self.slots.forget_idle({slot.id for slot in slots})

    def _usable(self, slot: CampaignSlot) -> list[Pbx]:
        """The PBXs the campaign's calls may go to now: up, and the campaign's; for a
        campaign whose calls go to agents (agent modes, preview), the one their queue
        lives on."""
        usable = [p for p in self.pbxs.up if slot.pbxs is None or p.name in slot.pbxs]
        if slot.to_agents:
            home = self.pbxs.queue_home(slot.agents_queue)
            if home is not None:
                usable = [p for p in usable if p is home]
        return usable

    async def _claim(self, slot: CampaignSlot, limit: int, pbxs: list[Pbx]) -> list[Job]:
        assert self.instance.id is not None
        if not pbxs:
            return []
        # Personal callbacks ring agents of this queue: on the PBX it lives on.
        home = self.pbxs.queue_home(slot.agents_queue)
        async with self.pool.acquire() as conn:
            claim = await claims.claim(
                conn,
                slot,
                limit,
                now=datetime.now(UTC),
                free_agents=lambda: self.agents.callback_agents(slot),
                strategies=self.strategies,
                instance_id=self.instance.id,
                pbxs=[pbx.config for pbx in pbxs],
                callback_pbx=home.name if home is not None else None,
                hung_up=self._hung_up if self._alone else (),
            )
        # Counted once the transaction has committed.
        for state in claim.closed:
            self.metrics.contact_closed(slot.id, state)
        # Out of due contacts, not out of lines: a campaign whose lines are full gets no
        # completion check (and no head start on the lines) when its calls end together.
        if claim.dry:
            self._running_dry.add(slot.id)
        else:
            self._running_dry.discard(slot.id)
        return claim.jobs

    # --- one attempt ------------------------------------------------------------------
    def _spawn(
        self,
        coro: Awaitable[None],
        attempt_id: str | None,
        slot: CampaignSlot | None,
        name: str = "sms-reply",
        pbx: str | None = None,
    ) -> None:
        if attempt_id is not None:
            self._active.add(attempt_id)
            if pbx is not None:
                self._pbx_of[attempt_id] = pbx
        if slot is not None:
            self.slots.call_started(slot)
        released = False

        def release() -> None:
            """The call hung up (or never went out): its line takes the next call."""
            nonlocal released
            if released:
                return
            released = True
            if slot is not None:
                self.slots.call_ended(slot, attempt_id)
                if self._alone and slot.id not in self._running_dry:
                    self._wake.set()  # the tick claims the next due contact at once
            if len(self._hung_up) >= len(self._active):
                # No call of ours is still up: no result is coming to join the batch.
                self._results.flush_now()

        if attempt_id is not None:
            self._releases[attempt_id] = release

        async def runner() -> None:
            try:
                await coro
            finally:
                release()
                if attempt_id is not None:
                    self._releases.pop(attempt_id, None)
                    self._hung_up.discard(attempt_id)
                    self._active.discard(attempt_id)
                    # Recorded (or never sent): reconciliation sets it again if not.
                    self._pbx_of.pop(attempt_id, None)
                if slot is not None and slot.in_flight == 0 and slot.id in self._running_dry:
                    # Its last result is committed: the campaign may be done.
                    self._completion_due = True
                    self._wake.set()

        task = asyncio.create_task(runner(), name=f"attempt-{attempt_id}" if attempt_id else name)
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
        pbx = self.pbxs.get(job.pbx)
        assert pbx is not None, "the claim places every call on a PBX of the pool"
        trunk = slot.trunk or pbx.config.trunk
        sent_at: float | None = None
        answered_at: float | None = None

        async def on_sent() -> None:
            nonlocal sent_at
            sent_at = time.monotonic()
            self.metrics.call_originated(job.campaign_id, trunk)
            self.metrics.pbx_call_placed(pbx.name)
            if logger.isEnabledFor(logging.DEBUG):  # its fields are built per call
                logger.debug(
                    "call sent",
                    extra={
                        **_ids(job.campaign_id, job.contact_id, action="originate"),
                        "attempt_id": job.attempt_id,
                    },
                )

        async def on_answered() -> None:
            nonlocal answered_at
            answered_at = time.monotonic()
            if sent_at is not None:
                self.metrics.call_answered(job.campaign_id, answered_at - sent_at)
            # A progress mark, best effort (nothing waits for it): written with the
            # others of the moment.
            self._answered_marks.post((job.attempt_id, datetime.now(UTC)))

        dialplan = slot.dialplan or dialplan_for({}, self.config.dialing)
        if job.agent is not None:
            dialplan = callback_dialplan(dialplan, self.config.dialing)
        if job.agent_first:
            assert job.agent is not None
            agent_channel = await self._ring_agent(job, dialplan, pbx)
            if agent_channel is None:
                return  # the agent did not answer: the customer was never dialled
            dialplan = Dialplan(
                self.config.dialing.preview_context,
                {
                    **dialplan.variables,
                    "DIALER_AGENT_CHANNEL": agent_channel,
                    "DIALER_AGENT_NAME": job.agent,
                },
            )
        # Written before the customer's Originate (an agent-first preview's agent
        # leg is not the call), with the time it goes out: a row still `created`
        # is one whose call provably never left (reconciliation puts its contact
        # back), and sent_at is the send, never a later write. A call the claim wrote
        # sent goes out now (claims.py).
        if not job.sent and not await self._mark_sent(job):
            # Not placed: put back (no connection in time), or paused while it waited.
            await self._unclaim(job)
            return
        request = CallRequest(
            attempt_id=job.attempt_id,
            number=job.number,
            trunk=trunk,
            context=dialplan.context,
            extension=self.config.dialing.extension,
            ring_timeout_s=job.ring_timeout_s,
            caller_id=job.caller_id or slot.caller_id or self.config.dialing.caller_id,
            variables=call_variables(job, dialplan),
            max_call_s=self.config.dialing.max_call_s,
            result_margin_s=self.config.dialing.result_margin_s,
            call_end_context=self.config.dialing.call_end_context,
        )
        try:
            result = await self.tracker.place_call(pbx.ami, request, on_sent, on_answered)
        except AmiError as exc:
            if sent_at is None:
                # Never written to Asterisk: it did not happen.
                await self._unclaim(job)
                return
            # The link dropped, or Asterisk gave no verdict in time: the call may
            # still be up, or have ended. Reconciliation asks the PBX.
            logger.warning(
                "no result for a call in flight (%s): reconciling it with Asterisk",
                exc,
                extra={
                    **_ids(job.campaign_id, job.contact_id, action="originate"),
                    "attempt_id": job.attempt_id,
                },
            )
            self._unresolved[job.attempt_id] = OpenAttempt(
                job.attempt_id,
                job.campaign_id,
                job.contact_id,
                "call",
                "sent",
                pbx.name,
                datetime.now(UTC),
            )
            self._reconcile_needed.set()
            return
        if answered_at is not None:
            self.metrics.call_ended(job.campaign_id, time.monotonic() - answered_at)
        await self._record_call(result)

    async def _ring_agent(self, job: Job, dialplan: Dialplan, pbx: Pbx) -> str | None:
        """Agent-first preview: the agent's channel once they answered, else None
        (the attempt is then forgotten: no customer call was placed). The agent is
        rung on the PBX the customer's call goes to: that of the agents' queue."""
        assert job.agent is not None
        dialing = self.config.dialing
        try:
            channel = await ring_agent(
                pbx.ami,
                attempt_id=job.attempt_id,
                agent=job.agent,
                context=dialing.preview_agent_context,
                ring_timeout_s=dialing.preview_agent_ring_s,
                wait_s=job.ring_timeout_s + dialing.result_margin_s,
                result_margin_s=dialing.result_margin_s,
            )
        except AmiError as exc:
            logger.warning(
                "agent leg of a preview call failed: %s",
                exc,
                extra={"action": "preview", "attempt_id": job.attempt_id, "agent": job.agent},
            )
            channel = None
        if channel is None:
            logger.info(
                "agent %s did not answer the preview call: the customer is not dialled",
                job.agent,
                extra={"action": "preview", "attempt_id": job.attempt_id},
            )
            await self._unclaim(job)
        return channel

    def _agent_connected(self, attempt_id: str, agent: str) -> None:
        """An agent took a call we follow: note it and write attempt.connected (a task)."""
        # The agent took it on the call's PBX: a wrap-up pause is asked of that one.
        pbx = self.pbxs.get(self._pbx_of.get(attempt_id)) or self.pbxs.for_agent(agent)
        self._spawn(
            self._connected(attempt_id, agent, pbx), None, None, name=f"connected-{attempt_id}"
        )

    async def _connected(self, attempt_id: str, agent: str, pbx: Pbx | None) -> None:
        at = datetime.now(UTC)
        desk_user = await self._with_db(
            lambda conn: store.attempt_connected(conn, attempt_id, agent, at)
        )
        if not desk_user or not self.config.desk.wrapup:
            return
        # No next call for a desk agent until they set this call's disposition.
        try:
            if pbx is None:
                raise AmiDisconnected("no PBX of the pool is connected")
            await queue_members.pause(pbx.ami, agent, True, queue_members.WRAPUP_REASON)
        except (AmiError, TimeoutError) as exc:
            logger.warning(
                "wrap-up pause of %s failed: %s",
                agent,
                exc,
                extra={"action": "wrapup", "attempt_id": attempt_id, "agent": agent},
            )

    async def _mark_sent(self, job: Job) -> bool:
        """Mark the attempt sent, now, before its Originate; False: do not send it.

        The database must have it first. If it cannot be written in time, the
        call is not placed (the caller forgets the attempt once PostgreSQL
        answers: the mark may have landed after all, and the Originate
        certainly did not go out). A call that waited for its connection goes
        out only if its campaign still runs, as after a wait for the rate limit.
        """
        waiting_since = time.monotonic()
        try:
            async with asyncio.timeout(MARK_SENT_TIMEOUT_S):
                # With the marks of the other calls going out now: one statement.
                return bool(await self._sent_marks.submit((job.attempt_id, waiting_since)))
        except TRANSIENT_ERRORS as exc:  # a timeout included
            self.outage.down(exc, component="engine")
            logger.warning(
                "call not placed: its attempt could not be marked sent within %.0f s (%s)",
                MARK_SENT_TIMEOUT_S,
                type(exc).__name__,
                extra={
                    **_ids(job.campaign_id, job.contact_id, action="originate"),
                    "attempt_id": job.attempt_id,
                },
            )
            return False

    async def _write_sent_marks(self, marks: list[tuple[str, float]]) -> list[bool]:
        """Mark these attempts sent, now; for each, whether it may go out."""
        async with self.pool.acquire() as conn:
            # The time they go out: taken once a connection is ours, not before.
            sent_at = datetime.now(UTC)
            waited_since = time.monotonic() - PAUSE_RECHECK_S
            marked = await store.mark_attempts_sent(
                conn, [a for a, _ in marks], sent_at, [since < waited_since for _, since in marks]
            )
        return [attempt_id in marked for attempt_id, _ in marks]

    async def _write_answered_marks(self, marks: list[tuple[str, datetime]]) -> list[None]:
        """Best effort: marks PostgreSQL cannot take within 2 s are dropped (each call's
        result has its answer anyway), the outage noted."""
        try:
            async with asyncio.timeout(2.0), self.pool.acquire() as conn:
                await store.mark_attempts_answered(
                    conn, [a for a, _ in marks], [at for _, at in marks]
                )
        except TRANSIENT_ERRORS as exc:  # a timeout included
            self.outage.down(exc, component="engine")
        return [None] * len(marks)

    async def _write_results(
        self, batch: list[tuple[CallResult, str]]
    ) -> list[results.Recorded | None] | None:
        """Record the results that came together: one transaction, retried while
        PostgreSQL is away (None: not written, the daemon stops)."""
        calls = [result for result, _ in batch]
        trunks = {result.attempt_id: trunk for result, trunk in batch}
        return await self._with_db(
            lambda conn: results.record_calls(
                conn,
                calls,
                self.strategies,
                trunk_error_pause_after=self.config.dialing.trunk_error_pause_after,
                default_trunks=trunks,
            )
        )

    async def _still_running(self, job: Job) -> bool:
        try:
            async with asyncio.timeout(2.0), self.pool.acquire() as conn:
                return await store.campaign_is_running(conn, job.campaign_id)
        except TRANSIENT_ERRORS as exc:
            self.outage.down(exc, component="engine")
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
        await self._with_db(lambda conn: claims.unclaim(conn, job))

    # --- results -----------------------------------------------------------------------
    async def _record_call(self, result: CallResult) -> None:
        if result.source == "lost" and result.outcome is not Outcome.ANSWERED:
            # Neither the call nor its record exists: the PBX lost it.
            await self._record_outcome(
                result.attempt_id,
                Outcome.DANGLING.value,
                "call",
                detail="no result: the PBX has neither the call nor a record of its end",
            )
            return
        pbx_name = self._pbx_of.get(result.attempt_id)
        pbx = self.pbxs.get(pbx_name)
        # The trunk of the PBX the call went out on, for a trunk-error pause's reason.
        trunk = pbx.config.trunk if pbx is not None else self.config.dialing.trunk
        # Its line is free: the PBX ended the call (its result commits meanwhile). But a
        # trunk error's result may pause the campaign: no next call before it commits.
        # Only for a daemon alone on its database: with others, the line goes back at
        # the commit (``_alone``).
        release = self._releases.get(result.attempt_id)
        if self._alone and release is not None and result.outcome is not Outcome.TRUNK_ERROR:
            self._hung_up.add(result.attempt_id)
            release()
        recorded = await self._results.submit((result, trunk))
        if recorded is None and self._stop.is_set():
            return  # not written: the PBX's record stays for the next start
        self._pbx_of.pop(result.attempt_id, None)
        self._after_record(recorded, "call", result.source, pbx_name)
        self._hung_up.discard(result.attempt_id)  # committed: no longer open anywhere
        if self.config.dialing.call_end_context and pbx is not None:
            # Committed (or ended before): the PBX's copy is no longer needed.
            # Only the PBX the call was placed on has it.
            pbx_results.forget_soon(pbx.ami, result.attempt_id)

    async def _record_outcome(
        self, attempt_id: str, outcome: str, channel: str, detail: str | None
    ) -> None:
        source = "lost" if channel == "call" else None
        recorded = await self._with_db(
            lambda conn: results.record_outcome(
                conn, attempt_id, outcome, self.strategies, detail=detail, source=source
            )
        )
        self._after_record(recorded, channel, source, self._pbx_of.pop(attempt_id, None))

    def _after_record(
        self,
        recorded: results.Recorded | None,
        channel: str,
        source: str | None,
        pbx: str | None,
    ) -> None:
        if recorded is None:
            return
        if source is not None:
            self.metrics.result_learned(recorded.campaign_id, source)
        if recorded.outcome == Outcome.TRUNK_ERROR:
            slot = self.slots.get(recorded.campaign_id)
            placed_on = self.pbxs.get(pbx)
            trunk = (slot.trunk if slot is not None else None) or (
                placed_on.config.trunk if placed_on is not None else self.config.dialing.trunk
            )
            self.metrics.trunk_error(recorded.campaign_id, trunk)
        if recorded.paused is not None:
            self.metrics.campaign_auto_paused(recorded.campaign_id, "trunk_errors")
            logger.error(
                "campaign paused: %s",
                recorded.paused,
                extra={"action": "campaign", "campaign_id": recorded.campaign_id},
            )
        self.metrics.attempt_closed(recorded.campaign_id, channel, recorded.outcome)
        if pbx is not None and channel == "call":
            self.metrics.pbx_call_closed(pbx, recorded.outcome)
        if recorded.outcome == Outcome.ABANDONED:
            self.metrics.call_abandoned(recorded.campaign_id)
        if isinstance(recorded.decision, Close):
            self.metrics.contact_closed(recorded.campaign_id, recorded.decision.state)
        elif recorded.decision is not None:
            self.metrics.retry_scheduled(recorded.campaign_id)
        if logger.isEnabledFor(logging.INFO):  # its text and fields are built per call
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
        """Settle every open attempt nobody follows, each against the PBX it was placed on.

        A PBX that is up is asked what it knows (``_reconcile_on``): its live
        channels and the records our hangup handler kept there of the calls that
        ended. The attempts of one that is away, or that no daemon has, wait for
        it or for the margin (``_settle_away``).
        """
        assert self.instance.id is not None
        async with self.pool.acquire() as conn:
            adopted = (
                await store.adopt_orphaned_attempts(conn, self.instance.id, self.pbxs.names)
                if self.instance.may_adopt()
                else []
            )
            mine = await store.open_attempts_of_instance(conn, self.instance.id)
        candidates = dict(self._unresolved)
        for row in [*adopted, *mine]:
            attempt_id = str(row["id"])
            if attempt_id not in self._active:
                candidates[attempt_id] = OpenAttempt(
                    attempt_id,
                    row["campaign_id"],
                    row["contact_id"],
                    row["channel"],
                    row["state"],
                    # Calls from before the pool: the one PBX of that time is our first.
                    row["pbx"] or self.pbxs.first.name,
                    row["created_at"],
                )
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
        by_pbx: dict[str, dict[str, OpenAttempt]] = {}
        for attempt in candidates.values():
            self._pbx_of.setdefault(attempt.id, attempt.pbx)
            by_pbx.setdefault(attempt.pbx, {})[attempt.id] = attempt
        for pbx in self.pbxs:
            attempts = by_pbx.pop(pbx.name, {})
            if pbx.up:
                await self._reconcile_on(pbx, attempts)
            else:
                await self._settle_away(pbx.name, pbx.down_since, attempts)
        # Adopted because no live daemon has their PBX: nobody can ask it.
        for name, attempts in by_pbx.items():
            await self._settle_away(name, self._started, attempts)

    async def _reconcile_on(self, pbx: Pbx, candidates: dict[str, OpenAttempt]) -> None:
        """Settle the candidates placed on ``pbx``, and the calls we follow there,
        against what that PBX knows.

        It is asked twice, in this order, after the candidates' events are
        watched: its live channels (CoreShowChannels), then the records our
        hangup handler kept of calls that ended (pbx_results). A call missing
        from the first has its record in the second, unless the PBX itself lost
        it. Every decision is then taken at once, from what the attempt row,
        the channel list, the records and the events say, before anything is
        written: a Hangup arriving while results are being written cannot turn
        an answered call into a failed one.
        """
        for attempt_id in candidates:
            self.tracker.watch(attempt_id)
        try:
            if pbx.name in self._check_pbx_setup:
                await self._warn_missing_pbx_setup(pbx)
            # Only calls known to be up before the channel list is asked for may be
            # judged by their absence from it: one answered meanwhile is not in it.
            were_up = {
                a
                for a in self._active
                if self._pbx_of.get(a) == pbx.name
                and (a in self._followed or self.tracker.is_answered(a))
            }
            reply = await pbx.ami.send_action({"Action": "CoreShowChannels"})
            records = (
                await pbx_results.read_all(pbx.ami) if self.config.dialing.call_end_context else {}
            )
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
        # Calls we follow on this PBX whose Hangup we missed (the AMI link
        # dropped): a record proves the end, whenever it came; without one, a
        # call that was up before the list was asked for and is not on it was
        # lost with the PBX (it restarted).
        for attempt_id in list(self._active):
            if self._pbx_of.get(attempt_id) != pbx.name:
                continue
            if attempt_id in records:
                self.tracker.end_with_record(attempt_id, records[attempt_id])
            elif attempt_id in were_up and attempt_id not in live:
                self.tracker.end_lost(attempt_id)
        settled = [self._settle(attempt, live, records) for attempt in candidates.values()]
        for attempt in candidates.values():
            self._unresolved.pop(attempt.id, None)
        for settle in settled:
            await settle()
        await self._forget_stale_records(pbx, records, set(candidates))

    async def _settle_away(
        self, pbx: str, down_since: datetime, candidates: dict[str, OpenAttempt]
    ) -> None:
        """The calls of a PBX no one can ask now: settled once the margin has passed.

        The margin (``dialing.result_margin_s``) runs from when the PBX went away,
        and for a call not answered from the end of its ring time, whichever is
        later: a PBX back before then is asked (``_reconcile_on``), its records
        included. Past it, an answered call is recorded answered, the others
        dangling (``result_source`` lost). An attempt still ``created`` never
        reached the PBX: it is put back at once.
        """
        now = datetime.now(UTC)
        margin = timedelta(seconds=self.config.dialing.result_margin_s)
        # The calls this daemon follows there: their Hangup cannot come now.
        for attempt_id in list(self._active):
            if self._pbx_of.get(attempt_id) != pbx:
                continue
            if self.tracker.is_answered(attempt_id):
                since = down_since
            elif attempt_id in self._followed:
                since = max(down_since, self._followed[attempt_id])
            else:
                continue  # being placed: its Originate fails with the link (_unresolved)
            if now >= since + margin:
                self.tracker.end_lost(attempt_id)
        ring = timedelta(seconds=self.config.dialing.ring_timeout_s)
        for attempt in candidates.values():
            if attempt.channel == "call" and attempt.state == "created":
                # Marked sent before every Originate: this one never went out.
                self._unresolved.pop(attempt.id, None)
                await self._put_back(attempt)
                continue
            answered = attempt.state == "answered"
            rung_out = attempt.created_at if answered else attempt.created_at + ring
            if now < max(down_since, rung_out) + margin:
                continue  # found again at the next reconciliation
            self._unresolved.pop(attempt.id, None)
            if answered:
                await self._record_call(self.tracker.lost_answered(attempt.id))
            else:
                await self._record_outcome(
                    attempt.id,
                    Outcome.DANGLING.value,
                    attempt.channel,
                    detail=f"no result: PBX {pbx} was away",
                )

    def _settle(
        self, attempt: OpenAttempt, live: dict[Any, Any], records: dict[str, PbxResult]
    ) -> Callable[[], Awaitable[None]]:
        """Decide what an open attempt nobody follows is, now; what to write, later.

        The decision takes no await, so every candidate of a PBX is judged on the
        same view of it.
        """
        answered = attempt.state == "answered" or live.get(attempt.id) == "Up"
        record = records.get(attempt.id)
        if record is not None:
            # The PBX saw the call end: its record is the whole truth.
            self.tracker.unwatch(attempt.id)
            return lambda: self._record_call(pbx_result(record, answered=answered))
        ended = self.tracker.hung_up(attempt.id, answered=answered)
        if ended is not None:
            self.tracker.unwatch(attempt.id)
            return lambda: self._record_call(ended)
        if attempt.channel == "call" and attempt.id in live:
            slot = self.slots.get(attempt.campaign_id)
            self._spawn(self._follow(attempt, answered), attempt.id, slot, pbx=attempt.pbx)
            return _nothing
        self.tracker.unwatch(attempt.id)
        if attempt.channel == "call" and attempt.state == "created":
            # Marked sent before every Originate: this one never went out.
            return lambda: self._put_back(attempt)
        if attempt.state == "answered":
            return lambda: self._record_call(self.tracker.lost_answered(attempt.id))
        return lambda: self._record_outcome(
            attempt.id,
            Outcome.DANGLING.value,
            attempt.channel,
            detail="no result: the PBX has neither the call nor a record of its end",
        )

    async def _follow(self, attempt: OpenAttempt, answered: bool) -> None:
        """Follow a call taken over (or cut off from us) to its end, and record it.

        Bounded by the longest a call may last; a call whose channel disappears
        without a Hangup is ended by the next reconciliation (its record, or lost),
        and one whose PBX goes away once the margin has passed (``_settle_away``).
        """
        # From when its PBX's absence may end it: at once if answered, else once
        # it would have rung out.
        ring = timedelta(seconds=0 if answered else self.config.dialing.ring_timeout_s)
        self._followed[attempt.id] = attempt.created_at + ring
        try:
            timeout = self.config.dialing.max_call_s + self.config.dialing.result_margin_s
            result = await self.tracker.follow(attempt.id, answered=answered, timeout_s=timeout)
        finally:
            self._followed.pop(attempt.id, None)
        if result is None:
            await self._record_outcome(
                attempt.id, Outcome.DANGLING.value, "call", detail="no result in time"
            )
            return
        pbx = self.pbxs.get(attempt.pbx)
        if result.source == "live" and self.config.dialing.call_end_context and pbx is not None:
            # The call began under a daemon that is gone: what our dialplan
            # reported before we watched it (AMD, IVR, the agent) is in the
            # record, on the PBX the call was placed on.
            with contextlib.suppress(AmiError, TimeoutError):
                record = await pbx_results.read(pbx.ami, attempt.id)
                if record is not None:
                    result = pbx_result(record, answered=result.answered_at is not None)
        await self._record_call(result)

    async def _put_back(self, attempt: OpenAttempt) -> None:
        """An attempt whose Originate never went out: forgotten, its contact due again."""
        put_back = await self._with_db(lambda conn: claims.put_back(conn, attempt.id))
        self._pbx_of.pop(attempt.id, None)
        if put_back:
            logger.info(
                "attempt never sent: its contact is due again",
                extra={
                    **_ids(attempt.campaign_id, attempt.contact_id, action="reconcile"),
                    "attempt_id": attempt.id,
                    "pbx": attempt.pbx,
                },
            )

    async def _warn_missing_pbx_setup(self, pbx: Pbx) -> None:
        """Once per AMI login of each PBX: say so if it cannot record our calls' ends."""
        self._check_pbx_setup.discard(pbx.name)
        context = self.config.dialing.call_end_context
        if not context:
            logger.warning(
                "dialing.call_end_context is empty: calls carry no hangup handler, and a "
                "call whose end no daemon sees (a crash, a restart) closes as dangling",
                extra={"action": "pbx_results", "pbx": pbx.name},
            )
            return
        missing = await pbx_results.missing_setup(pbx.ami, context)
        if missing:
            logger.warning(
                "PBX %s lacks %s: calls whose end no daemon sees close as dangling, and a "
                "603 Decline cannot be told from a refused trunk on Asterisk before 22.7 "
                "(see docs/telephony.md, Asterisk set-up)",
                pbx.name,
                " and ".join(missing),
                extra={"action": "pbx_results", "pbx": pbx.name, "missing": missing},
            )

    async def _forget_stale_records(
        self, pbx: Pbx, records: dict[str, PbxResult], handled: set[str]
    ) -> None:
        """Remove from ``pbx`` the records of calls already recorded whose removal
        was missed.

        A record is removed once its attempt has ended in our database (and a
        minute went by: its own task removes it at once), or has no row there
        (its campaign was deleted) and ended an hour ago: never the record of a
        call someone may still need.
        """
        stale = [a for a in records if a not in handled and a not in self._active]
        if not stale:
            return
        async with self.pool.acquire() as conn:
            states = await store.attempt_states(conn, stale[:STALE_RECORDS_PER_PASS])
        now = datetime.now(UTC)
        for attempt_id in stale[:STALE_RECORDS_PER_PASS]:
            state = states.get(attempt_id)
            ended_at = records[attempt_id].ended_at or now
            if (state == "ended" and ended_at < now - OWN_RECORD_GRACE) or (
                state is None and ended_at < now - STALE_RECORD_AGE
            ):
                await pbx_results.forget(pbx.ami, attempt_id)

    async def _complete_finished_campaigns(self) -> None:
        async with self.pool.acquire() as conn:
            for row in await store.running_campaigns(conn):
                slot = self.slots.get(row["id"])
                if slot is not None and slot.in_flight:
                    continue
                if await store.complete_campaign_if_done(conn, row["id"]):
                    logger.info(
                        "campaign completed", extra={"action": "campaign", "campaign_id": row["id"]}
                    )

    # --- AMI events --------------------------------------------------------------------
    def _pbx_state_changed(self, pbx: Pbx, state: AmiState) -> None:
        if state is AmiState.CONNECTED:
            self._check_pbx_setup.add(pbx.name)
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
        return await with_db(
            self.pool, work, outage=self.outage, stop=self._stop, component="engine"
        )


async def _nothing() -> None:
    return None


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


def _ids(campaign_id: int, contact_id: int, *, action: str) -> dict[str, Any]:
    return {"action": action, "campaign_id": campaign_id, "contact_id": contact_id}
