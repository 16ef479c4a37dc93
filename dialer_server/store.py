"""Every database operation of the dialer, as named functions over sql/queries.sql."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .db import query
from .originate import CallResult
from .strategy import PastAttempt


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


async def mark_attempt_sent(conn: Any, attempt_id: str) -> None:
    await conn.execute(query("mark_attempt_sent"), attempt_id)


async def mark_attempt_answered(conn: Any, attempt_id: str) -> None:
    await conn.execute(query("mark_attempt_answered"), attempt_id)


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


async def create_campaign(
    conn: Any,
    name: str,
    *,
    strategy_id: int,
    trunk: str | None = None,
    caller_id: str | None = None,
    max_concurrent_calls: int = 10,
    max_calls_per_second: float = 5,
    ring_timeout_s: int = 30,
    default_region: str = "US",
    timezone: str = "UTC",
    calling_window: dict[str, Any] | None = None,
    mode: str = "automated",
    amd: bool = False,
    ivr_playback: str | None = None,
    machine_message: str | None = None,
    webhook_attempts: bool = False,
    **agent: Any,
) -> int:
    """A new campaign; ``agent``: agent-mode settings (campaigns.AGENT_DEFAULTS keys)."""
    # campaigns imports this module: its defaults are looked up when called.
    from .campaigns import AGENT_DEFAULTS

    unknown = set(agent) - set(AGENT_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown campaign settings: {', '.join(sorted(unknown))}")
    agent_values = {**AGENT_DEFAULTS, **agent}
    return int(
        await conn.fetchval(
            query("create_campaign"),
            name,
            strategy_id,
            trunk,
            caller_id,
            max_concurrent_calls,
            max_calls_per_second,
            ring_timeout_s,
            default_region,
            timezone,
            json.dumps(calling_window) if calling_window is not None else None,
            mode,
            amd,
            ivr_playback,
            machine_message,
            webhook_attempts,
            *(agent_values[key] for key in AGENT_DEFAULTS),
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
    """The contact's ended attempts, oldest first: (attempt id, what the strategy sees)."""
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
