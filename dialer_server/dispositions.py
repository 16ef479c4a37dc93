"""Dispositions: the result an agent (or a CRM) sets for an answered call.

A disposition names an entry of the campaign's status dictionary
(``status_dictionary.py``); the entry's action says what the system does with
the contact, in the domain's terms (seed pages 000, 001, 003):

- ``success``, ``declined``, ``failed``: the contact closes ``connected`` with
  that status, the status detail being the entry's (default: its name);
- ``do_not_call``: closes ``dnc_listed``/failed/$do_not_call and the number
  goes on the campaign's do-not-call list;
- ``call_again``: due again after the entry's delay, at the same strategy
  step, within the strategy's caps (``strategy.redial``);
- ``follow_up_auto``: open/$follow_up_auto, due at ``callback_at``;
- ``personal_callback``: open/$follow_up_personal, due at ``callback_at`` and
  dialled only to its owner ``agent`` (``contacts.callback_agent``), when free.

An attempt takes one disposition. Set while the call is still up, it changes
the contact when the call's result is recorded (``results.py``), instead of the
strategy's rule for ``answered``; set after the call ended, at once. Either way
in one transaction with the attempt and contact rows locked.

The mapping (``effect``) and the request checks (``check_request``) are pure;
``set_disposition`` and ``apply_pending`` are the database shell.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from . import store
from .db import query
from .errors import Conflict, InvalidInput, NotFound
from .strategy import (
    Close,
    Decision,
    Dial,
    PastAttempt,
    Strategy,
    parse_strategy,
    redial,
)

logger = logging.getLogger(__name__)


class DispositionAction(StrEnum):
    CALL_AGAIN = "call_again"
    PERSONAL_CALLBACK = "personal_callback"
    FOLLOW_UP_AUTO = "follow_up_auto"
    DO_NOT_CALL = "do_not_call"
    SUCCESS = "success"
    DECLINED = "declined"
    FAILED = "failed"


ACTIONS: tuple[str, ...] = tuple(a.value for a in DispositionAction)
# Actions whose entry may name the contact's status_detail.
FINAL_ACTIONS = frozenset(
    {DispositionAction.SUCCESS, DispositionAction.DECLINED, DispositionAction.FAILED}
)
CALLBACK_ACTIONS = frozenset(
    {DispositionAction.PERSONAL_CALLBACK, DispositionAction.FOLLOW_UP_AUTO}
)
# Queue member names (agent01): what a PJSIP endpoint name may be.
AGENT_PATTERN = "^[A-Za-z0-9_.-]{1,80}$"
_AGENT = re.compile(AGENT_PATTERN.removesuffix("$") + r"\Z")
# A callback further out than this is a typo (a year instead of a month).
MAX_CALLBACK_AHEAD = timedelta(days=366)
MAX_NOTE = 2000


@dataclasses.dataclass(frozen=True)
class Entry:
    """A status dictionary entry, as the mapping needs it."""

    name: str
    action: DispositionAction
    status_detail: str | None = None
    delay_s: int = 0


@dataclasses.dataclass(frozen=True)
class Effect:
    """What a disposition does to its contact.

    ``decision``: a Close, or the plan (Dial/SendSms) the contact is due with,
    open with ``status_detail`` and owned by ``callback_agent`` (personal
    callbacks only). ``do_not_call``: the attempt's number goes on the
    campaign's do-not-call list.
    """

    decision: Decision
    status_detail: str = "$none"
    callback_agent: str | None = None
    do_not_call: bool = False


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


def effect(
    entry: Entry,
    *,
    attempt: PastAttempt,
    strategy: Strategy | None,
    phones: Sequence[str | None],
    history: Sequence[PastAttempt],
    agent: str | None,
    callback_at: datetime | None,
    now: datetime,
) -> Effect:
    """What ``entry`` set for ``attempt`` (answered, the contact's latest) does.

    ``history``: every ended attempt of the contact, ``attempt`` among them
    when it has ended. A plan is never due before ``now``; a callback never
    before ``callback_at``. Pure: the caller validated the request
    (``check_request``).
    """
    action = entry.action
    if action in FINAL_ACTIONS:
        return Effect(Close("connected", action.value, entry.status_detail or entry.name))
    if action is DispositionAction.DO_NOT_CALL:
        return Effect(Close("dnc_listed", "failed", "$do_not_call"), do_not_call=True)
    step = attempt.step
    if action is DispositionAction.CALL_AGAIN:
        at = now + timedelta(seconds=entry.delay_s)
        if strategy is None or not 0 <= step < len(strategy.steps):
            return Effect(_same_number(attempt, step, at, 0))
        ended = history if attempt in history else [*history, attempt]
        return Effect(redial(strategy, phones, ended, step, at, now))
    assert callback_at is not None, "check_request requires it"
    ring = 0
    if strategy is not None and 0 <= step < len(strategy.steps):
        ring = strategy.steps[step].ring_timeout_s
    plan = _same_number(attempt, step, max(callback_at, now), ring)
    if action is DispositionAction.PERSONAL_CALLBACK:
        return Effect(plan, "$follow_up_personal", agent)
    return Effect(plan, "$follow_up_auto")


def _same_number(attempt: PastAttempt, step: int, at: datetime, ring: int) -> Dial:
    # A callback goes to the number the person answered on.
    return Dial(step, attempt.phone_slot or 1, attempt.number, at, ring)


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
    contact = await conn.fetchrow(query("lock_contact"), attempt["contact_id"])
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
        await apply_pending(conn, str(attempt["id"]), dict(contact), None, now)
    disposition = await get_disposition(conn, str(attempt["id"]))
    contact_row = await conn.fetchrow(query("get_contact"), contact["id"])
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
    return disposition, dict(contact_row)


async def get_disposition(conn: Any, attempt_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(query("get_attempt_disposition"), attempt_id)
    if row is None:
        raise NotFound(f"attempt {attempt_id} has no disposition")
    return dict(row)


async def apply_pending(
    conn: Any,
    attempt_id: str,
    contact: dict[str, Any],
    strategy: Strategy | None,
    now: datetime,
) -> Decision | None:
    """Apply the attempt's disposition to its (locked) contact if not applied yet.

    Returns what it did to the contact, None when the attempt has no pending
    disposition. ``strategy``: the campaign's (None: looked up here).
    """
    row = await conn.fetchrow(query("pending_attempt_disposition"), attempt_id)
    if row is None:
        return None
    if contact["state"] == "cancelled":
        # Cancelled during the call: the cancel stands, the disposition is kept.
        return None
    if strategy is None:
        strategy = await _strategy_of(conn, contact["campaign_id"])
    rows = await store.contact_history(conn, contact["id"])
    history = [past for _, past in rows]
    attempt = next((past for id_, past in rows if id_ == str(row["attempt_id"])), None)
    if attempt is None:  # pragma: no cover - applied only once the call has ended
        raise Conflict("the call has not ended yet", code="call_in_progress")
    entry = entry_of(row)
    result = effect(
        entry,
        attempt=attempt,
        strategy=strategy,
        phones=[contact[f"phone{slot}"] or None for slot in range(1, 6)],
        history=history,
        agent=row["agent"],
        callback_at=row["callback_at"],
        now=now,
    )
    decision = result.decision
    if isinstance(decision, Close):
        await conn.execute(
            query("disposition_close_contact"),
            contact["id"],
            decision.state,
            decision.status,
            decision.status_detail,
        )
    else:
        await store.hold_campaign_open(conn, contact["campaign_id"])
        await conn.execute(
            query("disposition_reopen_contact"),
            contact["id"],
            result.status_detail,
            decision.at,
            decision.step,
            "call" if isinstance(decision, Dial) else "sms",
            decision.phone_slot,
            result.callback_agent,
        )
        # The engine may have completed the campaign before the agent decided.
        await conn.execute(query("resume_completed_campaign"), contact["campaign_id"])
    if result.do_not_call:
        await conn.execute(
            query("add_do_not_call"),
            contact["campaign_id"],
            row["number"],
            f"disposition {row['name']}" + (f" by {row['agent']}" if row["agent"] else ""),
        )
    await conn.execute(query("mark_disposition_applied"), row["attempt_id"], now)
    return decision


async def _strategy_of(conn: Any, campaign_id: int) -> Strategy | None:
    campaign = await store.get_campaign(conn, campaign_id)
    if campaign is None or campaign["strategy_id"] is None:
        return None
    row = await store.strategy_by_id(conn, campaign["strategy_id"])
    return parse_strategy(row["definition"]) if row is not None else None


def entry_of(row: Any) -> Entry:
    action = DispositionAction(row["action"])
    return Entry(row["name"], action, row["status_detail"], row["delay_s"])
