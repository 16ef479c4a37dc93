"""Do-not-call lists: /api/v1/dnc (global) and /api/v1/campaigns/{id}/dnc."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..accounts.roles import ADMINS
from ..campaigns import dnc_registries, do_not_call
from .campaigns import query_time
from .common import (
    Operation,
    UnsupportedMediaType,
    body_chunks,
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


# A registry file as sent (decoded when its Content-Encoding says gzip or deflate; a gzip
# file sent as is is undone by the load): tens of millions of numbers.
MAX_REGISTRY_BYTES = 4 * 1024**3
REGISTRY_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "application/csv",
        "application/gzip",
        "application/x-gzip",
        "application/octet-stream",
    }
)


async def list_registries(request: web.Request) -> web.Response:
    async with transaction(request) as conn:
        rows = await dnc_registries.list_registries(conn)
    return respond({"items": rows})


async def get_registry(request: web.Request) -> web.Response:
    name = path_text(request, "name")
    async with transaction(request) as conn:
        row = await dnc_registries.get(conn, name)
    return respond(row)


async def load_registry(request: web.Request) -> web.Response:
    name = dnc_registries.check_name(path_text(request, "name"))
    mode = query_text(request, "mode", choices=dnc_registries.MODES) or "replace"
    region = _region(request)
    expires_at = query_time(request, "expires_at")
    if request.headers.get("Content-Type") and request.content_type not in REGISTRY_TYPES:
        raise UnsupportedMediaType(
            f"send the registry file as the body (text/plain, text/csv or application/gzip), "
            f"not {request.content_type}"
        )

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in body_chunks(request, MAX_REGISTRY_BYTES):
            yield chunk

    async with transaction(request) as conn:
        result = await dnc_registries.load(
            conn,
            name,
            chunks(),
            region=region,
            mode=mode,
            expires_at=expires_at,
            file_name=query_text(request, "file_name", max_len=255),
        )
        note(
            request,
            "dnc_registry",
            name,
            after={
                "mode": mode,
                "loaded": result.loaded,
                "rejected": result.rejected,
                "entries": result.registry["entries"],
                "expires_at": expires_at,
            },
        )
    return respond(result.to_json())


async def delete_registry(request: web.Request) -> web.Response:
    name = path_text(request, "name")
    async with transaction(request) as conn:
        before = await dnc_registries.delete(conn, name)
        note(request, "dnc_registry", name, before=before)
    return web.Response(status=204)


_REGISTRY = "/api/v1/dnc-registries/{name}"
_REGISTRY_NAME = s.path_param(
    "name", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "The registry's name"
)
_REGISTRY_OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/dnc-registries",
        list_registries,
        "listDncRegistries",
        "The national do-not-call registries loaded, with their entries",
        "dnc",
        responses={"200": s.ok(s.ref("DncRegistryList")), **s.errors("401", "503")},
    ),
    Operation(
        "GET",
        _REGISTRY,
        get_registry,
        "getDncRegistry",
        "One national do-not-call registry",
        "dnc",
        parameters=(_REGISTRY_NAME,),
        responses={"200": s.ok(s.ref("DncRegistry")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "POST",
        _REGISTRY + "/load",
        load_registry,
        "loadDncRegistry",
        "Load a national do-not-call registry's file (one number a line, or CSV; gzip too)",
        "dnc",
        parameters=(
            _REGISTRY_NAME,
            s.query_param(
                "mode",
                {"type": "string", "enum": ["replace", "merge"], "default": "replace"},
                "replace: the file is the registry from now on; merge: added to it",
            ),
            s.query_param(
                "region", s.REGION, "How national numbers are read (required for a new registry)"
            ),
            s.query_param(
                "expires_at", s.DATETIME, "When the loaded entries stop counting (default: never)"
            ),
            s.query_param(
                "file_name", {"type": "string", "maxLength": 255}, "Kept with the registry"
            ),
        ),
        body={
            "required": True,
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        responses={
            "200": s.ok(s.ref("DncRegistryLoad"), "Loaded"),
            **s.errors("400", "401", "403", "404", "409", "413", "415", "422", "503"),
        },
        roles=ADMINS,
        description="The numbers are read as they arrive (the body may be gzip, or sent with "
        "Content-Encoding: gzip) and go by COPY into a new partition, swapped in at the end "
        "(replace), or merged into the registry's (new numbers added, listed ones given the "
        "new expiry). One transaction: until it commits, every call is checked against the "
        "previous registry whole. Lines that are no number are counted and the first 20 "
        "shown. Admins only; recorded in the audit log.",
    ),
    Operation(
        "DELETE",
        _REGISTRY,
        delete_registry,
        "deleteDncRegistry",
        "Delete a national do-not-call registry and its numbers",
        "dnc",
        parameters=(_REGISTRY_NAME,),
        responses={"204": s.no_content("Deleted"), **s.errors("401", "403", "404", "422", "503")},
        roles=ADMINS,
    ),
]

OPERATIONS = [*_operations("global"), *_operations("campaign"), *_REGISTRY_OPERATIONS]
