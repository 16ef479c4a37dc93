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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..db.queries import queries_of
from ..telephony.originate import CallResult
from ..telephony.outcomes import Outcome
from . import disposition_effects, store, task_moves
from .strategy import Close, Decision, Dial, PastAttempt, SendSms, Strategy, next_action

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
    recorded = await record_calls(
        conn,
        [result],
        strategy_for,
        now,
        trunk_error_pause_after=trunk_error_pause_after,
        default_trunks={result.attempt_id: default_trunk},
    )
    return recorded[0]


async def record_calls(
    conn: Any,
    calls: Sequence[CallResult],
    strategy_for: StrategyLookup,
    now: datetime | None = None,
    *,
    trunk_error_pause_after: int = 0,
    default_trunks: Mapping[str, str] | None = None,
) -> list[Recorded | None]:
    """Record several calls' results in one transaction: each as ``record_call`` would.

    The results that arrive together (the scheduler's batches) share one transaction
    and a few statements, whatever their number: each attempt ends once, each result's
    decision and its contact's new state commit with it. Returns what each one did, in
    the order given (None: the attempt was already closed). A contact with a task
    flow, a disposition to apply, or two of its attempts in the batch goes through
    ``_advance``, one by one, in the same transaction. ``default_trunks``: the trunk
    of each call's PBX, for a trunk-error pause's reason.
    """
    if not calls:
        return []
    now = now or datetime.now(UTC)
    by_id: dict[str, Recorded | None] = {}
    made: dict[str, Recorded] = {}
    async with conn.transaction():
        rows = await conn.fetch(query("end_call_attempts"), *_result_columns(calls))
        outcomes = {call.attempt_id: call.outcome.value for call in calls}
        # A contact's last result in the batch decides (the others found it open, as
        # they would have one after the other).
        last_of: dict[int, str] = {row["ended_contact_id"]: row["ended_attempt_id"] for row in rows}
        decide: list[Any] = []
        for row in rows:
            attempt_id = row["ended_attempt_id"]
            recorded = Recorded(
                attempt_id,
                row["ended_campaign_id"],
                row["ended_contact_id"],
                outcomes[attempt_id],
                None,
            )
            by_id[attempt_id] = made[attempt_id] = recorded
            if row["id"] is None or row["closed_at"] is not None:
                continue  # gone, or closed meanwhile: the result is kept on the attempt
            if last_of[row["ended_contact_id"]] == attempt_id:
                decide.append(row)
        attempts = await _attempts_of(conn, [row["id"] for row in decide])
        closes: list[tuple[int, Close]] = []
        plans: list[tuple[int, Dial | SendSms]] = []
        for row in decide:
            attempt_id, contact_id = row["ended_attempt_id"], row["id"]
            own = attempts.get(contact_id, [])
            if any(a["state"] != "ended" for a in own):
                continue  # another attempt of this contact is open: its result decides
            if (
                row["in_flow"]
                or any(a["disposed"] for a in own)
                or len([a for a in own if a["id"] in outcomes]) > 1
            ):
                by_id[attempt_id] = await _advance(
                    conn, attempt_id, outcomes[attempt_id], strategy_for, now
                )
                continue
            strategy = await strategy_for.get(conn, row["ended_campaign_id"])
            decision: Decision
            if strategy is None:
                decision = Close("not_connected", "failed", "$error")
            else:
                decision = next_action(
                    strategy,
                    phones_of(row),
                    _history(own, row.get("run_started_at")),
                    now,
                    run_since=row.get("task_entered_at"),
                )
            if isinstance(decision, Close):
                closes.append((contact_id, decision))
            else:
                plans.append((contact_id, decision))
            by_id[attempt_id] = dataclasses.replace(made[attempt_id], decision=decision)
        if closes:
            await conn.execute(
                query("close_contacts"),
                [c for c, _ in closes],
                [d.state for _, d in closes],
                [d.status for _, d in closes],
                [d.status_detail for _, d in closes],
            )
        if plans:
            await conn.execute(
                query("plan_contacts"),
                [c for c, _ in plans],
                [d.at for _, d in plans],
                [d.step for _, d in plans],
                ["call" if isinstance(d, Dial) else "sms" for _, d in plans],
                [d.phone_slot for _, d in plans],
            )
        if trunk_error_pause_after > 0:
            for call in calls:
                done = by_id.get(call.attempt_id)
                if done is None or call.outcome is not Outcome.TRUNK_ERROR:
                    continue
                trunk = (default_trunks or {}).get(call.attempt_id, "")
                paused = await _pause_on_trunk_errors(
                    conn, done.campaign_id, trunk_error_pause_after, call, trunk
                )
                by_id[call.attempt_id] = dataclasses.replace(done, paused=paused)
    # The same attempt twice in a batch ends once: the second report changed nothing.
    answered: list[Recorded | None] = []
    for call in calls:
        answered.append(by_id.pop(call.attempt_id, None))
    return answered


def _result_columns(calls: Sequence[CallResult]) -> list[list[Any]]:
    """end_call_attempts' arrays: one column per field, one element per call."""
    return [
        [c.attempt_id for c in calls],
        [c.outcome.value for c in calls],
        [c.originate_response for c in calls],
        [c.originate_reason for c in calls],
        [c.hangup_cause for c in calls],
        [c.hangup_cause_text for c in calls],
        [c.ended_at for c in calls],
        [c.answered_at for c in calls],
        [c.sip_code for c in calls],
        [c.source for c in calls],
        [c.amd_status for c in calls],
        [c.ivr_digits for c in calls],
        [c.agent for c in calls],
        [c.agent_connected_at for c in calls],
        [None if c.agent_wait_s is None else round(c.agent_wait_s * 1000) for c in calls],
        [c.abandoned for c in calls],
        [c.abandon_reason for c in calls],
    ]


async def _attempts_of(conn: Any, contact_ids: Sequence[int]) -> dict[int, list[Any]]:
    """Every attempt of each contact, oldest first (contacts_attempts)."""
    found: dict[int, list[Any]] = {}
    if contact_ids:
        for row in await conn.fetch(query("contacts_attempts"), list(contact_ids)):
            found.setdefault(row["contact_id"], []).append(row)
    return found


def _history(attempts: Sequence[Any], since: datetime | None) -> list[PastAttempt]:
    """What the strategy sees of a contact's ended attempts (store.contact_history)."""
    return [
        PastAttempt(
            step=a["step"] if a["step"] is not None else 0,
            channel=a["channel"],
            phone_slot=a["phone_slot"],
            number=a["number"],
            outcome=a["outcome"],
            started_at=a["created_at"],
        )
        for a in attempts
        if a["state"] == "ended" and (since is None or a["created_at"] >= since)
    ]


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
