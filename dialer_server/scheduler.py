"""The campaign engine's loop: claim due contacts, dial them, record results.

PostgreSQL decides what is dialled. A contact is claimed and its attempt row
written in one transaction *before* the Originate goes out, so after any crash
the database knows a call may exist. Nothing is ever re-sent on a reconnect:
open attempts are reconciled with the channels Asterisk still has, and an
attempt whose fate cannot be known closes as dangling, never redialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from . import results, store
from .ami import AmiClient, AmiState, Event
from .config import Config
from .db import query
from .errors import AmiDisconnected, AmiError
from .instance import Instance
from .metrics import Metrics
from .originate import CallRequest, CallResult, CallTracker
from .outcomes import Outcome
from .pacing import RateLimiter, capacity
from .sms import SmsProvider, inbound_from_event, render_text
from .strategy import Close, Dial, Strategy, close_for, first_action

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
        ami.on_state_change(self._ami_state_changed)
        ami.subscribe(self._handle_event)

    # --- the loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._reconcile_needed.set()  # on start: take over what a previous life left open
        next_reconcile = 0.0
        next_completion = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.dialing.tick_s)
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """On stop: calls in flight are left to the next start's reconciliation."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    async def _tick(self) -> None:
        async with self.pool.acquire() as conn:
            campaigns = await store.running_campaigns(conn)
        running = set()
        for row in campaigns:
            slot = self._slot(row)
            running.add(slot.id)
            wanted = capacity(
                max_concurrent=slot.max_concurrent,
                in_flight=slot.in_flight,
                limiter=slot.limiter,
                now=time.monotonic(),
            )
            if wanted <= 0:
                continue
            for job in await self._claim(slot, wanted):
                self._spawn(self._run_job(slot, job), job.attempt_id, slot)
        for campaign_id in list(self._slots):
            if campaign_id not in running and self._slots[campaign_id].in_flight == 0:
                del self._slots[campaign_id]

    def _slot(self, row: dict[str, Any]) -> CampaignSlot:
        cps = float(row["max_calls_per_second"])
        slot = self._slots.get(row["id"])
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
        slot.max_concurrent = row["max_concurrent_calls"]
        slot.trunk, slot.caller_id = row["trunk"], row["caller_id"]
        return slot

    # --- claiming ----------------------------------------------------------------------
    async def _claim(self, slot: CampaignSlot, limit: int) -> list[Job]:
        now = datetime.now(UTC)
        jobs: list[Job] = []
        async with self.pool.acquire() as conn, conn.transaction():
            lines = await conn.fetchrow(query("lock_campaign_lines"), slot.id)
            if lines is None:
                return jobs  # paused or stopped since the tick began
            limit = min(limit, lines["max_concurrent_calls"] - lines["open_calls"])
            if limit <= 0:
                return jobs
            rows = await conn.fetch(query("claim_due_contacts"), slot.id, limit, now)
            if not rows:
                return jobs
            strategy = await self.strategies.get(conn, slot.id)
            for contact in rows:
                job = await self._prepare(conn, slot, strategy, contact, now)
                if job is not None:
                    jobs.append(job)
        return jobs

    async def _prepare(
        self,
        conn: Any,
        slot: CampaignSlot,
        strategy: Strategy | None,
        contact: Any,
        now: datetime,
    ) -> Job | None:
        """Turn a claimed contact into an attempt row (or a plan, or a final state)."""
        contact_id = contact["id"]
        if strategy is None:
            await results.apply_decision(conn, contact_id, ENGINE_ERROR)
            return None
        phones = results.phones_of(contact)
        if contact["next_step"] is None:
            decision = first_action(strategy, phones, now)
            if isinstance(decision, Close) or decision.at > now:
                await results.apply_decision(conn, contact_id, decision)
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
                return None
            number = planned
        if await conn.fetchval(query("is_do_not_call"), number, slot.id):
            await results.apply_decision(conn, contact_id, close_for("dnc_listed"))
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
        step_def = strategy.steps[step] if step < len(strategy.steps) else None
        ring = step_def.ring_timeout_s if step_def is not None else 30
        text = ""
        if channel == "sms":
            template = (step_def.text if step_def and step_def.text else None) or strategy.sms_text
            text = render_text(template or "", _params(contact))
        return Job(attempt_id, slot.id, contact_id, channel, number, step, slot_no, ring, text)

    # --- one attempt ------------------------------------------------------------------
    def _spawn(
        self, coro: Awaitable[None], attempt_id: str | None, slot: CampaignSlot | None
    ) -> None:
        if attempt_id is not None:
            self._active.add(attempt_id)
        if slot is not None:
            slot.in_flight += 1
            self.metrics.calls_in_flight.labels(campaign=str(slot.id)).set(slot.in_flight)

        async def runner() -> None:
            try:
                await coro
            finally:
                if attempt_id is not None:
                    self._active.discard(attempt_id)
                if slot is not None:
                    slot.in_flight -= 1
                    self.metrics.calls_in_flight.labels(campaign=str(slot.id)).set(slot.in_flight)

        task = asyncio.create_task(runner(), name=f"attempt-{attempt_id or 'sms-in'}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "attempt task %s failed: %r",
                task.get_name(),
                task.exception(),
                extra={"action": "attempt"},
            )

    async def _run_job(self, slot: CampaignSlot, job: Job) -> None:
        if job.channel == "sms":
            await self._send_sms(job)
            return
        await self._wait_for_rate(slot)
        sent = False

        async def on_sent() -> None:
            nonlocal sent
            sent = True
            self.metrics.calls_originated.labels(campaign=str(job.campaign_id)).inc()
            await self._best_effort(lambda conn: store.mark_attempt_sent(conn, job.attempt_id))

        async def on_answered() -> None:
            await self._best_effort(lambda conn: store.mark_attempt_answered(conn, job.attempt_id))

        request = CallRequest(
            attempt_id=job.attempt_id,
            number=job.number,
            trunk=slot.trunk or self.config.dialing.trunk,
            context=self.config.dialing.context,
            extension=self.config.dialing.extension,
            ring_timeout_s=job.ring_timeout_s,
            caller_id=slot.caller_id or self.config.dialing.caller_id,
            variables={
                "DIALER_ATTEMPT_ID": job.attempt_id,
                "DIALER_CAMPAIGN_ID": str(job.campaign_id),
                "DIALER_CONTACT_ID": str(job.contact_id),
            },
            max_call_s=self.config.dialing.max_call_s,
            result_margin_s=self.config.dialing.result_margin_s,
        )
        try:
            result = await self.tracker.place_call(self.ami, request, on_sent, on_answered)
        except AmiDisconnected:
            if not sent:
                await self._unclaim(job)
                return
            self._unresolved[job.attempt_id] = OpenAttempt(
                job.attempt_id, job.campaign_id, job.contact_id, "call", "sent"
            )
            self._reconcile_needed.set()
            return
        except AmiError as exc:
            await self._record_outcome(job.attempt_id, Outcome.DANGLING.value, detail=str(exc))
            return
        await self._record_call(result)

    async def _wait_for_rate(self, slot: CampaignSlot) -> None:
        # Checked and recorded with no await in between: a strict window.
        while True:
            wait = slot.limiter.wait_s(time.monotonic())
            if wait <= 0:
                slot.limiter.record(time.monotonic())
                return
            await asyncio.sleep(wait)

    async def _send_sms(self, job: Job) -> None:
        result = await self.sms.send(job.number, job.text, attempt_id=job.attempt_id)
        outcome = "sent" if result.sent else "failed"
        self.metrics.sms_sent.labels(campaign=str(job.campaign_id), result=outcome).inc()
        await self._record_outcome(job.attempt_id, outcome, detail=result.detail)

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
        self._after_record(recorded)

    async def _record_outcome(self, attempt_id: str, outcome: str, detail: str | None) -> None:
        recorded = await self._with_db(
            lambda conn: results.record_outcome(
                conn, attempt_id, outcome, self.strategies, detail=detail
            )
        )
        self._after_record(recorded)

    def _after_record(self, recorded: results.Recorded | None) -> None:
        if recorded is None:
            return
        self.metrics.attempt_outcomes.labels(outcome=recorded.outcome).inc()
        if isinstance(recorded.decision, Close):
            self.metrics.contacts_closed.labels(
                campaign=str(recorded.campaign_id), state=recorded.decision.state
            ).inc()
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
                extra={"action": "reconcile", "instance_id": self.instance.id},
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
                attempt.id, Outcome.DANGLING.value, detail="no result: the call was lost"
            )

    async def _follow(self, attempt: OpenAttempt, answered: bool, timeout: float) -> None:
        result = await self.tracker.follow(attempt.id, answered=answered, timeout_s=timeout)
        if result is None:
            await self._record_outcome(
                attempt.id, Outcome.DANGLING.value, detail="no result in time"
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
        self._spawn(self._sms_reply(inbound.number, inbound.text, inbound.received_at), None, None)

    async def _sms_reply(self, number: str, text: str, received_at: datetime) -> None:
        contact_id = await self._with_db(
            lambda conn: results.sms_reply(conn, number, text, received_at)
        )
        logger.info(
            "SMS reply received",
            extra={"action": "sms_in", "contact_id": contact_id, "number": number},
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
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            logger.warning(
                "database unavailable, retrying: %s",
                str(exc) or type(exc).__name__,
                extra={"action": "database"},
            )

    def _db_back(self) -> None:
        if self._db_down_since is not None:
            logger.info(
                "database available again after %.1f s",
                time.monotonic() - self._db_down_since,
                extra={"action": "database"},
            )
            self._db_down_since = None


def _ids(campaign_id: int, contact_id: int, *, action: str) -> dict[str, Any]:
    return {"action": action, "campaign_id": campaign_id, "contact_id": contact_id}


def _params(contact: Any) -> dict[str, str | None]:
    params: dict[str, str | None] = {f"param{i}": contact[f"param{i}"] for i in range(1, 13)}
    params["external_id"] = contact["external_id"]
    return params
