"""Recording what happened to an attempt, and what the contact does next.

A result, the strategy's decision and the contact's new state are written in
one transaction: after a crash either all of it happened or none of it did,
and an attempt is closed exactly once (a late or repeated report of the same
attempt changes nothing). In a campaign with a task flow, the strategy's close
ends the contact's call task instead, and the flow's move commits in the same
transaction (``task_moves``).

A trunk error (the carrier refused our call) is recorded like any result, and
in the same transaction the campaign pauses itself when its last N call
results (``dialing.trunk_error_pause_after``) were all trunk errors: the
pause, its reason and the ``campaign.trunk_errors`` webhook event commit
together, once (only a running campaign is paused).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from ..db.queries import queries_of
from ..telephony.originate import CallResult
from ..telephony.outcomes import Outcome
from . import answered_calls, disposition_effects, store, task_moves
from .strategy import Close, Decision, Dial, PastAttempt, Strategy, next_action

query = queries_of(__name__)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What recording a result did (for metrics and logs)."""

    attempt_id: str
    campaign_id: int
    contact_id: int
    outcome: str
    decision: Decision | None
    # Set when this result paused the campaign (trunk errors): why.
    paused: str | None = None


def phones_of(contact: Any) -> list[str | None]:
    return [contact[f"phone{slot}"] or None for slot in range(1, 6)]


async def apply_decision(
    conn: Any, contact_id: int, decision: Decision, now: datetime | None = None
) -> None:
    """Write a strategy decision on the contact (a plan, or its final state).

    In a campaign with a task flow, a final state ends the contact's call task
    instead, and the flow's rules say where it goes (``task_moves``).
    """
    if isinstance(decision, Close):
        ended = await task_moves.end_call_task(conn, contact_id, decision, now or datetime.now(UTC))
        if ended is not None:
            return
        await conn.execute(
            query("close_contact"),
            contact_id,
            decision.state,
            decision.status,
            decision.status_detail,
        )
        return
    channel = "call" if isinstance(decision, Dial) else "sms"
    await conn.execute(
        query("plan_contact"),
        contact_id,
        decision.at,
        decision.step,
        channel,
        decision.phone_slot,
    )


async def history(conn: Any, contact_id: int) -> list[PastAttempt]:
    return [past for _, past in await store.contact_history(conn, contact_id)]


async def record_call(
    conn: Any,
    result: CallResult,
    strategy_for: StrategyLookup,
    now: datetime | None = None,
    *,
    trunk_error_pause_after: int = 0,
    default_trunk: str = "",
) -> Recorded | None:
    """Close a call attempt with its result and move its contact on.

    Returns None when the attempt was already closed (nothing changed). A trunk
    error may pause the campaign (module docstring; 0 never does);
    ``default_trunk`` names the trunk of campaigns that have none of their own.
    """
    async with conn.transaction():
        # The dialplan's report first: ending the attempt fires its attempt.result
        # webhook, which reads amd_status and ivr_digits from the row.
        await answered_calls.record_report(conn, result)
        if not await store.record_attempt_result(conn, result):
            return None
        recorded = await _advance(conn, result.attempt_id, result.outcome.value, strategy_for, now)
        if result.outcome is Outcome.TRUNK_ERROR and trunk_error_pause_after > 0:
            paused = await _pause_on_trunk_errors(
                conn, recorded.campaign_id, trunk_error_pause_after, result, default_trunk
            )
            recorded = dataclasses.replace(recorded, paused=paused)
        return recorded


async def _pause_on_trunk_errors(
    conn: Any, campaign_id: int, limit: int, result: CallResult, default_trunk: str
) -> str | None:
    """Pause the campaign if its last ``limit`` call results were all trunk errors.

    Returns the reason when this call paused it (at most one result does: only
    a running campaign is paused).
    """
    if not await conn.fetchval(query("last_results_all_trunk_errors"), campaign_id, limit):
        return None
    trunk = await conn.fetchval(query("campaign_trunk"), campaign_id) or default_trunk
    code = f"SIP {result.sip_code}" if result.sip_code is not None else "no SIP status"
    reason = (
        f"trunk errors: the carrier refused the last {limit} calls on trunk {trunk} "
        f"({code}); resume the campaign once the trunk works"
    )
    if await conn.fetchval(query("pause_for_trunk_errors"), campaign_id, reason) is None:
        return None
    await conn.execute(
        query("trunk_errors_webhook"), campaign_id, trunk, limit, result.sip_code, reason
    )
    return reason


async def record_outcome(
    conn: Any,
    attempt_id: str,
    outcome: str,
    strategy_for: StrategyLookup,
    *,
    detail: str | None = None,
    now: datetime | None = None,
    source: str | None = None,
) -> Recorded | None:
    """Close an attempt with an outcome that is not a call report (SMS, dangling).

    ``source``: how a call's result was learned ("lost" for dangling), None for SMS.
    """
    now = now or datetime.now(UTC)
    async with conn.transaction():
        closed = await conn.fetchval(
            query("record_attempt_outcome"), attempt_id, outcome, now, detail, source
        )
        if closed is None:
            return None
        return await _advance(conn, attempt_id, outcome, strategy_for, now)


class StrategyLookup:
    """The strategy of each campaign, loaded once per strategy version."""

    def __init__(self) -> None:
        self._by_campaign: dict[int, Strategy] = {}

    async def get(self, conn: Any, campaign_id: int) -> Strategy | None:
        cached = self._by_campaign.get(campaign_id)
        if cached is not None:
            return cached
        strategy = await store.campaign_strategy(conn, campaign_id)
        if strategy is not None:
            self._by_campaign[campaign_id] = strategy
        return strategy

    def forget(self, campaign_id: int) -> None:
        """The campaign's strategy changed (API update)."""
        self._by_campaign.pop(campaign_id, None)


async def _advance(
    conn: Any,
    attempt_id: str,
    outcome: str,
    strategy_for: StrategyLookup,
    now: datetime | None,
) -> Recorded:
    now = now or datetime.now(UTC)
    attempt = await store.get_attempt(conn, attempt_id)
    assert attempt is not None
    contact = await store.lock_contact(conn, attempt["contact_id"])
    recorded = Recorded(attempt_id, attempt["campaign_id"], attempt["contact_id"], outcome, None)
    if contact is None or contact["closed_at"] is not None:
        # Cancelled or closed meanwhile (an SMS reply, the CRM): the result is
        # kept on the attempt, the contact stays as it is.
        return recorded
    if await store.contact_has_open_attempt(conn, contact["id"]):
        # Another attempt of this contact is still open: its result decides.
        return recorded
    strategy = await strategy_for.get(conn, attempt["campaign_id"])
    # An agent set the call's disposition while it was up: it decides, not the
    # strategy's rule for answered.
    disposed = await disposition_effects.apply_pending(conn, attempt_id, contact, strategy, now)
    if disposed is not None:
        return dataclasses.replace(recorded, decision=disposed)
    if strategy is None:
        decision: Decision = Close("not_connected", "failed", "$error")
    else:
        # In a flow, a call task entered again is a new run of the strategy: a
        # step's tries count from its start, the caps over every pass.
        decision = next_action(
            strategy,
            phones_of(contact),
            await history(conn, contact["id"]),
            now,
            run_since=contact.get("task_entered_at"),
        )
    await apply_decision(conn, contact["id"], decision, now)
    return dataclasses.replace(recorded, decision=decision)


def describe(decision: Decision | None) -> str:
    """A short text of a decision, for logs."""
    if decision is None:
        return "unchanged"
    if isinstance(decision, Close):
        return f"close {decision.state}/{decision.status}/{decision.status_detail}"
    kind = "dial" if isinstance(decision, Dial) else "sms"
    return f"{kind} step {decision.step} phone {decision.phone_slot} at {decision.at.isoformat()}"


@dataclasses.dataclass(frozen=True)
class SmsReply:
    """What :func:`sms_reply` did: ``stored`` is False when the message was stored
    already (another daemon got the same event); ``contact_id`` is the contact that
    was waiting for it, if any."""

    stored: bool
    contact_id: int | None


async def sms_reply(
    conn: Any, number: str, body: str, received_at: datetime, message_id: str | None = None
) -> SmsReply:
    """Store an inbound SMS; the contact waiting for it becomes sms_responded.

    ``message_id`` identifies the message (the SIP MESSAGE's Call-ID and CSeq): a
    message already stored under it is left alone, contact included. Without one
    (None) the reply is always stored.
    """
    async with conn.transaction():
        # Inserted first: a second daemon with the same message waits here for the
        # first one's commit, then inserts nothing and stops.
        inbound_id = await conn.fetchval(
            query("insert_sms_inbound"), number, body, received_at, message_id or None
        )
        if inbound_id is None:
            return SmsReply(stored=False, contact_id=None)
        contact_id = await conn.fetchval(query("match_sms_reply"), number)
        if contact_id is None:
            return SmsReply(stored=True, contact_id=None)
        await conn.execute(query("mark_sms_responded"), contact_id)
        await conn.execute(query("link_sms_inbound"), inbound_id, contact_id)
    return SmsReply(stored=True, contact_id=int(contact_id))
