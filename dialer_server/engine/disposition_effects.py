"""What an agent's disposition does to its contact: the mapping, and applying it.

A disposition names an entry of the campaign's status dictionary
(``campaigns/status_dictionary.py``); the entry's action says what the system
does with the contact, in the domain's terms (seed pages 000, 001, 003):

- ``success``, ``declined``, ``failed``: the contact closes ``connected`` with
  that status, the status detail being the entry's (default: its name);
- ``do_not_call``: closes ``dnc_listed``/failed/$do_not_call and the number
  goes on the campaign's do-not-call list;
- ``call_again``: due again after the entry's delay, at the same strategy
  step, within the strategy's caps (``strategy.redial``);
- ``follow_up_auto``: open/$follow_up_auto, due at ``callback_at``;
- ``personal_callback``: open/$follow_up_personal, due at ``callback_at`` and
  dialled only to its owner ``agent`` (``contacts.callback_agent``), when free.

The mapping (``effect``) is pure. ``apply_pending`` is its database shell, run
in the transaction that holds the attempt's contact locked: by the engine when
the call's result is recorded (``results.py``: a disposition set while the call
was up decides instead of the strategy's rule for ``answered``), and by
``campaigns/dispositions.py`` when a disposition is set after the call ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ..db.queries import queries_of
from ..errors import Conflict
from . import store, task_moves
from .strategy import Close, Decision, Dial, PastAttempt, Strategy, redial

query = queries_of(__name__)


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
        strategy = await store.campaign_strategy(conn, contact["campaign_id"])
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
    ended: task_moves.Ended | None = None
    if isinstance(decision, Close):
        # In a flow, the agent's verdict ends the call task and the flow goes on.
        ended = await task_moves.end_call_task(conn, contact["id"], decision, now)
    if isinstance(decision, Close) and ended is None:
        await conn.execute(
            query("disposition_close_contact"),
            contact["id"],
            decision.state,
            decision.status,
            decision.status_detail,
        )
    elif not isinstance(decision, Close):
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
        await store.add_do_not_call(
            conn,
            row["number"],
            campaign_id=contact["campaign_id"],
            reason=f"disposition {row['name']}" + (f" by {row['agent']}" if row["agent"] else ""),
        )
    await conn.execute(query("mark_disposition_applied"), row["attempt_id"], now)
    return decision


def entry_of(row: Any) -> Entry:
    action = DispositionAction(row["action"])
    return Entry(row["name"], action, row["status_detail"], row["delay_s"])
