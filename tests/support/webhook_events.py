"""What webhook tests share: the daemon's settings for a receiver, the outbox's
events, and the engine's steps (claim, answered result) done by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dialer_server.config import WebhooksConfig
from dialer_server.engine import store
from dialer_server.telephony.originate import CallResult
from dialer_server.telephony.outcomes import Outcome

from .crm_receiver import Crm
from .sql import sql

SECRET = "whsec-test-0123456789"


def hooks(crm: Crm | None = None, **overrides: Any) -> WebhooksConfig:
    values: dict[str, Any] = {
        "url": crm.url if crm is not None else "http://127.0.0.1:9/unused",
        "secret": SECRET,
        "timeout_s": 2.0,
        "min_backoff_s": 0.05,
        "max_backoff_s": 0.4,
        "poll_interval_s": 0.5,
    }
    values.update(overrides)
    return WebhooksConfig(**values)


async def outbox(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, seq, event_type, campaign_id, ordering_key, payload::text AS body, attempts, "
        "last_error, delivered_at FROM webhook_outbox ORDER BY seq"
    )
    return [dict(r) for r in rows]


async def events(conn: Any) -> list[dict[str, Any]]:
    return [json.loads(row["body"]) for row in await outbox(conn)]


async def dial(conn: Any, campaign_id: int, contact_id: int, *, channel: str = "call") -> str:
    """What the engine does when it claims a contact: the attempt row, then 'dialling'."""
    contact = await store.get_contact(conn, contact_id)
    assert contact is not None
    attempt_id = await conn.fetchval(
        sql("insert_engine_attempt"),
        campaign_id,
        contact_id,
        channel,
        1,
        contact["phone1"],
        0,
        None,
        "default" if channel == "call" else None,
    )
    await conn.execute(sql("mark_contact_dialling"), contact_id)
    return str(attempt_id)


def answered(attempt_id: str) -> CallResult:
    now = datetime.now(UTC)
    return CallResult(
        attempt_id, Outcome.ANSWERED, "Success", None, 16, "Normal Clearing", now, now
    )
