"""/api/v1/campaigns/{id}/contacts/bulk: recycle, cancel or move the contacts a filter selects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..accounts.roles import SUPERVISORS
from ..contacts import bulk
from ..errors import InvalidInput
from .common import (
    Operation,
    check_text,
    note,
    nothing_changed,
    path_id,
    read_json,
    respond,
    transaction,
)
from .schemas import bulk as schemas
from .schemas import common as s


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    check_text(value, field)
    try:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("no time zone")
        return at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"{field} must be an RFC 3339 date and time with a time zone: {exc}",
            details=[{"field": field, "message": "invalid date-time"}],
        ) from None


async def bulk_contacts(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.BULK)
    raw_filter = body.get("filter") or {}
    selection = bulk.parse_filter(
        raw_filter, _time(raw_filter.get("last_attempt_before"), "filter.last_attempt_before")
    )
    dry_run = bool(body.get("dry_run", False))
    at = _time(body.get("at"), "at") or datetime.now(UTC)
    async with transaction(request) as conn:
        result = await bulk.run(
            conn,
            campaign_id,
            body["action"],
            selection,
            dry_run=dry_run,
            at=at,
            to_campaign_id=body.get("to_campaign_id"),
        )
        if dry_run or not result.changed:
            nothing_changed(request)
        else:
            note(
                request,
                "campaign",
                campaign_id,
                before={"action": result.action, "filter": selection.to_json()},
                after=result.to_json(),
            )
    return respond(result.to_json())


OPERATIONS = [
    Operation(
        "POST",
        r"/api/v1/campaigns/{campaign_id:\d+}/contacts/bulk",
        bulk_contacts,
        "bulkContacts",
        "Recycle, cancel or move the contacts a filter selects, in one transaction",
        "contacts",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.BULK),
        responses={
            "200": s.ok(s.ref("BulkResult"), "Done, or counted (dry_run)"),
            **s.errors("400", "401", "403", "404", "409", "413", "415", "422", "503"),
        },
        roles=SUPERVISORS,
        description="recycle: reopen for a fresh strategy run (its caps count only the "
        "attempts from now on), due at `at` (default now); not a contact in a call. cancel: "
        "close as cancelled/failed/$cancelled (open contacts and those waiting for an SMS "
        "reply). move: into to_campaign_id, from its strategy's start; not a contact in a "
        "call; 409 external_id_conflict when that campaign has one of their external ids "
        "(nothing moves). With dry_run, nothing changes: matched is what the action would "
        "change. Recorded in the audit log.",
    ),
]
