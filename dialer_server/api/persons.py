"""Data rights (GDPR): /api/v1/persons (find), /persons/export (everything held about a
person, as JSON) and /persons/erase."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..accounts import audit
from ..accounts.roles import ADMINS, SUPERVISORS
from ..contacts import data_rights
from .common import (
    CONTEXT,
    PRINCIPAL,
    Operation,
    json_text,
    note,
    query_text,
    read_json,
    respond,
    transaction,
)
from .schemas import common as s
from .schemas import persons as schemas


def _who(request: web.Request) -> data_rights.Who:
    return data_rights.who(
        query_text(request, "phone", max_len=28),
        query_text(request, "external_id", max_len=255),
        query_text(request, "region", max_len=2, pattern=s.REGION_PATTERN),
    )


def _key(request: web.Request) -> str | None:
    return request.app[CONTEXT].config.privacy.hash_key or None


def _target(request: web.Request, person: data_rights.Who) -> str:
    """How the audit log names a person: a hash of their number, never the number."""
    key = _key(request) or ""
    if person.numbers and key:
        return data_rights.hash_prefix(key, person.numbers[0])
    return "external_id" if person.external_id else "-"


async def find_person(request: web.Request) -> web.Response:
    person = _who(request)
    async with transaction(request) as conn:
        contacts = await data_rights.find(conn, person)
    return respond({"query": person.to_json(), "contacts": [_summary(c) for c in contacts]})


def _summary(contact: dict[str, Any]) -> dict[str, Any]:
    return {key: contact[key] for key in schemas.PERSON_CONTACT_FIELDS}


async def export_person(request: web.Request) -> web.Response:
    person = _who(request)
    async with transaction(request) as conn:
        data = await data_rights.export(conn, person, key=_key(request))
        # Reading everything held about a person is recorded, as a change would be.
        await audit.write(
            conn,
            request[PRINCIPAL],
            via="api",
            method=request.method,
            path=request.path,
            entry=audit.Entry(
                "exportPerson",
                "person",
                _target(request, person),
                after={"contacts": len(data["contacts"])},
            ),
        )
    return web.Response(
        text=json_text(data),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="person-export.json"'},
    )


async def erase_person(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.ERASE)
    person = data_rights.who(body.get("phone"), body.get("external_id"), body.get("region"))
    async with transaction(request) as conn:
        done = await data_rights.erase(conn, person, key=_key(request))
        note(
            request,
            "person",
            _target(request, person),
            after={"contacts": done.contacts, "attempts": done.attempts},
        )
    # The files go once the erasure committed: a failed commit keeps them with their rows.
    directory = request.app[CONTEXT].config.recording.dir
    done = await data_rights.delete_recordings(done, directory)
    return respond(done.to_json())


_QUERY = (
    s.query_param(
        "phone",
        {"type": "string", "minLength": 1, "maxLength": 28},
        "A number of theirs: E.164 (+ URL-encoded as %2B) or national with region",
    ),
    s.query_param(
        "external_id", {"type": "string", "minLength": 1, "maxLength": 255}, "The CRM's id"
    ),
    s.query_param("region", s.REGION, "How a national number is read (default US)"),
)

OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/persons",
        find_person,
        "findPerson",
        "Find a person's contacts in every campaign, by a number or the CRM's id",
        "data rights",
        parameters=_QUERY,
        responses={
            "200": s.ok(s.ref("PersonContacts")),
            **s.errors("401", "403", "409", "422", "503"),
        },
        roles=SUPERVISORS,
        description="A contact is theirs when one of its phones is the number (any slot) or "
        "its external_id is the id, in any campaign. 409 too_many_contacts past 1,000.",
    ),
    Operation(
        "GET",
        "/api/v1/persons/export",
        export_person,
        "exportPerson",
        "Everything held about a person, as JSON",
        "data rights",
        parameters=_QUERY,
        responses={
            "200": s.ok(
                {"type": "object"},
                "Their contacts with every field, their "
                "attempts (dispositions, recordings), the SMS replies from their numbers, the "
                "do-not-call entries of their numbers",
            ),
            **s.errors("401", "403", "409", "422", "503"),
        },
        roles=ADMINS,
        description="Admins only; recorded in the audit log (the person named by a hash of "
        "their number, never the number).",
    ),
    Operation(
        "POST",
        "/api/v1/persons/erase",
        erase_person,
        "erasePerson",
        "Erase a person: their personal data goes, their numbers stay only as a keyed hash",
        "data rights",
        body=s.json_body(schemas.ERASE),
        responses={
            "200": s.ok(s.ref("Erasure"), "Erased (or nobody matched: contacts 0)"),
            **s.errors("400", "401", "403", "409", "413", "415", "422", "503"),
        },
        roles=ADMINS,
        description="Every contact of the person (as findPerson finds them) loses its "
        "phones, params, external id and time zone and is closed as cancelled/failed/"
        "$erased; their attempts keep only what statistics need; their recordings are "
        "deleted; their SMS replies, webhook events and disposition notes go. Their numbers "
        "are kept only as HMAC-SHA256 under [privacy] hash_key, so that a later import does "
        "not bring them back (409 privacy_key without the key). 409 call_in_progress while "
        "a call to them is up: nothing is erased. Admins only; recorded in the audit log.",
    ),
]
