"""Setting the disposition of an answered call: the result an agent (or a CRM) gives it.

A disposition names an active entry of the campaign's status dictionary
(``status_dictionary.py``); what the entry's action does to the contact is the
engine's (``engine/disposition_effects.py``).

An attempt takes one disposition. Set while the call is still up, it changes
the contact when the call's result is recorded (``engine/results.py``), instead
of the strategy's rule for ``answered``; set after the call ended, at once.
Either way in one transaction with the attempt and contact rows locked.

The request checks (``check_request``) are pure; ``set_disposition`` is the
database shell.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from ..db.queries import queries_of
from ..engine import store
from ..engine.disposition_effects import (
    CALLBACK_ACTIONS,
    DispositionAction,
    Entry,
    apply_pending,
    entry_of,
)
from ..errors import Conflict, InvalidInput, NotFound

query = queries_of(__name__)

logger = logging.getLogger(__name__)


# Queue member names (agent01): what a PJSIP endpoint name may be.
AGENT_PATTERN = "^[A-Za-z0-9_.-]{1,80}$"
_AGENT = re.compile(AGENT_PATTERN.removesuffix("$") + r"\Z")
# A callback further out than this is a typo (a year instead of a month).
MAX_CALLBACK_AHEAD = timedelta(days=366)
MAX_NOTE = 2000


def check_request(
    entry: Entry, *, agent: str | None, callback_at: datetime | None, now: datetime
) -> None:
    """InvalidInput naming the field when the request does not fit the entry's action."""
    action = entry.action
    if agent is not None and not _AGENT.match(agent):
        raise _invalid("agent", "agent must be a queue member name (letters, digits, _ . -)")
    if action in CALLBACK_ACTIONS:
        if callback_at is None:
            raise _invalid("callback_at", f"callback_at is required for {action} ({entry.name})")
        if callback_at.tzinfo is None:
            raise _invalid("callback_at", "callback_at must carry a time zone offset")
        if callback_at <= now:
            raise _invalid("callback_at", "callback_at must be in the future")
        if callback_at > now + MAX_CALLBACK_AHEAD:
            raise _invalid("callback_at", "callback_at must be within a year")
    elif callback_at is not None:
        raise _invalid("callback_at", f"callback_at does not apply to {action} ({entry.name})")
    if action is DispositionAction.PERSONAL_CALLBACK and agent is None:
        raise _invalid("agent", f"agent is required for personal_callback ({entry.name})")


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details=[{"field": field, "message": "invalid"}])


# --- the database shell ---------------------------------------------------------------


async def set_disposition(
    conn: Any,
    attempt_id: str,
    *,
    status: str,
    agent: str | None,
    callback_at: datetime | None,
    note: str | None,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store the disposition of an answered call; (the disposition, the contact).

    Run it in a transaction. Applied at once when the call has ended, else when
    its result is recorded. NotFound: no such attempt. Conflict: not answered,
    already dispositioned, not the contact's latest attempt, contact cancelled.
    InvalidInput: the status is not an active entry of the campaign's
    dictionary, or the request does not fit its action.
    """
    attempt = await conn.fetchrow(query("lock_attempt"), attempt_id)
    if attempt is None:
        raise NotFound(f"attempt {attempt_id} not found")
    contact = await store.lock_contact(conn, attempt["contact_id"])
    assert contact is not None  # a foreign key
    if contact["campaign_id"] != attempt["campaign_id"]:
        raise Conflict("the attempt's contact is not in its campaign", code="wrong_campaign")
    answered = attempt["channel"] == "call" and (
        attempt["state"] == "answered" or attempt["outcome"] == "answered"
    )
    if not answered:
        raise Conflict(
            "only an answered call takes a disposition "
            f"(this attempt: {attempt['channel']}, {attempt['outcome'] or attempt['state']})",
            code="not_answered",
        )
    if await conn.fetchval(query("attempt_disposition_exists"), attempt_id):
        raise Conflict(
            "this attempt has a disposition already: one per attempt "
            "(reschedule or cancel the contact to change what happens next)",
            code="disposition_exists",
        )
    if await conn.fetchval(query("latest_attempt_of_contact"), contact["id"]) != attempt["id"]:
        raise Conflict(
            "the contact has a later attempt: only its latest attempt takes a disposition",
            code="not_latest_attempt",
        )
    if contact["state"] == "cancelled":
        raise Conflict("the contact was cancelled", code="contact_cancelled")
    row = await conn.fetchrow(query("campaign_disposition"), attempt["campaign_id"], status)
    if row is None:
        raise InvalidInput(
            f"status {status!r} is not in the campaign's status dictionary",
            details=[{"field": "status", "message": "unknown"}],
        )
    if not row["active"]:
        raise InvalidInput(
            f"status {status!r} is not active in this campaign",
            details=[{"field": "status", "message": "inactive"}],
        )
    entry = entry_of(row)
    check_request(entry, agent=agent, callback_at=callback_at, now=now)
    await conn.execute(
        query("insert_attempt_disposition"),
        attempt["id"],
        attempt["campaign_id"],
        contact["id"],
        row["id"],
        entry.name,
        entry.action.value,
        agent,
        callback_at,
        note,
        now,
    )
    if attempt["state"] == "ended":
        await apply_pending(conn, str(attempt["id"]), contact, None, now)
    disposition = await get_disposition(conn, str(attempt["id"]))
    contact_row = await store.get_contact(conn, contact["id"])
    assert contact_row is not None  # locked above
    logger.info(
        "disposition %s set",
        entry.name,
        extra={
            "action": "disposition",
            "campaign_id": attempt["campaign_id"],
            "contact_id": contact["id"],
            "attempt_id": str(attempt["id"]),
        },
    )
    return disposition, contact_row


async def get_disposition(conn: Any, attempt_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(query("get_attempt_disposition"), attempt_id)
    if row is None:
        raise NotFound(f"attempt {attempt_id} has no disposition")
    return dict(row)
