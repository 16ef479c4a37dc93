"""Attempts across a campaign: listed with filters a page at a time, and exported whole.

The order is (created_at, id), the index ``attempts_campaign_created_idx``: a page ends
at a cursor (the last attempt's time and id) and the next page starts after it, so
attempts written meanwhile never shift a page nor show an attempt twice. An attempt
is written when its call is claimed, with the time it is written: new attempts come
after the cursor of any page already read. An export walks the same keyset in
batches, each a short query on a connection of its own, so it holds neither a
snapshot nor a connection for its whole length, and nothing grows with its size.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..db.queries import queries_of
from ..errors import InvalidInput
from . import operations as campaigns

query = queries_of(__name__)

# Rows an export reads at a time.
EXPORT_BATCH = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST = (_EPOCH, uuid.UUID(int=0))
_OUTCOME = re.compile(r"[a-z][a-z_]{0,39}")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")

# The columns of an export, in order: the attempt, its contact and its disposition.
COLUMNS = (
    "attempt_id",
    "contact_id",
    "external_id",
    "channel",
    "phone_slot",
    "number",
    "caller_id",
    "step",
    "state",
    "outcome",
    "detail",
    "hangup_cause",
    "hangup_cause_text",
    "created_at",
    "sent_at",
    "answered_at",
    "ended_at",
    "talk_s",
    "amd_status",
    "ivr_digits",
    "agent",
    "agent_connected_at",
    "agent_wait_ms",
    "abandoned",
    "disposition",
    "recording_status",
    "recording_duration_s",
)
# Text the CRM or the callee wrote: a spreadsheet must not run it as a formula.
FREE_TEXT = frozenset({"external_id", "ivr_digits", "detail"})


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which attempts of a campaign: every field None means any."""

    outcomes: tuple[str, ...] | None = None
    cause: int | None = None
    channel: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    agent: str | None = None
    disposition: str | None = None

    def args(self) -> tuple[Any, ...]:
        """The filter arguments of list_campaign_attempts ($4-$9)."""
        return (
            list(self.outcomes) if self.outcomes is not None else None,
            self.cause,
            self.channel,
            self.end,
            self.agent,
            self.disposition,
        )


def parse_outcomes(text: str | None) -> tuple[str, ...] | None:
    """``answered,busy`` -> ("answered", "busy"); InvalidInput for a malformed list."""
    if text is None:
        return None
    outcomes = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not outcomes or not all(_OUTCOME.fullmatch(o) for o in outcomes):
        raise InvalidInput(
            "query parameter outcome must be outcomes separated by commas (answered,busy)",
            details=[{"field": "outcome", "message": "invalid"}],
        )
    return outcomes


def check_name(value: str | None, field: str) -> str | None:
    if value is not None and not _NAME.fullmatch(value):
        raise InvalidInput(
            f"query parameter {field} must be 1-80 of A-Z a-z 0-9 _ . -",
            details=[{"field": field, "message": "invalid"}],
        )
    return value


def encode_cursor(created_at: datetime, attempt_id: Any) -> str:
    """The opaque ``after`` of the page that follows this attempt."""
    # Whole microseconds (PostgreSQL's precision), never through a float.
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}:{attempt_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, uuid.UUID]:
    """InvalidInput for anything :func:`encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        micros, _, attempt = raw.partition(":")
        if not re.fullmatch(r"-?[0-9]{1,18}", micros):
            raise ValueError(micros)
        return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(attempt)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise InvalidInput(
            "query parameter after must be the next_after of a previous page",
            details=[{"field": "after", "message": "invalid cursor"}],
        ) from None


def _start(after: str | None, filters: Filters) -> tuple[datetime, uuid.UUID]:
    """Where the keyset starts: after the cursor, and not before ``filters.start``."""
    at, attempt = decode_cursor(after) if after is not None else _FIRST
    if filters.start is not None and filters.start > at:
        # Just before the first attempt at ``start`` (ids are above the nil UUID).
        return filters.start, uuid.UUID(int=0)
    return at, attempt


def attempt_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: row[key] for key in COLUMNS}
    out["id"] = out.pop("attempt_id")
    return out


async def list_attempts(
    conn: Any, campaign_id: int, filters: Filters, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the campaign's attempts, oldest first; (rows, the next page's cursor)."""
    await campaigns.get(conn, campaign_id)
    at, attempt = _start(after, filters)
    rows = await conn.fetch(
        query("list_campaign_attempts"), campaign_id, at, attempt, *filters.args(), limit
    )
    items = [dict(r) for r in rows]
    following = None
    if len(items) == limit:
        following = encode_cursor(items[-1]["created_at"], items[-1]["attempt_id"])
    return items, following


async def export_rows(
    pool: Any, campaign_id: int, filters: Filters, batch: int = EXPORT_BATCH
) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    """Every matching attempt, a batch at a time (each read on a connection of its own)."""
    at, attempt = _start(None, filters)
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                query("list_campaign_attempts"), campaign_id, at, attempt, *filters.args(), batch
            )
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        at, attempt = rows[-1]["created_at"], rows[-1]["attempt_id"]
