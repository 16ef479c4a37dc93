"""Manual moves: the contacts a filter selects, moved to a task or given a status.

One transaction (the API's, audited with it): the selected contacts are locked in
id order, then each one is moved. Contacts with a call or a task running now are
left out (counted as ``busy``): their result decides what comes next for them.

- ``to_task``: the contact enters that task as a new pass (a call task plans its
  strategy's next run; any other is due after ``delay_s``), closed contacts
  reopened. A manual move is deliberate: a task's ``max_passes`` does not stop it.
- ``status`` (with an optional ``status_detail``, default ``$none``): the contact
  ends its task with that status, and the flow's rules move it on (or it closes
  there), as if the task had ended so; ``open`` runs its task again, a new pass.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from ..campaigns import operations as campaigns
from ..db.queries import queries_of
from ..engine import store, task_moves
from ..errors import Conflict, InvalidInput
from ..states import STATUSES
from .selection import Filter

query = queries_of(__name__)

logger = logging.getLogger(__name__)

# One request moves at most this many contacts (one transaction holds their locks).
MAX_CONTACTS = 100_000


@dataclasses.dataclass(frozen=True)
class Moved:
    matched: int
    moved: int
    busy: int
    dry_run: bool
    closed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "moved": self.moved,
            "busy": self.busy,
            "dry_run": self.dry_run,
        }


async def move(
    conn: Any,
    campaign_id: int,
    selection: Filter,
    *,
    to_task: str | None = None,
    status: str | None = None,
    status_detail: str | None = None,
    delay_s: int = 0,
    dry_run: bool = False,
    who: str = "api",
) -> Moved:
    """Move the selected contacts (see the module docstring), in the caller's transaction."""
    await campaigns.get(conn, campaign_id)
    flow = await task_moves.campaign_flow(conn, campaign_id)
    if flow is None:
        raise Conflict(
            f"campaign {campaign_id} has no task flow: give it one (PATCH flow) first",
            code="no_flow",
        )
    if (to_task is None) == (status is None):
        raise InvalidInput(
            "give either to_task or status",
            details=[{"field": "to_task", "message": "one of to_task and status"}],
        )
    target = None
    if to_task is not None:
        target = flow.task(to_task)
        if target is None:
            known = ", ".join(t.name for t in flow.tasks)
            raise InvalidInput(
                f"to_task: {to_task!r} is not a task of flow {flow.name} (known: {known})",
                details=[{"field": "to_task", "message": "unknown task"}],
            )
    elif status not in STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(STATUSES)}",
            details=[{"field": "status", "message": "invalid"}],
        )
    if status_detail is not None and status is None:
        raise InvalidInput(
            "status_detail goes with status",
            details=[{"field": "status_detail", "message": "only with status"}],
        )
    rows = await conn.fetch(
        query("select_contacts"), campaign_id, *selection.args(flow.start.name), MAX_CONTACTS + 1
    )
    if len(rows) > MAX_CONTACTS:
        raise InvalidInput(
            f"the filter selects more than {MAX_CONTACTS} contacts: narrow it",
            code="too_many_contacts",
        )
    free = [r for r in rows if not r["busy"]]
    busy = len(rows) - len(free)
    if dry_run or not free:
        return Moved(len(rows), 0, busy, dry_run)
    await store.hold_campaign_open(conn, campaign_id)
    now = datetime.now(UTC)
    closed: list[str] = []
    for row in free:
        contact = await task_moves.lock_contact(conn, row["id"])
        assert contact is not None  # locked by the selection
        task = flow.task(contact["task"])
        if target is not None:
            ended = await task_moves.enter_task(conn, contact, flow, target, delay_s, now)
            closed.extend(ended.closed)
            continue
        assert status is not None and task is not None
        await conn.execute(
            query("log_manual_status"),
            campaign_id,
            contact["id"],
            task.name,
            task.type,
            contact["task_pass"],
            contact["task_key"] or uuid.uuid4(),
            status,
            status_detail or "$none",
            f"status set by {who}",
        )
        if status == "open":
            ended = await task_moves.enter_task(conn, contact, flow, task, delay_s, now)
        else:
            ended = await task_moves.end_task(
                conn, contact, flow, task, status, status_detail or "$none", now
            )
        closed.extend(ended.closed)
    logger.info(
        "manual move of %d contacts",
        len(free),
        extra={"action": "flow_move", "campaign_id": campaign_id, "to_task": to_task},
    )
    return Moved(len(rows), len(free), busy, False, tuple(closed))
