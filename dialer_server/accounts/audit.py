"""The audit log: every write through the API or the desk, who, when, what, before/after.

A row is written in the transaction of the change it records (the API's
``transaction``), so the log holds a change exactly when it committed. Rows
older than ``[audit] retention_days`` are deleted by ``AuditRetention`` in
batches; the log itself is read over the API with filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..db.outage import TRANSIENT_ERRORS, Outage
from ..db.queries import queries_of
from . import users
from .roles import Principal

query = queries_of(__name__)

logger = logging.getLogger(__name__)

CLEANUP_INTERVAL_S = 600.0
CLEANUP_BATCH = 10_000
# Before/after are kept whole up to this size; larger ones are summarised.
MAX_SNAPSHOT_CHARS = 20_000


@dataclasses.dataclass
class Entry:
    """What one write did: set by the handler, written at commit."""

    action: str
    target_type: str | None = None
    target_id: str | None = None
    before: Any = None
    after: Any = None


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID | bytes):
        return str(value)
    return repr(value)


def snapshot(value: Any) -> str | None:
    """``value`` as JSON text for a before/after column (None stays NULL)."""
    if value is None:
        return None
    text = json.dumps(value, default=_default, sort_keys=True)
    if len(text) > MAX_SNAPSHOT_CHARS:
        text = json.dumps({"truncated": True, "chars": len(text), "head": text[:1000]})
    return text


async def transaction_wrote(conn: Any) -> bool:
    """Whether the current transaction has written anything (it has a transaction id)."""
    return await conn.fetchval(query("transaction_wrote")) is not None


async def write(
    conn: Any, who: Principal, *, via: str, method: str, path: str, entry: Entry
) -> None:
    await conn.execute(
        query("insert_audit"),
        who.user_id,
        who.username,
        who.role,
        via,
        entry.action,
        method,
        path,
        entry.target_type,
        entry.target_id,
        snapshot(entry.before),
        snapshot(entry.after),
    )


async def list_entries(
    conn: Any,
    *,
    before_id: int,
    limit: int,
    username: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        query("list_audit"),
        before_id,
        username,
        action,
        target_type,
        target_id,
        start,
        end,
        limit,
    )
    out = []
    for row in rows:
        item = dict(row)
        for key in ("before", "after"):
            if isinstance(item[key], str):
                item[key] = json.loads(item[key])
        out.append(item)
    return out


class AuditRetention:
    """Deletes audit rows past the retention, and expired tokens, every 10 minutes."""

    def __init__(self, pool: Any, retention_days: float, outage: Outage | None = None) -> None:
        self.pool = pool
        self.retention_days = retention_days
        self.outage = outage if outage is not None else Outage()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = CLEANUP_INTERVAL_S
            try:
                if await self.clean_once() == CLEANUP_BATCH:
                    delay = 1.0  # more to delete
                self.outage.back()
            except TRANSIENT_ERRORS as exc:
                self.outage.down(exc, component="audit")
                delay = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def clean_once(self) -> int:
        """One batch: the audit rows deleted."""
        async with self.pool.acquire() as conn:
            await users.delete_expired_tokens(conn)
            if self.retention_days <= 0:
                return 0
            status = await conn.execute(
                query("delete_old_audit"), self.retention_days * 86400.0, CLEANUP_BATCH
            )
        deleted = int(status.split()[-1])
        if deleted:
            logger.info(
                "deleted %d audit log rows older than %g days",
                deleted,
                self.retention_days,
                extra={"action": "audit_cleanup"},
            )
        return deleted
