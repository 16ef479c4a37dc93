"""Do-not-call lists: /api/v1/dnc (global) and /api/v1/campaigns/{id}/dnc."""

from __future__ import annotations

from aiohttp import web

from ..campaigns import do_not_call
from .common import (
    Operation,
    note,
    nothing_changed,
    page,
    paged,
    path_id,
    path_text,
    query_text,
    read_json,
    respond,
    transaction,
)
from .schemas import common as s
from .schemas import dnc as schemas


def _campaign(request: web.Request) -> int | None:
    return path_id(request, "campaign_id") if "campaign_id" in request.match_info else None


def _region(request: web.Request) -> str | None:
    return query_text(request, "region", max_len=2, pattern=s.REGION_PATTERN)


async def add_numbers(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    body = await read_json(request, schemas.DNC_ADD)
    async with transaction(request) as conn:
        numbers, added = await do_not_call.add(
            conn,
            body["numbers"],
            campaign_id=campaign_id,
            reason=body.get("reason"),
            region=body.get("region"),
        )
        if added:
            note(
                request,
                "dnc" if campaign_id is None else "campaign_dnc",
                campaign_id,
                after={"numbers": numbers, "added": added, "reason": body.get("reason")},
            )
        else:
            nothing_changed(request)
    return respond({"numbers": numbers, "added": added})


async def list_numbers(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    after, limit = page(request)
    async with transaction(request) as conn:
        rows = await do_not_call.list_numbers(
            conn, campaign_id=campaign_id, after=after, limit=limit
        )
    return respond(paged(rows, limit))


async def check_number(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    number = path_text(request, "number")
    region = _region(request)
    async with transaction(request) as conn:
        result = await do_not_call.check(conn, number, campaign_id=campaign_id, region=region)
    return respond(result)


async def remove_number(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    number = path_text(request, "number")
    region = _region(request)
    async with transaction(request) as conn:
        e164, removed = await do_not_call.remove(
            conn, number, campaign_id=campaign_id, region=region
        )
        if removed:
            note(
                request,
                "dnc" if campaign_id is None else "campaign_dnc",
                campaign_id,
                before={"number": e164},
            )
        else:
            nothing_changed(request)
    return respond({"number": e164, "removed": removed})


_NUMBER = s.path_param(
    "number",
    {"type": "string", "minLength": 1, "maxLength": 28},
    "E.164 (+ URL-encoded as %2B, or given as is), or national with the list's region",
)
_REGION = s.query_param(
    "region",
    s.REGION,
    "How a national number is read (default: the campaign's default region; global: US)",
)


def _operations(scope: str) -> list[Operation]:
    campaign = scope == "campaign"
    base = r"/api/v1/campaigns/{campaign_id:\d+}/dnc" if campaign else "/api/v1/dnc"
    ids = (s.CAMPAIGN_ID,) if campaign else ()
    which = "the campaign's" if campaign else "the global"
    suffix = "CampaignDnc" if campaign else "GlobalDnc"
    not_found = ("404",) if campaign else ()
    return [
        Operation(
            "POST",
            base,
            add_numbers,
            f"add{suffix}",
            f"Add numbers to {which} do-not-call list",
            "dnc",
            parameters=ids,
            body=s.json_body(schemas.DNC_ADD),
            responses={
                "200": s.ok(s.ref("DncAdded"), "numbers: all in E.164; added: those new"),
                **s.errors("400", "401", "403", *not_found, "413", "415", "422", "503"),
            },
            description="Idempotent: a listed number stays listed. National numbers are "
            "read with `region` (default: the campaign's default region; global: US).",
        ),
        Operation(
            "GET",
            base,
            list_numbers,
            f"list{suffix}",
            f"The numbers of {which} do-not-call list",
            "dnc",
            parameters=(*ids, *s.PAGE_PARAMS),
            responses={"200": s.ok(s.ref("DncPage")), **s.errors("401", *not_found, "422", "503")},
        ),
        Operation(
            "GET",
            base + "/{number}",
            check_number,
            f"check{suffix}",
            "Whether a number may not be called"
            + (" by this campaign (global or campaign list)" if campaign else " (global list)"),
            "dnc",
            parameters=(*ids, _NUMBER, _REGION),
            responses={"200": s.ok(s.ref("DncCheck")), **s.errors("401", "404", "422", "503")},
        ),
        Operation(
            "DELETE",
            base + "/{number}",
            remove_number,
            f"remove{suffix}",
            f"Take a number off {which} do-not-call list",
            "dnc",
            parameters=(*ids, _NUMBER, _REGION),
            responses={
                "200": s.ok(s.ref("DncRemoved"), "removed: whether it was listed"),
                **s.errors("401", "403", "404", "422", "503"),
            },
            description="Idempotent: removing a number that is not listed changes nothing.",
        ),
    ]


OPERATIONS = [*_operations("global"), *_operations("campaign")]
