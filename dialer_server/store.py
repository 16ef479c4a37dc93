"""Every database operation of the dialer, as named functions over sql/queries.sql."""

from __future__ import annotations

from typing import Any

from .db import query
from .originate import CallResult


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
