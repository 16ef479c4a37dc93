"""The status dictionary (/api/v1/dispositions, /api/v1/campaigns/{id}/dispositions)
and the disposition of an answered call (/api/v1/attempts/{id}/disposition)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..campaigns import dispositions, status_dictionary
from ..errors import InvalidInput
from .common import (
    Operation,
    check_text,
    note,
    path_id,
    query_bool,
    read_json,
    respond,
    transaction,
)
from .contacts import contact_json
from .schemas import common as s
from .schemas import dispositions as schemas


def entry_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in schemas.DICTIONARY_ENTRY_FIELDS}


def disposition_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in schemas.DISPOSITION_FIELDS}


def _campaign(request: web.Request) -> int | None:
    return path_id(request, "campaign_id") if "campaign_id" in request.match_info else None


def _name(request: web.Request) -> str:
    # The route only lets a dictionary name through.
    return request.match_info["name"]


def _flag(request: web.Request, name: str) -> bool | None:
    return query_bool(request, name) if name in request.query else None


async def list_entries(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    active, hidden = _flag(request, "active"), _flag(request, "hidden")
    async with transaction(request) as conn:
        rows = await status_dictionary.list_entries(conn, campaign_id, active=active, hidden=hidden)
    return respond({"items": [entry_json(r) for r in rows]})


async def create_entry(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    schema = (
        schemas.DICTIONARY_CREATE if campaign_id is None else schemas.CAMPAIGN_DICTIONARY_CREATE
    )
    body = await read_json(request, schema)
    async with transaction(request) as conn:
        row = await status_dictionary.create_entry(conn, campaign_id, body)
        note(request, "disposition_entry", row["id"], after=entry_json(row))
    return respond(entry_json(row), status=201)


async def get_entry(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    async with transaction(request) as conn:
        row = await status_dictionary.get_entry(conn, campaign_id, _name(request))
    return respond(entry_json(row))


async def update_entry(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    schema = (
        schemas.DICTIONARY_UPDATE if campaign_id is None else schemas.CAMPAIGN_DICTIONARY_UPDATE
    )
    body = await read_json(request, schema)
    async with transaction(request) as conn:
        before = await status_dictionary.get_entry(conn, campaign_id, _name(request))
        row = await status_dictionary.update_entry(conn, campaign_id, _name(request), body)
        note(
            request,
            "disposition_entry",
            row["id"],
            before=entry_json(before),
            after=entry_json(row),
        )
    return respond(entry_json(row))


async def delete_entry(request: web.Request) -> web.Response:
    campaign_id = _campaign(request)
    async with transaction(request) as conn:
        before = await status_dictionary.get_entry(conn, campaign_id, _name(request))
        await status_dictionary.delete_entry(conn, campaign_id, _name(request))
        note(request, "disposition_entry", before["id"], before=entry_json(before))
    return web.Response(status=204)


def _attempt_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["attempt_id"]))
    except ValueError:
        raise web.HTTPNotFound() from None


def _callback_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    check_text(text, "callback_at")
    try:
        at = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"callback_at must be an RFC 3339 date and time: {exc}",
            details=[{"field": "callback_at", "message": "invalid date-time"}],
        ) from None
    if at.tzinfo is None:
        raise InvalidInput(
            "callback_at must carry a time zone offset (Z or +01:00)",
            details=[{"field": "callback_at", "message": "invalid date-time"}],
        )
    return at.astimezone(UTC)


async def set_disposition(request: web.Request) -> web.Response:
    attempt_id = _attempt_id(request)
    body = await read_json(request, schemas.DISPOSITION_SET)
    callback_at = _callback_at(body.get("callback_at"))
    async with transaction(request) as conn:
        disposition, contact = await dispositions.set_disposition(
            conn,
            attempt_id,
            status=body["status"],
            agent=body.get("agent"),
            callback_at=callback_at,
            note=body.get("note"),
            now=datetime.now(UTC),
        )
        note(
            request,
            "attempt",
            attempt_id,
            after={"disposition": disposition_json(disposition), "contact": contact_json(contact)},
        )
    return respond(
        {"disposition": disposition_json(disposition), "contact": contact_json(contact)},
        status=201,
    )


async def get_disposition(request: web.Request) -> web.Response:
    attempt_id = _attempt_id(request)
    async with transaction(request) as conn:
        row = await dispositions.get_disposition(conn, attempt_id)
    return respond(disposition_json(row))


_NAME_ROUTE = "{name:[a-z0-9][a-z0-9_-]*}"
_NAME = s.path_param("name", {"type": "string", "pattern": s.STRATEGY_NAME}, "The entry's name")
_FILTERS = (
    s.query_param("active", {"type": "boolean"}, "Only active (true) or inactive (false) entries"),
    s.query_param(
        "hidden",
        {"type": "boolean"},
        "Only hidden (true) or visible (false) entries: an agent "
        "desktop lists active=true&hidden=false",
    ),
)
_ATTEMPT_ID = s.path_param("attempt_id", {"type": "string", "format": "uuid"})
_WRITE = ("400", "401", "403", "404", "413", "415", "422", "503")


def _dictionary_operations(scope: str) -> list[Operation]:
    campaign = scope == "campaign"
    base = (
        r"/api/v1/campaigns/{campaign_id:\d+}/dispositions" if campaign else "/api/v1/dispositions"
    )
    ids = (s.CAMPAIGN_ID,) if campaign else ()
    which = "the campaign's" if campaign else "the global"
    suffix = "CampaignDisposition" if campaign else "GlobalDisposition"
    create = schemas.CAMPAIGN_DICTIONARY_CREATE if campaign else schemas.DICTIONARY_CREATE
    update = schemas.CAMPAIGN_DICTIONARY_UPDATE if campaign else schemas.DICTIONARY_UPDATE
    read_errors = ("401", "404", "422", "503") if campaign else ("401", "422", "503")
    return [
        Operation(
            "GET",
            base,
            list_entries,
            f"list{suffix}s",
            f"The entries of {which} status dictionary",
            "dispositions",
            parameters=(*ids, *_FILTERS),
            responses={"200": s.ok(s.ref("Dictionary")), **s.errors(*read_errors)},
        ),
        Operation(
            "POST",
            base,
            create_entry,
            f"create{suffix}",
            f"Add an entry to {which} status dictionary",
            "dispositions",
            parameters=ids,
            body=s.json_body(create),
            responses={
                "201": s.ok(s.ref("DictionaryEntry"), "Created"),
                **s.errors(*_WRITE, "409"),
            },
            description="409 name_taken when the name exists in this dictionary. "
            + (
                "from_global copies a global entry (the fields given override its own)."
                if campaign
                else "auto_add: copied into every campaign created from now on."
            ),
        ),
        Operation(
            "GET",
            f"{base}/{_NAME_ROUTE}",
            get_entry,
            f"get{suffix}",
            f"One entry of {which} status dictionary",
            "dispositions",
            parameters=(*ids, _NAME),
            responses={"200": s.ok(s.ref("DictionaryEntry")), **s.errors("401", "404", "503")},
        ),
        Operation(
            "PATCH",
            f"{base}/{_NAME_ROUTE}",
            update_entry,
            f"update{suffix}",
            f"Change an entry of {which} status dictionary",
            "dispositions",
            parameters=(*ids, _NAME),
            body=s.json_body(update),
            responses={"200": s.ok(s.ref("DictionaryEntry")), **s.errors(*_WRITE, "409")},
            description="active false retires an entry: it can no longer be set, its "
            "history stays. Renaming keeps the history (dispositions store their name). "
            "A changed action drops status_detail and delay_s unless given.",
        ),
        Operation(
            "DELETE",
            f"{base}/{_NAME_ROUTE}",
            delete_entry,
            f"delete{suffix}",
            f"Delete an entry of {which} status dictionary",
            "dispositions",
            parameters=(*ids, _NAME),
            responses={
                "204": s.no_content("Deleted"),
                **s.errors("401", "403", "404", "409", "503"),
            },
            description="409 status_in_use when a call's disposition used it: deactivate "
            "it instead (PATCH active false).",
        ),
    ]


_ATTEMPT = r"/api/v1/attempts/{attempt_id:[0-9a-fA-F-]+}/disposition"

OPERATIONS = [
    *_dictionary_operations("global"),
    *_dictionary_operations("campaign"),
    Operation(
        "POST",
        _ATTEMPT,
        set_disposition,
        "setDisposition",
        "Set the disposition of an answered call (an agent's result)",
        "dispositions",
        parameters=(_ATTEMPT_ID,),
        body=s.json_body(schemas.DISPOSITION_SET),
        responses={"201": s.ok(s.ref("DispositionSet"), "Set"), **s.errors(*_WRITE, "409")},
        description="status: an active entry of the campaign's dictionary (422 otherwise). "
        "Set after the call ended, it changes the contact at once; set while the call is "
        "up, when the call ends (applied_at null until then). One per attempt: 409 "
        "disposition_exists for a second one. 409 not_answered (no answered call), "
        "not_latest_attempt (the contact was dialled again since), contact_cancelled.",
    ),
    Operation(
        "GET",
        _ATTEMPT,
        get_disposition,
        "getDisposition",
        "The disposition of a call",
        "dispositions",
        parameters=(_ATTEMPT_ID,),
        responses={"200": s.ok(s.ref("Disposition")), **s.errors("401", "404", "503")},
    ),
]
