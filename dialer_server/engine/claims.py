"""Claiming due contacts: one transaction turns each into an attempt row, a plan or a final state.

A claim takes the due contacts of one running campaign with one statement
(``claim_due_contacts``: ``FOR UPDATE SKIP LOCKED`` over the partial index on the
due time), so daemons sharing a database never take the same contact. It locks them
without writing them, and in the same transaction decides what each one is for, and
writes it once:

- an attempt row, written *before* its Originate goes out: after any crash the
  database knows a call may exist (the caller dials it once the claim has
  committed, and never sends it twice). A call to no particular agent is written
  ``sent``: its Originate follows the commit with nothing in between. A call to
  one agent (a personal callback, a preview) or an SMS is written ``created`` and
  marked sent right before it goes out; ``put_back`` returns one its daemon never
  sent;
- a later plan, when the contact's calling window is closed now;
- a final state: a number on a do-not-call list, a campaign without a strategy,
  a plan whose phone slot is empty;
- nothing due (``unplan_contact``) while an attempt of it is still open: its result
  plans what comes next. A contact put back (its PBX full, its agent already given a
  callback this claim) is not written at all: due as it was.

The claim reads once what every contact's decision needs (the caller-ID pool, which
contacts still have an open attempt, which numbers a do-not-call list holds), and writes
the attempt rows of all its calls and marks their contacts dialling with one statement
(``_write_attempts``): a claim costs a few round trips, not a few per contact.

A call's caller ID is chosen right before its attempt row (``caller_ids.choose``: the
campaign's pool, if it has one) and recorded on it; a pool whose numbers all placed
their daily cap plans the contact for the campaign's next day.

The claim first locks the campaign row and re-reads its state and line limit: a
pause that has returned stops every claim after it, and ``max_concurrent_calls``
holds across all daemons (their open calls are counted in the same transaction).
A line is held from the attempt row until its call hangs up: the calls the claiming
daemon saw hang up, whose results it is still writing, are not counted when the
caller names them (the scheduler does while no other daemon shares the database), so
a line takes its next call without waiting for the last one's commit. Those of other
daemons count until their results commit: the count is never below the lines the PBX
really uses, at worst above it for a moment. Then it locks the PBXs it may place
calls on (``lock_pbx_lines``, a transaction lock per PBX) and counts their open calls
the same way, so a PBX's ``max_channels`` holds across all daemons and campaigns: no
more contacts are leased than the PBXs have room for, and each call's attempt row names
the PBX ``placement.py`` chose (its limit and weight), before its Originate. PBXs
without a limit need no lock.
A personal callback, and a preview contact its agent called (or whose preview
timeout passed), is claimed only while its agent is free, one per agent per
claim (``one_call_per_agent``), and dialled to that agent, on the PBX of the
agents' queue (``callback_pbx``). A preview campaign claims nothing else: its
contacts wait to be shown to an agent on the desk.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import PbxConfig
from ..db.queries import queries_of
from ..telephony.sms import render_text
from . import caller_ids, results, store
from .calling_window import HORIZON_DAYS, next_allowed, zones_for_contact
from .placement import PbxLoad, Placer
from .slots import CampaignSlot
from .strategy import Close, Decision, Dial, SendSms, Strategy, close_for, first_action

query = queries_of(__name__)

logger = logging.getLogger(__name__)

# A contact whose campaign has no usable strategy cannot be dialled.
ENGINE_ERROR = Close("not_connected", "failed", "$error")
# First key of the PBX line locks (instance locks use 1684, pacing locks 1685).
PBX_LOCK_NAMESPACE = 1686


@dataclasses.dataclass(frozen=True)
class Job:
    """A claimed attempt: its row is written, its call or SMS not yet sent."""

    attempt_id: str
    campaign_id: int
    contact_id: int
    channel: str
    number: str
    step: int
    phone_slot: int
    ring_timeout_s: int
    text: str = ""
    # A personal callback or a preview call: dialled to this agent (queue member name).
    agent: str | None = None
    # Preview: the agent's phone rings first, then the customer's.
    agent_first: bool = False
    # The PBX a call is placed on ([[pbx]] name); None for an SMS.
    pbx: str | None = None
    # The caller ID it is placed with: the pool's choice or the campaign's; None: the
    # daemon's [dialing] caller_id.
    caller_id: str | None = None
    # Written sent by the claim (``_write_attempts``): its Originate follows the commit.
    sent: bool = False


@dataclasses.dataclass(frozen=True)
class Claim:
    """What a claim did: the attempts to send, and the final states it gave contacts."""

    jobs: list[Job]
    closed: list[str]
    # It found fewer due contacts than it had lines for: the campaign may be done once
    # its calls end. Not when its lines (or its PBXs') were full: those contacts wait.
    dry: bool = False


async def claim(
    conn: Any,
    slot: CampaignSlot,
    limit: int,
    *,
    now: datetime,
    free_agents: Callable[[], Sequence[str]],
    strategies: results.StrategyLookup,
    instance_id: int,
    pbxs: Sequence[PbxConfig],
    callback_pbx: str | None = None,
    hung_up: Collection[str] = (),
) -> Claim:
    """Claim up to ``limit`` due contacts of the slot's campaign, in one transaction.

    ``free_agents()``: whom a due personal callback may be dialled to, asked once
    the campaign row is locked; ``pbxs``: the PBXs its calls may go to now (up, and
    the campaign's), ``callback_pbx`` the one personal callbacks go to (their
    agents' queue's PBX; None: any of ``pbxs``). ``hung_up``: the attempts whose
    calls the caller saw hang up and whose results it has not committed yet: open in
    the database, they hold no line (module docstring).
    """
    jobs: list[Job] = []
    closed: list[str] = []
    async with conn.transaction():
        campaign = await conn.fetchrow(query("lock_campaign_lines"), slot.id)
        if campaign is None:
            return Claim(jobs, closed)  # paused or stopped since the tick began
        max_calls = campaign["max_concurrent_calls"]
        ended = list(hung_up)
        open_calls = await conn.fetchval(query("open_campaign_calls"), slot.id, ended)
        limit = min(limit, max_calls - open_calls)
        if limit <= 0 or not pbxs:
            return Claim(jobs, closed)
        placer = await _room_on(conn, pbxs, ended)
        if placer.free is not None:
            limit = min(limit, placer.free)
        if limit <= 0:
            return Claim(jobs, closed)
        free = list(free_agents())
        rows = await conn.fetch(
            query("claim_due_contacts"), slot.id, limit, now, free, slot.mode == "preview"
        )
        dry = len(rows) < limit
        if not rows:
            return Claim(jobs, closed, dry)
        # The others stay as they were (locked, not written): due at the next claim.
        rows, _later = one_call_per_agent(rows)
        strategy = await strategies.get(conn, slot.id)
        # Read once for the whole claim, with the campaign's lock: its caller-ID pool.
        pool = caller_ids.pool_of(campaign)
        dialable: list[_Dialable] = []
        for contact in rows:
            candidate = await _dialable(conn, slot, strategy, contact, now, closed)
            if candidate is not None:
                dialable.append(candidate)
        # One statement for the numbers of the whole claim.
        listed = await _do_not_call(conn, slot.id, [c.number for c in dialable])
        for candidate in dialable:
            contact = candidate.contact
            job = await _prepare(
                conn,
                slot,
                candidate,
                closed,
                _placing(placer, contact, callback_pbx),
                pool,
                listed=candidate.number in listed,
                has_open_attempt=contact["has_open_attempt"],
            )
            if job is not None:
                jobs.append(job)
        jobs = await _write_attempts(conn, slot.id, jobs, instance_id)
    return Claim(jobs, closed, dry)


async def _do_not_call(conn: Any, campaign_id: int, numbers: Sequence[str]) -> set[str]:
    """Which of ``numbers`` a do-not-call list or registry holds for the campaign."""
    if not numbers:
        return set()
    rows = await conn.fetch(query("do_not_call_numbers"), list(set(numbers)), campaign_id)
    return {r["number"] for r in rows}


async def _write_attempts(
    conn: Any, campaign_id: int, jobs: list[Job], instance_id: int
) -> list[Job]:
    """Write the attempt rows of the claim's jobs, their contacts marked dialling: one
    statement, whatever the claim's size. The jobs, each with its attempt id.

    A call that goes out as soon as the claim commits (``Job.sent``) is written sent,
    with the time: nothing stands between the commit and its Originate. The others (a
    call to one agent, an SMS) are written ``created``, and marked sent right before
    they go out."""
    if not jobs:
        return jobs
    rows = await conn.fetch(
        query("insert_engine_attempts"),
        campaign_id,
        instance_id,
        [j.contact_id for j in jobs],
        [j.channel for j in jobs],
        [j.phone_slot for j in jobs],
        [j.number for j in jobs],
        [j.step for j in jobs],
        [j.pbx for j in jobs],
        [j.caller_id for j in jobs],
        [j.sent for j in jobs],
    )
    # A claimed contact has no other open attempt (checked above): one row each.
    ids = {r["contact_id"]: str(r["id"]) for r in rows}
    return [dataclasses.replace(j, attempt_id=ids[j.contact_id]) for j in jobs]


async def _room_on(conn: Any, pbxs: Sequence[PbxConfig], hung_up: list[str]) -> Placer:
    """The PBXs' calls holding a line, counted under their locks (only PBXs with a limit
    need one)."""
    limited = [pbx.name for pbx in pbxs if pbx.limit is not None]
    in_use: dict[str, int] = {}
    if limited:
        await conn.execute(query("lock_pbx_lines"), PBX_LOCK_NAMESPACE, limited)
        in_use = {
            r["pbx"]: r["calls"]
            for r in await conn.fetch(query("open_pbx_calls"), limited, hung_up)
        }
    return Placer([PbxLoad(p.name, in_use.get(p.name, 0), p.limit, p.share) for p in pbxs])


def _placing(placer: Placer, contact: Any, callback_pbx: str | None) -> Callable[[], str | None]:
    """What gives the contact's call its PBX, asked only if a call is placed: a call
    to one agent (a callback, a preview) goes to the PBX of the agents' queue."""
    only = callback_pbx if target_agent(contact) is not None else None
    return lambda: placer.take(only)


async def unclaim(conn: Any, job: Job) -> None:
    """The Originate was never written: forget the attempt, the contact is due again.

    Only for the daemon that was about to send it (the attempt may already be
    marked sent: it is marked just before the Originate).
    """
    async with conn.transaction():
        if not await store.delete_unsent_attempt(conn, job.attempt_id, marked_sent=True):
            return
        await results.apply_decision(
            conn,
            job.contact_id,
            Dial(job.step, job.phone_slot, job.number, datetime.now(UTC), job.ring_timeout_s),
        )


def target_agent(contact: Mapping[str, Any]) -> str | None:
    """The one agent a contact is dialled to: its callback's owner, or its preview agent."""
    agent: str | None = contact["callback_agent"] or contact.get("preview_agent")
    return agent


async def put_back(conn: Any, attempt_id: str) -> bool:
    """An attempt left ``created`` (its daemon died before marking it sent): its
    Originate never went out. Forget it and make its contact due again, on the
    step it was for. False if it was no longer ``created``.
    """
    async with conn.transaction():
        attempt = await store.get_attempt(conn, attempt_id)
        if attempt is None or not await store.delete_unsent_attempt(conn, attempt_id):
            return False
        await conn.execute(
            query("put_back_contact"),
            attempt["contact_id"],
            attempt["step"],
            attempt["channel"],
            attempt["phone_slot"],
        )
        return True


def one_call_per_agent(rows: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(claimed contacts to dial, those put back): an agent gets one personal
    callback per claim, the first due; the others wait for the next claim."""
    keep: list[Any] = []
    later: list[Any] = []
    agents: set[str] = set()
    for row in rows:
        agent = target_agent(row)
        if agent is None or agent not in agents:
            keep.append(row)
            if agent is not None:
                agents.add(agent)
        else:
            later.append(row)
    return keep, later


@dataclasses.dataclass(frozen=True)
class _Dialable:
    """A claimed contact whose next action may go out now (its window is open): what
    is left to check is its number against the do-not-call lists."""

    contact: Any
    strategy: Strategy
    step: int
    channel: str
    phone_slot: int
    number: str
    ring_timeout_s: int


async def _dialable(
    conn: Any,
    slot: CampaignSlot,
    strategy: Strategy | None,
    contact: Any,
    now: datetime,
    closed: list[str],
) -> _Dialable | None:
    """What a claimed contact is for, if it may go out now; else None, with its plan or
    final state written (appended to ``closed``)."""
    contact_id = contact["id"]
    if strategy is None:
        await results.apply_decision(conn, contact_id, ENGINE_ERROR)
        closed.append(ENGINE_ERROR.state)
        return None
    phones = results.phones_of(contact)
    if contact["next_step"] is None:
        decision = first_action(strategy, phones, now)
        if isinstance(decision, Close) or decision.at > now:
            await results.apply_decision(conn, contact_id, decision)
            if isinstance(decision, Close):
                closed.append(decision.state)
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
            closed.append("not_connected")
            return None
        number = planned
    step_def = strategy.steps[step] if step < len(strategy.steps) else None
    ring = step_def.ring_timeout_s if step_def is not None and channel == "call" else 0
    # Compliance first: outside the contact's calling window the plan waits.
    if slot.window.always_open:
        allowed_at: datetime | None = now
    else:
        zones = zones_for_contact(contact["timezone"], [number], slot.window.default_zone)
        allowed_at = next_allowed(slot.window, zones, now, timedelta(seconds=ring))
    if allowed_at != now:
        later = allowed_at or now + timedelta(days=HORIZON_DAYS)
        plan: Decision = (
            Dial(step, slot_no, number, later, ring)
            if channel == "call"
            else SendSms(step, slot_no, number, later, "")
        )
        await results.apply_decision(conn, contact_id, plan)
        if contact["preview_agent"] is not None:
            await conn.execute(query("release_preview"), contact_id)
        return None
    return _Dialable(contact, strategy, step, channel, slot_no, number, ring)


async def _prepare(
    conn: Any,
    slot: CampaignSlot,
    dialable: _Dialable,
    closed: list[str],
    place: Callable[[], str | None],
    pool: Any,
    *,
    listed: bool,
    has_open_attempt: bool,
) -> Job | None:
    """Turn a dialable contact into a job whose attempt row is to be written (or a
    final state: do-not-call).

    ``listed``: its number is on a do-not-call list. The final states given to contacts
    are appended to ``closed``; ``place()`` gives a call its PBX, None when none has
    room (the contact is then put back); ``pool``: the campaign's caller-ID pool
    (``caller_ids.pool_of``). The job's attempt id is given once its row is written
    (``_write_attempts``).
    """
    contact, contact_id = dialable.contact, dialable.contact["id"]
    step, channel, slot_no = dialable.step, dialable.channel, dialable.phone_slot
    number, ring = dialable.number, dialable.ring_timeout_s
    if listed:
        if contact["preview_agent"] is not None:
            await conn.execute(query("release_preview"), contact_id)
        await results.apply_decision(conn, contact_id, close_for("dnc_listed"))
        closed.append("dnc_listed")
        logger.info(
            "contact on a do-not-call list: not contacted",
            extra={"action": "dnc", "campaign_id": slot.id, "contact_id": contact_id},
        )
        return None
    if has_open_attempt:
        # Its open attempt's result will plan what comes next: nothing is due till then.
        await conn.execute(query("unplan_contact"), contact_id)
        return None
    pbx = place() if channel == "call" else None
    if channel == "call" and pbx is None:
        return None  # its PBX is full (a callback's agent's): left due, plan kept
    # The caller ID, from the campaign's pool if it has one (engine/caller_ids.py): after
    # the PBX, so that a number's daily count only counts calls that are placed.
    caller_id = await caller_ids.choose(conn, pool, slot.id, number) if channel == "call" else None
    if isinstance(caller_id, caller_ids.Exhausted):
        # Every number of the pool placed its calls of the day: tomorrow, as planned.
        await results.apply_decision(
            conn, contact_id, Dial(step, slot_no, number, caller_id.retry_at, ring)
        )
        if contact["preview_agent"] is not None:
            await conn.execute(query("release_preview"), contact_id)
        return None
    caller_id = caller_id or slot.caller_id if channel == "call" else None
    text = ""
    if channel == "sms":
        strategy = dialable.strategy
        step_def = strategy.steps[step] if step < len(strategy.steps) else None
        template = (step_def.text if step_def and step_def.text else None) or strategy.sms_text
        text = render_text(template or "", _params(contact))
    agent = target_agent(contact) if channel == "call" else None
    return Job(
        "",
        slot.id,
        contact_id,
        channel,
        number,
        step,
        slot_no,
        ring,
        text,
        agent,
        agent_first=(
            channel == "call"
            and contact["callback_agent"] is None
            and contact["preview_agent"] is not None
            and slot.preview_dial == "agent_first"
        ),
        pbx=pbx,
        caller_id=caller_id or None,
        # Nothing holds back a call to no particular agent once the claim committed.
        sent=channel == "call" and agent is None,
    )


def _params(contact: Mapping[str, Any]) -> dict[str, str | None]:
    params: dict[str, str | None] = {f"param{i}": contact[f"param{i}"] for i in range(1, 13)}
    params["external_id"] = contact["external_id"]
    return params
