"""The engine's shared database operations: campaigns, contacts, attempts, strategies.

What more than one part needs (the claim, recording results, reconciliation,
dispositions, the API and the CLI) lives here as named functions over
``sql/queries/engine/store.sql``; a module's own statements stay in its own file
(``db/queries.py``). Every function works in the caller's connection and
transaction: none commits on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..db.queries import queries_of
from ..telephony.originate import CallResult
from .answered_calls import DEFAULT_QUEUE
from .strategy import PastAttempt, Strategy, parse_strategy

query = queries_of(__name__)

# What a new campaign gets for each setting it is not given, in the column order
# of create_campaign. The schema's DEFAULTs, the API's documented defaults and
# campaigns.create all follow this one table (a test compares it with a migrated
# database's column defaults).
CAMPAIGN_DEFAULTS: Mapping[str, Any] = {
    "trunk": None,  # None: the daemon's dialing.trunk
    "caller_id": None,  # None: the daemon's dialing.caller_id
    "max_concurrent_calls": 10,
    "max_calls_per_second": Decimal("5"),
    "ring_timeout_s": 30,
    "default_region": "US",
    "timezone": "UTC",
    "calling_window": None,  # None: every day 08:00-21:00 (slots.DEFAULT_WINDOW_HOURS)
    "mode": "automated",
    "amd": False,
    "ivr_playback": None,
    "machine_message": None,
    "webhook_attempts": False,
    # The agent modes (migration 0009).
    "queue": DEFAULT_QUEUE,
    "dial_ratio": Decimal("1.5"),
    "abandon_cap": Decimal("0.03"),
    "abandon_target": Decimal("0.02"),
    "max_dial_ratio": Decimal("3"),
    "abandon_message": None,
    "agent_wait_s": Decimal("2"),
    # The agent desk (migration 0012).
    "script": None,
    "param_names": None,
    "preview_dial": "agent_first",
    "preview_timeout_s": None,
    "preview_skip_delay_s": 3600,
    # The PBXs the campaign may use (migration 0014); None: every PBX of the daemon.
    "pbxs": None,
}


async def upsert_campaign(
    conn: Any, name: str, *, trunk: str | None, caller_id: str | None, ring_timeout_s: int
) -> int:
    row = await conn.fetchrow(
        query("upsert_campaign_by_name"), name, trunk, caller_id, ring_timeout_s
    )
    return int(row["id"])


async def upsert_contact(conn: Any, campaign_id: int, external_id: str, phone1: str) -> int:
    row = await conn.fetchrow(
        query("upsert_contact_by_external_id"), campaign_id, external_id, phone1
    )
    return int(row["id"])


async def insert_attempt(
    conn: Any,
    *,
    campaign_id: int,
    contact_id: int,
    number: str,
    phone_slot: int | None,
    channel: str = "call",
) -> str:
    """Write the attempt row; its id becomes the Originate ChannelId."""
    row = await conn.fetchrow(
        query("insert_attempt"), campaign_id, contact_id, channel, phone_slot, number
    )
    return str(row["id"])


async def mark_attempt_sent(
    conn: Any, attempt_id: str, at: datetime | None = None, *, if_running: bool = False
) -> bool:
    """The attempt's call goes out at ``at`` (default now); False if it is not
    ``created`` (any more), or ``if_running`` and its campaign no longer runs:
    then it must not be sent."""
    statement = query("mark_attempt_sent_if_running") if if_running else query("mark_attempt_sent")
    return await conn.fetchval(statement, attempt_id, at) is not None


async def mark_attempt_answered(conn: Any, attempt_id: str, at: datetime | None = None) -> None:
    await conn.execute(query("mark_attempt_answered"), attempt_id, at)


async def mark_attempts_sent(
    conn: Any, attempt_ids: Sequence[str], at: datetime, if_running: Sequence[bool]
) -> set[str]:
    """``mark_attempt_sent`` of several attempts in one statement (``if_running``: one
    flag per attempt); the ids of those marked, which may go out."""
    rows = await conn.fetch(query("mark_attempts_sent"), list(attempt_ids), at, list(if_running))
    return {row["id"] for row in rows}


async def mark_attempts_answered(
    conn: Any, attempt_ids: Sequence[str], at: Sequence[datetime]
) -> None:
    """``mark_attempt_answered`` of several attempts in one statement."""
    await conn.execute(query("mark_attempts_answered"), list(attempt_ids), list(at))


async def record_attempt_result(conn: Any, result: CallResult) -> bool:
    """Close the attempt with its outcome; False if it was already closed."""
    row = await conn.fetchrow(
        query("record_attempt_result"),
        result.attempt_id,
        result.outcome.value,
        result.originate_response,
        result.originate_reason,
        result.hangup_cause,
        result.hangup_cause_text,
        result.ended_at,
        result.answered_at,
        result.sip_code,
        result.source,
    )
    return row is not None


async def get_attempt(conn: Any, attempt_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("get_attempt"), attempt_id)
    return dict(row) if row is not None else None


# --- campaigns and strategies ------------------------------------------------------


async def save_strategy_version(
    conn: Any, name: str, version: int, definition: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Store a strategy version unless it exists; the stored (id, definition)."""
    row = await conn.fetchrow(
        query("insert_strategy_version"), name, version, json.dumps(definition)
    )
    return int(row["id"]), json.loads(row["definition"])


async def strategy_by_id(conn: Any, strategy_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("strategy_by_id"), strategy_id)
    if row is None:
        return None
    return {**dict(row), "definition": json.loads(row["definition"])}


async def latest_strategy(conn: Any, name: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("latest_strategy"), name)
    if row is None:
        return None
    return {**dict(row), "definition": json.loads(row["definition"])}


async def create_campaign(conn: Any, name: str, *, strategy_id: int, **settings: Any) -> int:
    """A new campaign, stopped; ``settings``: any of CAMPAIGN_DEFAULTS, the rest defaulted."""
    unknown = set(settings) - set(CAMPAIGN_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown campaign settings: {', '.join(sorted(unknown))}")
    values = {**CAMPAIGN_DEFAULTS, **settings}
    for key in ("calling_window", "param_names"):
        if values[key] is not None and not isinstance(values[key], str):
            values[key] = json.dumps(values[key])
    return int(
        await conn.fetchval(
            query("create_campaign"), name, strategy_id, *(values[k] for k in CAMPAIGN_DEFAULTS)
        )
    )


async def set_campaign_state(conn: Any, campaign_id: int, state: str) -> None:
    await conn.execute(query("set_campaign_state"), campaign_id, state)


async def get_campaign(conn: Any, campaign_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("get_campaign"), campaign_id)
    return dict(row) if row is not None else None


async def running_campaigns(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("running_campaigns"))]


async def complete_campaign_if_done(conn: Any, campaign_id: int) -> bool:
    # Two statements: one statement's snapshot predates the lock it waits for, and
    # would miss a contact reopened by the transaction it waited on.
    async with conn.transaction():
        if await conn.fetchval(query("lock_campaign_to_complete"), campaign_id) is None:
            return False
        return await conn.fetchval(query("complete_campaign_if_done"), campaign_id) is not None


async def hold_campaign_open(conn: Any, campaign_id: int) -> None:
    """Keep the campaign from completing until this transaction ends (see queries.sql)."""
    await conn.execute(query("hold_campaign_open"), campaign_id)


# --- contacts ------------------------------------------------------------------------


async def insert_contact(
    conn: Any,
    campaign_id: int,
    *,
    phones: Sequence[str | None],
    external_id: str | None = None,
    params: Sequence[str | None] = (),
    timezone: str | None = None,
) -> int:
    """A new contact, due at once. ``phones``: up to 5, ``params``: up to 12."""
    phone_values = [*phones, *([None] * (5 - len(phones)))][:5]
    param_values = [*params, *([None] * (12 - len(params)))][:12]
    return int(
        await conn.fetchval(
            query("insert_contact"),
            campaign_id,
            external_id,
            *phone_values,
            *param_values,
            timezone,
        )
    )


async def get_contact(conn: Any, contact_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("get_contact"), contact_id)
    return dict(row) if row is not None else None


async def contact_attempts(conn: Any, contact_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("contact_attempts"), contact_id)]


async def add_do_not_call(
    conn: Any, number: str, *, campaign_id: int | None = None, reason: str | None = None
) -> None:

    await conn.execute(query("add_do_not_call"), campaign_id, number, reason)


async def contact_history(conn: Any, contact_id: int) -> list[tuple[str, PastAttempt]]:
    """The contact's ended attempts of its current strategy run (all of them, unless a bulk
    recycle or move started a fresh run), oldest first: (attempt id, what the strategy sees)."""
    return [
        (
            str(row["id"]),
            PastAttempt(
                step=row["step"] if row["step"] is not None else 0,
                channel=row["channel"],
                phone_slot=row["phone_slot"],
                number=row["number"],
                outcome=row["outcome"],
                started_at=row["created_at"],
            ),
        )
        for row in await conn.fetch(query("contact_history"), contact_id)
    ]


async def campaign_strategy(conn: Any, campaign_id: int) -> Strategy | None:
    """The campaign's call strategy; None when it has none (or no such campaign)."""
    campaign = await get_campaign(conn, campaign_id)
    if campaign is None or campaign["strategy_id"] is None:
        return None
    row = await strategy_by_id(conn, campaign["strategy_id"])
    return parse_strategy(row["definition"]) if row is not None else None


async def lock_contact(conn: Any, contact_id: int) -> dict[str, Any] | None:
    """The contact, its row locked until the transaction ends; None if there is none."""
    row = await conn.fetchrow(query("lock_contact"), contact_id)
    return dict(row) if row is not None else None


async def contact_has_open_attempt(conn: Any, contact_id: int) -> bool:
    """Whether an attempt of the contact has no result yet (its result plans what is next)."""
    return bool(await conn.fetchval(query("contact_has_open_attempt"), contact_id))


# --- the attempt lifecycle of the engine --------------------------------------------


async def delete_unsent_attempt(conn: Any, attempt_id: str, *, marked_sent: bool = False) -> bool:
    """Forget an attempt whose Originate never left; False if it may have left.

    A ``created`` attempt never left; a ``sent`` one only when the caller knows
    its Originate was never written (``marked_sent``).
    """
    return await conn.fetchval(query("delete_unsent_attempt"), attempt_id, marked_sent) is not None


async def attempt_states(conn: Any, attempt_ids: Sequence[str]) -> dict[str, str]:
    """The state of each of these attempts that exists, by id."""
    return {
        row["id"]: row["state"] for row in await conn.fetch(query("attempt_states"), attempt_ids)
    }


async def attempt_connected(conn: Any, attempt_id: str, agent: str, at: datetime) -> bool | None:
    """Note that ``agent`` took the call and write its attempt.connected event.

    Returns whether the agent is a desk user; None when the attempt has ended.
    """
    row = await conn.fetchrow(query("attempt_connected"), attempt_id, agent, at)
    return None if row is None else bool(row["desk_user"])


async def campaign_is_running(conn: Any, campaign_id: int) -> bool:
    return bool(await conn.fetchval(query("campaign_is_running"), campaign_id))


async def adopt_orphaned_attempts(
    conn: Any, instance_id: int, pbxs: Sequence[str]
) -> list[dict[str, Any]]:
    """Open attempts of daemons that died, made this instance's (see store.sql).

    ``pbxs``: this daemon's PBXs; attempts on another PBX are left to a live
    daemon that has it, if any.
    """
    rows = await conn.fetch(query("adopt_orphaned_attempts"), instance_id, list(pbxs))
    return [dict(r) for r in rows]


async def open_attempts_of_instance(conn: Any, instance_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("open_attempts_of_instance"), instance_id)]
