"""Attempts across a campaign: /api/v1/campaigns/{id}/attempts (a page at a time, with
filters) and /attempts/export (every match, as CSV or XLSX, streamed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from ..campaigns import attempts
from ..campaigns import operations as campaigns
from ..errors import InvalidInput
from .campaigns import query_time
from .common import (
    CONTEXT,
    DEFAULT_PAGE,
    MAX_PAGE,
    Operation,
    path_id,
    query_int,
    query_text,
    respond,
    stream_table,
    transaction,
)
from .schemas import attempts as schemas
from .schemas import common as s


def _filters(request: web.Request) -> attempts.Filters:
    start = query_time(request, "from")
    end = query_time(request, "to")
    if start is not None and end is not None and end < start:
        raise InvalidInput(
            "query parameter to must not be before from",
            details=[{"field": "to", "message": "before from"}],
        )
    cause = query_text(request, "cause", max_len=3, pattern="^[0-9]{1,3}$")
    return attempts.Filters(
        outcomes=attempts.parse_outcomes(query_text(request, "outcome", max_len=400)),
        cause=int(cause) if cause is not None else None,
        channel=query_text(request, "channel", choices=("call", "sms")),
        start=start,
        end=end,
        agent=attempts.check_name(query_text(request, "agent", max_len=80), "agent"),
        disposition=attempts.check_name(
            query_text(request, "disposition", max_len=80), "disposition"
        ),
    )


async def list_campaign_attempts(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    filters = _filters(request)
    after = query_text(request, "after", max_len=120)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    async with transaction(request) as conn:
        rows, following = await attempts.list_attempts(
            conn, campaign_id, filters, after=after, limit=limit
        )
    return respond({"items": [attempts.attempt_json(r) for r in rows], "next_after": following})


async def export_campaign_attempts(request: web.Request) -> web.StreamResponse:
    campaign_id = path_id(request, "campaign_id")
    fmt = query_text(request, "format", choices=("csv", "xlsx")) or "csv"
    filters = _filters(request)
    async with transaction(request) as conn:
        await campaigns.get(conn, campaign_id)  # a 404 is JSON, before streaming starts
    pool = request.app[CONTEXT].pool

    async def batches() -> AsyncIterator[Sequence[Mapping[str, Any]]]:
        async for batch in attempts.export_rows(pool, campaign_id, filters):
            yield batch

    return await stream_table(
        request,
        fmt=fmt,
        filename=f"campaign-{campaign_id}-attempts",
        sheet="attempts",
        columns=attempts.COLUMNS,
        free_text=attempts.FREE_TEXT,
        batches=batches(),
    )


_PATH = r"/api/v1/campaigns/{campaign_id:\d+}/attempts"
_FILTERS = (
    s.query_param(
        "outcome",
        {"type": "string", "pattern": "^[a-z][a-z_]{0,39}(,[a-z][a-z_]{0,39})*$"},
        "Outcomes, comma-separated (answered,busy)",
    ),
    s.query_param(
        "cause", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "The Q.850 hangup cause (17)"
    ),
    s.query_param("channel", {"type": "string", "enum": ["call", "sms"]}),
    s.query_param("from", s.DATETIME, "Attempts created at this time or later"),
    s.query_param("to", s.DATETIME, "Attempts created before this time"),
    s.query_param(
        "agent", {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,80}$"}, "The agent who took it"
    ),
    s.query_param(
        "disposition",
        {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,80}$"},
        "The name of its disposition",
    ),
)

OPERATIONS = [
    Operation(
        "GET",
        _PATH,
        list_campaign_attempts,
        "listCampaignAttempts",
        "The campaign's attempts, oldest first, filtered, a page at a time",
        "attempts",
        parameters=(
            s.CAMPAIGN_ID,
            *_FILTERS,
            s.query_param(
                "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
            ),
            s.query_param(
                "after",
                {"type": "string", "minLength": 1, "maxLength": 120},
                "The next_after of the previous page",
            ),
        ),
        responses={"200": s.ok(s.ref("AttemptPage")), **s.errors("401", "404", "422", "503")},
        description="Ordered by creation time (then id): a page starts after the previous "
        "page's last attempt, so attempts made while a client pages never shift a page nor "
        "show an attempt twice (they come after the pages already read).",
    ),
    Operation(
        "GET",
        _PATH + "/export",
        export_campaign_attempts,
        "exportCampaignAttempts",
        "Every attempt of the campaign matching the filters, as CSV or XLSX (streamed)",
        "attempts",
        parameters=(
            s.CAMPAIGN_ID,
            s.query_param("format", {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}),
            *_FILTERS,
        ),
        responses={
            "200": {
                "description": "The file (columns: " + ", ".join(attempts.COLUMNS) + ")",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    schemas.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **s.errors("401", "404", "422", "503"),
        },
        description="Written as it is read, in constant memory whatever its size. An XLSX "
        "sheet holds at most 1,048,576 rows: more go on in sheets attempts-2, attempts-3...",
    ),
]
