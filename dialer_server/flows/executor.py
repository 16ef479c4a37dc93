"""The task executor: runs the tasks of flows that are not calls.

Every daemon runs one (supervised, named ``tasks``). It leases due tasks the way
the scheduler leases due contacts, with one statement (``claim_due_tasks``: due
``task_due_at`` of running campaigns, ``FOR UPDATE SKIP LOCKED``, the due time
cleared), and writes in the same transaction a ``running`` row of the task log per
task, with this daemon's instance id. Then each task runs (a named task of its
own) and its end is recorded in one transaction: the log row ended once (``WHERE
state = 'running'``), and the contact's next step (``engine/task_moves.py``):
tried again after a backoff (a temporary failure, tries left), or moved on by the
flow's rules, or closed.

At least once, never lost: a daemon that dies (kill -9) leaves its runs
``running``; the advisory lock its instance held is gone, so any daemon (itself
restarted) marks them ``interrupted`` and makes their contacts due again, with the
same idempotency key (``task_key``): an email sent twice carries one Message-ID, a
webhook one Idempotency-Key. While PostgreSQL is away, a result in hand waits in
memory and is retried with backoff until it commits. Exports and new contacts are
written in the transaction that ends their task: exactly once.

A paused or stopped campaign runs no task: its due tasks wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from ..config import Config
from ..db.outage import TRANSIENT_ERRORS, Outage, with_db
from ..db.queries import queries_of
from ..engine import task_moves
from ..engine.flow import Flow, Task
from ..engine.instance import Instance
from ..observability.metrics import Metrics
from ..telephony.sms import SmsProvider, render_text
from ..webhooks import backoff_s
from . import exports, mail, webhook_calls

query = queries_of(__name__)

logger = logging.getLogger(__name__)

T = TypeVar("T")

TAKEOVER_INTERVAL_S = 5.0
EXPORT_SWEEP_INTERVAL_S = 10.0
EXPORT_SWEEP_BATCH = 50
# How long a stopping daemon lets its tasks in flight finish.
DRAIN_S = 15.0


@dataclasses.dataclass(frozen=True)
class Job:
    """A leased task: its log row is written, its work not done yet."""

    run_id: int
    contact: dict[str, Any]
    flow: Flow
    task: Task
    key: str
    try_: int

    @property
    def campaign_id(self) -> int:
        return int(self.contact["campaign_id"])


@dataclasses.dataclass(frozen=True)
class Result:
    """What a task's run gave: a status and detail (``open``: try again)."""

    status: str
    detail: str
    error: str | None = None


SUCCESS = Result("success", "$none")


def params_of(contact: dict[str, Any]) -> dict[str, str | None]:
    params: dict[str, str | None] = {f"param{i}": contact[f"param{i}"] for i in range(1, 13)}
    params["external_id"] = contact["external_id"]
    return params


class TaskExecutor:
    def __init__(
        self,
        *,
        pool: Any,
        config: Config,
        instance: Instance,
        metrics: Metrics,
        sms: SmsProvider,
        session: aiohttp.ClientSession,
        outage: Outage | None = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.instance = instance
        self.metrics = metrics
        self.sms = sms
        self.session = session
        self.outage = outage if outage is not None else Outage(metrics.db_up)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._random = random.Random()
        self._next_takeover = 0.0
        self._next_sweep = 0.0
        # Export files to write once their rows committed.
        self._dirty: set[tuple[int, str, date]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run due tasks until ``stop``; then let those in flight finish (bounded)."""
        self._stop = stop
        interval = self.config.flows.poll_interval_s
        try:
            while not stop.is_set():
                try:
                    if self.instance.locked.is_set():
                        await self._takeover()
                        await self._step()
                        await self._write_exports()
                    self.outage.back()
                except TRANSIENT_ERRORS as exc:
                    self.outage.down(exc, component="tasks")
                except Exception:
                    # A bug or a bad row must not stop every flow: log it, go on.
                    logger.exception("task executor step failed", extra={"action": "task"})
                    interval = max(interval, 1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                interval = self.config.flows.poll_interval_s
        finally:
            await self._drain()

    async def _drain(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=DRAIN_S)
            if pending:
                logger.warning(
                    "stopping: %d tasks still running are left to the next start",
                    len(pending),
                    extra={"action": "task"},
                )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)

    # --- leasing ----------------------------------------------------------------------
    async def _step(self) -> None:
        room = self.config.flows.batch_size - len(self._tasks)
        if room <= 0:
            return
        assert self.instance.id is not None
        jobs: list[Job] = []
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(query("claim_due_tasks"), room)
            for row in rows:
                contact = dict(row)
                flow = await task_moves.flow_by_id(conn, contact["flow_id"])
                task = flow.task(contact["task"]) if flow is not None else None
                if flow is None or task is None or task.type == "call":
                    # Not a task of its flow any more (a bad row): it ends here.
                    await conn.execute(query("drop_task"), contact["id"])
                    continue
                key = str(contact["task_key"])
                try_ = contact["task_tries"] + 1
                run_id = await conn.fetchval(
                    query("insert_run"),
                    contact["campaign_id"],
                    contact["id"],
                    task.name,
                    task.type,
                    contact["task_pass"],
                    try_,
                    key,
                    self.instance.id,
                )
                jobs.append(Job(run_id, contact, flow, task, key, try_))
        for job in jobs:
            self._spawn(job)

    def _spawn(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"task-run-{job.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "task run %s failed: %r",
                task.get_name(),
                task.exception(),
                extra={"action": "task"},
            )

    async def _takeover(self) -> None:
        """Runs whose daemon died: interrupted, their contacts due again (same key)."""
        if time.monotonic() < self._next_takeover:
            return
        self._next_takeover = time.monotonic() + TAKEOVER_INTERVAL_S
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query("interrupt_orphaned_runs"), self.instance.id)
        if rows:
            logger.warning(
                "taking over %d tasks whose daemon stopped: due again, same idempotency keys",
                len(rows),
                extra={"action": "task", "contact_ids": sorted(r["contact_id"] for r in rows)},
            )
            for row in rows:
                self.metrics.task_executed(row["campaign_id"], row["task"], "interrupted")

    # --- one task -----------------------------------------------------------------------
    async def _run(self, job: Job) -> None:
        started = time.monotonic()
        try:
            result = await self._execute(job)
        except Exception as exc:  # a bug in one task's run must not lose the contact
            logger.exception("task %s failed", job.task.name, extra=self._ids(job))
            result = Result("open", "$error", f"internal error: {exc!r}"[:300])
        if result.status == "open" and job.try_ >= job.task.max_tries:
            result = Result("failed", "$error", f"{result.error} (tried {job.try_} times)")
        recorded = await self._with_db(lambda conn: self._record(conn, job, result))
        if recorded is None:
            return  # stopping with PostgreSQL away: the run is taken over later
        status, moved_to, closed = recorded
        self.metrics.task_executed(job.campaign_id, job.task.name, status)
        self.metrics.task_duration.observe(time.monotonic() - started)
        for state in closed:
            self.metrics.contact_closed(job.campaign_id, state)
        logger.info(
            "task %s: %s%s",
            job.task.name,
            status,
            f" -> {moved_to}" if moved_to else "",
            extra={**self._ids(job), "status": status, "error": result.error},
        )

    async def _execute(self, job: Job) -> Result:
        """Do the task's work outside any transaction (exports and new contacts are
        written by ``_record``, in the transaction that ends the task)."""
        kind = job.task.type
        if kind == "email":
            return await self._email(job)
        if kind == "webhook":
            return await self._webhook(job)
        if kind == "sms":
            return await self._sms(job)
        return SUCCESS  # wait (its time is up), export, new_contact

    async def _email(self, job: Job) -> Result:
        to, subject, body = mail.render(job.task.options, params_of(job.contact))
        if not mail.valid_address(to):
            return Result(
                "failed", "$invalid_contact", f"no email address: {to!r} is not one"[:300]
            )
        smtp = self.config.smtp
        message = mail.build_message(
            key=job.key, sender=smtp.from_address, to=to, subject=subject, body=body
        )
        sent = await mail.send(smtp, message, self.config.flows.timeout_s)
        if sent.ok:
            return SUCCESS
        if sent.temporary:
            return Result("open", "$none", sent.error)
        return Result("failed", "$invalid_contact" if sent.bad_address else "$error", sent.error)

    async def _webhook(self, job: Job) -> Result:
        secret = self.config.webhooks.secret
        if not secret:
            return Result(
                "failed", "$error", "webhooks.secret is not set: webhook tasks cannot be signed"
            )
        async with self.pool.acquire() as conn:
            previous = await conn.fetchrow(query("previous_run"), job.contact["id"], job.run_id)
        data = webhook_calls.body(
            key=job.key,
            campaign={"id": job.campaign_id, "name": job.contact["campaign_name"]},
            task=job.task.name,
            pass_=job.contact["task_pass"],
            try_=job.try_,
            previous=dict(previous) if previous is not None else None,
            contact=job.contact,
            now=datetime.now(UTC),
        )
        called = await webhook_calls.call(
            self.session,
            str(job.task.options["url"]),
            data,
            key=job.key,
            secret=secret,
            timeout_s=self.config.flows.timeout_s,
        )
        if called.ok:
            return SUCCESS
        return Result("open" if called.temporary else "failed", "$error", called.error)

    async def _sms(self, job: Job) -> Result:
        slot = int(job.task.options.get("phone", 1))
        number = job.contact[f"phone{slot}"] or job.contact["phone1"]
        async with self.pool.acquire() as conn:
            listed = await conn.fetchval(query("sms_number_on_dnc"), number, job.campaign_id)
        if listed:
            return Result("failed", "$do_not_call", f"{number} is on a do-not-call list")
        text = render_text(str(job.task.options["text"]), params_of(job.contact))
        sent = await self.sms.send(number, text, attempt_id=job.key)
        if sent.sent:
            return SUCCESS
        return Result("failed", "$error", sent.detail[:300])

    async def _record(
        self, conn: Any, job: Job, result: Result
    ) -> tuple[str, str, tuple[str, ...]]:
        """One transaction: the run's end, the task's own writes, the contact's next step.

        (the status recorded, where the contact went, the final states given).
        """
        now = datetime.now(UTC)
        async with conn.transaction():
            contact = await task_moves.lock_contact(conn, job.contact["id"])
            current = (
                contact is not None
                and contact["closed_at"] is None
                and str(contact["task_key"]) == job.key
                and contact["task_due_at"] is None
            )
            if current and result.status != "open":
                result = await self._write(conn, job, result)
            ended = await conn.fetchval(
                query("end_run"), job.run_id, result.status, result.detail, result.error
            )
            if ended is None or not current or contact is None:
                # Taken over meanwhile (its key runs again), or the contact was moved,
                # cancelled or deleted: nothing more to do for this run.
                return result.status, "", ()
            if result.status == "open":
                delay = backoff_s(
                    job.try_,
                    min_s=self.config.flows.min_backoff_s,
                    max_s=self.config.flows.max_backoff_s,
                    jitter=self._random.random(),
                )
                await conn.execute(
                    query("retry_task"), contact["id"], job.try_, now + timedelta(seconds=delay)
                )
                return "open", "", ()
            moved = await task_moves.end_task(
                conn, contact, job.flow, job.task, result.status, result.detail, now
            )
            await conn.execute(query("note_move"), job.run_id, moved.moved_to or "")
            return result.status, moved.moved_to or "", moved.closed

    async def _write(self, conn: Any, job: Job, result: Result) -> Result:
        """The writes of exports and new contacts, in the transaction ending their task."""
        if job.task.type == "export":
            day, _ = await exports.add_row(
                conn,
                key=job.key,
                campaign_id=job.campaign_id,
                task=job.task.name,
                fmt=str(job.task.options["format"]),
                contact_id=job.contact["id"],
            )
            if self.config.flows.export_dir:
                self._dirty.add((job.campaign_id, job.task.name, day))
        elif job.task.type == "new_contact":
            name = str(job.task.options["campaign"])
            target = await conn.fetchval(query("campaign_by_name"), name)
            if target is None:
                return Result("failed", "$error", f"no campaign named {name!r}")
            created = await conn.fetchval(query("insert_new_contact"), job.contact["id"], target)
            if created is None:
                return Result(
                    "failed",
                    "$duplicate",
                    f"campaign {name!r} has a contact with external id "
                    f"{job.contact['external_id']!r} already",
                )
        return result

    async def _write_exports(self) -> None:
        folder = self.config.flows.export_dir
        if not folder:
            return
        dirty, self._dirty = self._dirty, set()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + EXPORT_SWEEP_INTERVAL_S
            async with self.pool.acquire() as conn:
                dirty.update(await exports.stale_files(conn, EXPORT_SWEEP_BATCH))
        for campaign_id, task, day in sorted(dirty):
            try:
                await exports.write_file(self.pool, folder, campaign_id, task, day)
            except OSError as exc:
                # The folder is the operator's: the rows are safe, the sweep tries again.
                logger.error(
                    "export file of task %s (%s) not written: %s",
                    task,
                    day,
                    exc,
                    extra={"action": "export", "campaign_id": campaign_id},
                )

    # --- helpers -------------------------------------------------------------------------
    async def _with_db(self, work: Callable[[Any], Awaitable[T]]) -> T | None:
        """Run ``work`` on a connection, retrying while PostgreSQL is away; None only
        when stopping."""
        return await with_db(
            self.pool, work, outage=self.outage, stop=self._stop, component="tasks"
        )

    @staticmethod
    def _ids(job: Job) -> dict[str, Any]:
        return {
            "action": "task",
            "campaign_id": job.campaign_id,
            "contact_id": job.contact["id"],
            "task": job.task.name,
            "task_run_id": job.run_id,
        }
