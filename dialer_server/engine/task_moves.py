"""A contact's moves through its campaign's flow, in the caller's transaction.

When a task ends for a contact (its call strategy closed it, an executor finished
an email, a supervisor set its status), ``end_task`` writes the end on the contact
and follows the flow's rule (``flow.route``): the contact enters the next task, or,
with no rule (or no pass left in the target), ends where it is, closed. Entering a
task starts a new pass with a fresh idempotency key (``task_key``): a call task
plans the strategy's first action within the caps, which count every attempt of
the contact (``strategy.rerun_action``; a contact whose caps are used up ends the
call task at once as retries_completed); any other task becomes due after the
rule's delay (plus a wait task's wait) in ``task_due_at``, where only the task
executor looks. Everything a move writes commits with the change that caused it.

A parsed flow is cached by its stored text (flows never change once stored): a
move reads the text, never parses it twice. A campaign without a flow is never touched here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..db.queries import queries_of
from . import store
from .flow import Flow, Move, Task, entry_delay_s, parse_flow, route
from .strategy import Close, Dial, rerun_action

query = queries_of(__name__)

logger = logging.getLogger(__name__)

# A chain of call tasks each ending at once (caps used up) is bounded by the pass
# limits; this bounds it whatever the data says.
MAX_MOVES = 100
_OPEN_STATES = ("pending", "sent_to_dialer")

# Parsed flows by their stored text: keyed by the text, not the id, so that a
# process using several databases (tests, tools) never mixes up their flows.
_flows: dict[str, Flow] = {}
MAX_CACHED_FLOWS = 256


async def flow_by_id(conn: Any, flow_id: int) -> Flow | None:
    """A stored flow, each definition parsed once per process."""
    definition = await conn.fetchval(query("flow_definition"), flow_id)
    if definition is None:
        return None
    flow = _flows.get(definition)
    if flow is None:
        if len(_flows) >= MAX_CACHED_FLOWS:
            _flows.clear()
        flow = parse_flow(json.loads(definition))
        _flows[definition] = flow
    return flow


async def campaign_flow(conn: Any, campaign_id: int) -> Flow | None:
    """The campaign's flow; None when it has none."""
    flow_id = await conn.fetchval(query("campaign_flow_id"), campaign_id)
    return None if flow_id is None else await flow_by_id(conn, flow_id)


@dataclasses.dataclass(frozen=True)
class Ended:
    """What ending a task did: where the contact went (None: it stayed, closed),
    and why it stayed when a rule was not followed."""

    moved_to: str | None
    reason: str | None = None
    # Final states given to contacts (for metrics), in order.
    closed: tuple[str, ...] = ()


def passes_of(contact: Mapping[str, Any], flow: Flow) -> dict[str, int]:
    """How many times the contact entered each task (the first task counts once
    from its import)."""
    raw = contact["task_passes"]
    passes: dict[str, int] = dict(json.loads(raw) if isinstance(raw, str) else raw or {})
    current = contact["task"] or flow.start.name
    passes.setdefault(current, contact["task_pass"])
    return passes


async def end_call_task(conn: Any, contact_id: int, decision: Close, now: datetime) -> Ended | None:
    """The call strategy closed the contact: end its call task and follow the flow.

    None when the contact's campaign has no flow (or the contact is not open in a
    call task): the caller closes it as it always did.
    """
    contact = await conn.fetchrow(query("lock_flow_contact"), contact_id)
    if contact is None or contact["flow_id"] is None or contact["closed_at"] is not None:
        return None
    flow = await flow_by_id(conn, contact["flow_id"])
    task = flow.task(contact["task"]) if flow is not None else None
    if flow is None or task is None or task.type != "call":
        return None
    await conn.execute(
        query("log_call_task"),
        contact["campaign_id"],
        contact_id,
        task.name,
        contact["task_pass"],
        contact["task_key"] or uuid.uuid4(),
        contact["task_entered_at"] or contact["created_at"],
        decision.status,
        decision.status_detail,
    )
    return await end_task(
        conn, dict(contact), flow, task, decision.status, decision.status_detail, now, decision
    )


async def end_task(
    conn: Any,
    contact: Mapping[str, Any],
    flow: Flow,
    task: Task,
    status: str,
    detail: str,
    now: datetime,
    close: Close | None = None,
    *,
    depth: int = 0,
) -> Ended:
    """``task`` ended for the (locked, open) ``contact`` with ``status``/``detail``:
    move it on by the flow's rule, or close it there.

    ``close``: a call task's final state (the contact keeps it as its state while it
    goes through the tasks after the call; a contact closed in a task that is not a
    call keeps its state, or becomes not_connected if it was never called).
    """
    passes = passes_of(contact, flow)
    state = close.state if close is not None else contact["state"]
    decision = route(flow, task.name, status, detail, passes)
    if isinstance(decision, Move) and depth < MAX_MOVES:
        moved = await enter_task(
            conn, contact, flow, decision.target, decision.delay_s, now, passes, state, depth
        )
        return dataclasses.replace(moved, moved_to=decision.target.name)
    reason = (
        getattr(decision, "reason", None) if not isinstance(decision, Move) else "too many moves"
    )
    if state in _OPEN_STATES:
        state = "not_connected"
    await conn.execute(query("close_in_task"), contact["id"], state, status, detail)
    if reason:
        logger.info(
            "contact ends in task %s: %s",
            task.name,
            reason,
            extra={"action": "flow", "contact_id": contact["id"], "task": task.name},
        )
    return Ended(None, reason, (state,))


async def enter_task(
    conn: Any,
    contact: Mapping[str, Any],
    flow: Flow,
    target: Task,
    delay_s: int,
    now: datetime,
    passes: dict[str, int] | None = None,
    state: str | None = None,
    depth: int = 0,
) -> Ended:
    """Put the (locked) contact into ``target`` as a new pass, due after ``delay_s``.

    Entering a call task plans the strategy's next run; one whose caps are used up
    ends at once (retries_completed) and the flow goes on from there.
    """
    passes = dict(passes if passes is not None else passes_of(contact, flow))
    passes[target.name] = passes.get(target.name, 0) + 1
    key = uuid.uuid4()
    entry = (
        contact["id"],
        target.name,
        key,
        passes[target.name],
        json.dumps(passes),
        state or contact["state"],
    )
    if target.type != "call":
        due = now + timedelta(seconds=entry_delay_s(target, delay_s))
        await conn.execute(query("enter_task"), *entry, due)
        return Ended(target.name)
    strategy = await store.campaign_strategy(conn, contact["campaign_id"])
    history = [past for _, past in await store.contact_history(conn, contact["id"])]
    phones = [contact[f"phone{slot}"] or None for slot in range(1, 6)]
    at = now + timedelta(seconds=delay_s)
    if strategy is None:
        plan: Any = Close("not_connected", "failed", "$error")
    else:
        plan = rerun_action(strategy, phones, history, at, now)
    if isinstance(plan, Close):
        await conn.execute(query("enter_call_task"), *entry, None, None, None, None)
        entered = await conn.fetchrow(query("lock_flow_contact"), contact["id"])
        await conn.execute(
            query("log_call_task"),
            contact["campaign_id"],
            contact["id"],
            target.name,
            passes[target.name],
            key,
            now,
            plan.status,
            plan.status_detail,
        )
        return await end_task(
            conn,
            dict(entered),
            flow,
            target,
            plan.status,
            plan.status_detail,
            now,
            plan,
            depth=depth + 1,
        )
    await conn.execute(
        query("enter_call_task"),
        *entry,
        plan.at,
        plan.step,
        "call" if isinstance(plan, Dial) else "sms",
        plan.phone_slot,
    )
    return Ended(target.name)


async def lock_contact(conn: Any, contact_id: int) -> dict[str, Any] | None:
    """The contact with its campaign's flow id, locked; None if there is none."""
    row = await conn.fetchrow(query("lock_flow_contact"), contact_id)
    return dict(row) if row is not None else None
