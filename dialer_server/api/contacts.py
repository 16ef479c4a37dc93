"""Contacts: upload (JSON, CSV, XLSX), read, list, change, cancel, reschedule,
their attempts, and a campaign's results export."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..campaigns import export
from ..campaigns import operations as campaigns
from ..contacts import importer as contact_import
from ..contacts import operations as contacts
from ..errors import InvalidInput, NotFound
from ..states import CONTACT_STATES, STATUSES
from .common import (
    CONTEXT,
    MAX_FILE_BYTES,
    Operation,
    PayloadTooLarge,
    UnsupportedEncoding,
    UnsupportedMediaType,
    body_chunks,
    check_text,
    content_coding,
    note,
    nothing_changed,
    page,
    paged,
    path_id,
    path_text,
    query_bool,
    query_text,
    read_json,
    respond,
    stream_table,
    transaction,
)
from .schemas import common as s
from .schemas import contacts as schemas

XLSX_TYPES = frozenset({export.XLSX_MEDIA_TYPE})
CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv"})


def contact_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in schemas.CONTACT_FIELDS}


def attempt_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in schemas.ATTEMPT_FIELDS}


def report_json(report: contact_import.ImportReport) -> dict[str, Any]:
    """An import's answer: its counts, its first problems, and where its report is."""
    return {**report.to_dict(), "report": f"/api/v1/imports/{report.import_id}/report"}


def _answer(report: contact_import.ImportReport) -> web.Response:
    body = report_json(report)
    if not report.stored and report.problems:
        raise InvalidInput(
            f"{report.rejected_rows} rows rejected: nothing stored (all_or_nothing)",
            code="import_rejected",
            details=body,
        )
    return respond(body)


# A JSON batch is parsed whole: it is kept small, and bigger imports go as files, which
# are read a chunk at a time.
MAX_BATCH_BYTES = 16 * 1024 * 1024
_BATCH_TOO_LARGE = (
    f"a JSON batch holds at most {schemas.MAX_BATCH} contacts and {MAX_BATCH_BYTES} bytes: "
    "send bigger imports as a CSV or XLSX file to POST /api/v1/campaigns/{id}/contacts/file "
    f"(up to {MAX_FILE_BYTES} bytes, read as it streams)"
)


def _batch_size(body: Any) -> None:
    # Before the schema's own maxItems, which would check every row first.
    if isinstance(body, dict) and isinstance(body.get("contacts"), list):
        if len(body["contacts"]) > schemas.MAX_BATCH:
            raise InvalidInput(
                _BATCH_TOO_LARGE,
                code="batch_too_large",
                details=[
                    {"field": "contacts", "message": f"must hold at most {schemas.MAX_BATCH} items"}
                ],
            )


async def upload_contacts(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    # Text a row cannot store rejects that row, not the batch: the import checks it.
    body = await read_json(
        request,
        schemas.CONTACTS_BATCH,
        limit=MAX_BATCH_BYTES,
        check_strings=False,
        too_large=_BATCH_TOO_LARGE,
        before_validation=_batch_size,
    )
    # Rows are judged one by one by the import (an absent or null field is an
    # empty cell, as in a CSV file): a bad row never refuses the others.
    async with transaction(request) as conn:
        campaign = await campaigns.get(conn, campaign_id)
        try:
            report = await contact_import.import_contacts(
                conn,
                campaign_id,
                body["contacts"],
                default_region=campaign["default_region"],
                all_or_nothing=bool(body.get("all_or_nothing", False)),
                source="api",
                keep_report_days=request.app[CONTEXT].config.import_.report_days,
                dedup=contact_import.Dedup(
                    body.get("dedup", "off"), body.get("duplicates", "keep")
                ),
                hash_key=request.app[CONTEXT].config.privacy.hash_key or None,
            )
        except contact_import.CampaignNotFound as exc:  # deleted meanwhile
            raise NotFound(str(exc)) from None
        note(request, "campaign", campaign_id, after=_import_counts(report))
    return _answer(report)


async def upload_contacts_file(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    fmt = query_text(request, "format", choices=("csv", "xlsx"))
    all_or_nothing = query_bool(request, "all_or_nothing")
    dedup = contact_import.Dedup(
        query_text(request, "dedup", choices=contact_import.DEDUP_SCOPES) or "off",
        query_text(request, "duplicates", choices=contact_import.DUPLICATE_ACTIONS) or "keep",
    )
    async with transaction(request) as conn:
        await campaigns.get(conn, campaign_id)  # 404 before reading a large body
    # The file goes to a temporary file as it arrives, then is read a chunk at a time:
    # never whole in memory.
    spool: IO[bytes] = await asyncio.to_thread(tempfile.TemporaryFile)
    try:
        media_type, filename = await _receive_file(request, spool)
        name = _file_name(media_type, filename) if fmt is None else ""
        async with transaction(request) as conn:
            campaign = await campaigns.get(conn, campaign_id)
            try:
                report = await contact_import.import_file(
                    conn,
                    campaign_id,
                    name,
                    spool,
                    fmt=fmt,
                    default_region=campaign["default_region"],
                    all_or_nothing=all_or_nothing,
                    source="file",
                    keep_report_days=request.app[CONTEXT].config.import_.report_days,
                    dedup=dedup,
                    hash_key=request.app[CONTEXT].config.privacy.hash_key or None,
                )
            except contact_import.CampaignNotFound as exc:  # deleted meanwhile
                raise NotFound(str(exc)) from None
            except contact_import.ImportFileError as exc:  # the file cannot be read
                raise InvalidInput(str(exc), code="invalid_file") from None
            note(request, "campaign", campaign_id, after=_import_counts(report))
    finally:
        await asyncio.to_thread(spool.close)
    return _answer(report)


async def _receive_file(request: web.Request, spool: IO[bytes]) -> tuple[str, str]:
    """Write the file into ``spool``: a multipart form's "file" part, or the body.

    (its media type, its file name)."""
    if not request.content_type.startswith("multipart/"):
        async for chunk in body_chunks(request, MAX_FILE_BYTES):
            await asyncio.to_thread(spool.write, chunk)
        return request.content_type, ""
    if content_coding(request) is not None:
        raise UnsupportedEncoding(
            "a multipart form is read as sent: compress the file alone, sent as the body"
        )
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise InvalidInput(
                    'the form has no "file" part',
                    details=[{"field": "file", "message": "required"}],
                )
            if isinstance(part, BodyPartReader) and part.name == "file":
                _check_part_coding(part)
                await _spool_part(part, spool)
                media_type = part.headers.get("Content-Type", "").split(";")[0].strip()
                return media_type.lower(), part.filename or ""
            await part.release()
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise InvalidInput(
            f"the multipart form is malformed: {exc}"[:300], code="bad_multipart"
        ) from None


def _check_part_coding(part: BodyPartReader) -> None:
    coding = part.headers.get("Content-Encoding", "identity").strip().lower()
    transfer = part.headers.get("Content-Transfer-Encoding", "binary").strip().lower()
    if coding != "identity" or transfer not in ("binary", "8bit", "7bit"):
        raise UnsupportedEncoding(
            "the file part must be sent as is (no Content-Encoding or Content-Transfer-Encoding)"
        )


async def _spool_part(part: BodyPartReader, spool: IO[bytes]) -> None:
    size = 0
    while chunk := await part.read_chunk(256 * 1024):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise PayloadTooLarge(f"the file must be at most {MAX_FILE_BYTES} bytes")
        await asyncio.to_thread(spool.write, chunk)


def _file_name(media_type: str, filename: str) -> str:
    """A name the import's reader tells the format by (it also sniffs the content)."""
    if media_type in XLSX_TYPES:
        return "upload.xlsx"
    if media_type in CSV_TYPES:
        return "upload.csv"
    if media_type.startswith(("application/json", "multipart/")):
        raise UnsupportedMediaType(
            "send the file as text/csv or XLSX (or a multipart form with a file part); "
            "JSON rows go to POST .../contacts"
        )
    return filename


async def list_contacts(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    filters = {
        "state": query_text(request, "state", choices=CONTACT_STATES),
        "status": query_text(request, "status", choices=STATUSES),
        "status_detail": query_text(request, "status_detail"),
        "phone": query_text(request, "phone", max_len=28),
    }
    after, limit = page(request)
    async with transaction(request) as conn:
        rows = await contacts.list_contacts(conn, campaign_id, after=after, limit=limit, **filters)
    return respond(paged([contact_json(r) for r in rows], limit))


async def get_contact(request: web.Request) -> web.Response:
    contact_id = path_id(request, "contact_id")
    async with transaction(request) as conn:
        row = await contacts.get(conn, contact_id)
    return respond(contact_json(row))


async def get_contact_by_external_id(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    external_id = path_text(request, "external_id")
    async with transaction(request) as conn:
        row = await contacts.get_by_external_id(conn, campaign_id, external_id)
    return respond(contact_json(row))


async def update_contact(request: web.Request) -> web.Response:
    contact_id = path_id(request, "contact_id")
    body = await read_json(request, schemas.CONTACT_UPDATE)
    async with transaction(request) as conn:
        before = await contacts.get(conn, contact_id)
        row = await contacts.update(
            conn, contact_id, body, hash_key=request.app[CONTEXT].config.privacy.hash_key or None
        )
        note(request, "contact", contact_id, before=contact_json(before), after=contact_json(row))
    return respond(contact_json(row))


async def cancel_contact(request: web.Request) -> web.Response:
    contact_id = path_id(request, "contact_id")
    async with transaction(request) as conn:
        before = await contacts.get(conn, contact_id)
        row, changed = await contacts.cancel(conn, contact_id)
        if changed:
            note(
                request, "contact", contact_id, before=contact_json(before), after=contact_json(row)
            )
        else:
            nothing_changed(request)
    return respond(contact_json(row))


async def reschedule_contact(request: web.Request) -> web.Response:
    contact_id = path_id(request, "contact_id")
    body = await _optional_json(request, schemas.RESCHEDULE)
    at = _when(body.get("at"))
    async with transaction(request) as conn:
        before = await contacts.get(conn, contact_id)
        row = await contacts.reschedule(conn, contact_id, at=at, step=body.get("step"))
        note(request, "contact", contact_id, before=contact_json(before), after=contact_json(row))
    return respond(contact_json(row))


def _import_counts(report: contact_import.ImportReport) -> dict[str, Any]:
    """What an import did, for its audit log row (the rows themselves are in its report)."""
    answer = report.to_dict()
    return {key: answer[key] for key in answer if key not in ("rejected",)}


async def _optional_json(request: web.Request, schema: Mapping[str, Any]) -> Any:
    """A JSON body, {} when there is none."""
    if not request.can_read_body:
        return {}
    return await read_json(request, schema)


def _when(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    check_text(text, "at")
    try:
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("no time zone")
        return at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"at must be an ISO 8601 date and time with a time zone: {exc}",
            details=[{"field": "at", "message": "invalid date-time"}],
        ) from None


async def contact_attempts(request: web.Request) -> web.Response:
    contact_id = path_id(request, "contact_id")
    async with transaction(request) as conn:
        rows = await contacts.attempts(conn, contact_id)
    return respond({"items": [attempt_json(r) for r in rows]})


async def export_results(request: web.Request) -> web.StreamResponse:
    campaign_id = path_id(request, "campaign_id")
    fmt = query_text(request, "format", choices=("csv", "xlsx")) or "csv"
    async with request.app[CONTEXT].pool.acquire() as conn, conn.transaction():
        # One snapshot for the whole file: a cursor, read as the client takes the file.
        await campaigns.get(conn, campaign_id)  # a 404 is JSON, before streaming starts

        async def batches() -> AsyncIterator[Sequence[Mapping[str, Any]]]:
            batch: list[Mapping[str, Any]] = []
            async for row in contacts.export_rows(conn, campaign_id):
                batch.append(row)
                if len(batch) >= 1000:
                    yield batch
                    batch = []
            if batch:
                yield batch

        return await stream_table(
            request,
            fmt=fmt,
            filename=f"campaign-{campaign_id}-results",
            sheet="results",
            columns=export.COLUMNS,
            free_text=export.FREE_TEXT,
            batches=batches(),
        )


_CAMPAIGN = r"/api/v1/campaigns/{campaign_id:\d+}"
_CONTACT = r"/api/v1/contacts/{contact_id:\d+}"
_WRITE_ERRORS = ("400", "401", "403", "404", "413", "415", "422", "503")
_FILE_TYPES = {
    "text/csv": {"schema": {"type": "string"}},
    export.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {
        "schema": s.obj(
            {"file": {"type": "string", "format": "binary"}},
            required=["file"],
        )
    },
}

OPERATIONS = [
    Operation(
        "POST",
        _CAMPAIGN + "/contacts",
        upload_contacts,
        "uploadContacts",
        "Import contacts given as JSON rows",
        "contacts",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.CONTACTS_BATCH),
        responses={
            "200": s.ok(s.ref("ImportReport"), "Imported: rejected lists each bad row"),
            **s.errors(*_WRITE_ERRORS),
        },
        description="Rows have the columns of a CSV import (phone1..phone5, param1..param12, "
        "external_id, timezone). Bad rows are reported with their row number and reason and "
        "the good rows stored; with all_or_nothing, one bad row stores nothing (422 "
        "import_rejected, the answer in details). A known external_id updates its contact. "
        "At most 10,000 contacts (422 batch_too_large) and 16 MiB (413) a batch: bigger "
        "imports go as a file (uploadContactsFile). The answer lists the first 100 problems; "
        "its report (getImportReport) lists them all.",
    ),
    Operation(
        "POST",
        _CAMPAIGN + "/contacts/file",
        upload_contacts_file,
        "uploadContactsFile",
        "Import contacts from a CSV or XLSX file",
        "contacts",
        parameters=(
            s.CAMPAIGN_ID,
            s.query_param(
                "format",
                {"type": "string", "enum": ["csv", "xlsx"]},
                "Default: from the content type, the file name, or the content",
            ),
            s.query_param("all_or_nothing", {"type": "boolean", "default": False}),
            s.query_param("dedup", {**schemas.DEDUP, "default": "off"}),
            s.query_param("duplicates", {**schemas.DUPLICATES, "default": "keep"}),
        ),
        body={"required": True, "content": _FILE_TYPES},
        responses={
            "200": s.ok(s.ref("ImportReport"), "Imported: rejected lists each bad row"),
            **s.errors(*_WRITE_ERRORS),
        },
        description="The raw body (text/csv, XLSX) or a multipart form with a `file` part, "
        "up to 256 MiB, read as it arrives (never held whole). The answer lists the first 100 "
        "problems; its report (getImportReport) lists them all.",
    ),
    Operation(
        "GET",
        _CAMPAIGN + "/contacts",
        list_contacts,
        "listContacts",
        "A campaign's contacts, filtered, by pages",
        "contacts",
        parameters=(
            s.CAMPAIGN_ID,
            s.query_param("state", {"type": "string", "enum": list(CONTACT_STATES)}),
            s.query_param("status", {"type": "string", "enum": list(STATUSES)}),
            s.query_param("status_detail", {"type": "string", "maxLength": 100}),
            s.query_param(
                "phone",
                {"type": "string", "maxLength": 28},
                "Any of phone1..phone5, as given or in E.164",
            ),
            *s.PAGE_PARAMS,
        ),
        responses={"200": s.ok(s.ref("ContactPage")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "GET",
        _CAMPAIGN + "/contacts/by-external-id/{external_id}",
        get_contact_by_external_id,
        "getContactByExternalId",
        "A contact by the CRM's id (URL-encoded)",
        "contacts",
        parameters=(s.CAMPAIGN_ID, s.path_param("external_id", {"type": "string", "minLength": 1})),
        responses={"200": s.ok(s.ref("Contact")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "GET",
        _CONTACT,
        get_contact,
        "getContact",
        "A contact",
        "contacts",
        parameters=(s.CONTACT_ID,),
        responses={"200": s.ok(s.ref("Contact")), **s.errors("401", "404", "503")},
    ),
    Operation(
        "PATCH",
        _CONTACT,
        update_contact,
        "updateContact",
        "Change a contact's phones, params or time zone",
        "contacts",
        parameters=(s.CONTACT_ID,),
        body=s.json_body(schemas.CONTACT_UPDATE),
        responses={"200": s.ok(s.ref("Contact")), **s.errors(*_WRITE_ERRORS, "409")},
        description="Phones are checked and stored in E.164 (read with the campaign's "
        "default region); null empties a field (not phone1). An erased person's number is "
        "refused (422 number_erased); an erased contact cannot change (409 contact_erased).",
    ),
    Operation(
        "POST",
        _CONTACT + "/cancel",
        cancel_contact,
        "cancelContact",
        "Cancel a contact: closed as cancelled/failed/$cancelled, never dialled again",
        "contacts",
        parameters=(s.CONTACT_ID,),
        responses={"200": s.ok(s.ref("Contact")), **s.errors("401", "403", "404", "409", "503")},
        description="Idempotent. A call in progress ends normally. 409 contact_closed for "
        "a contact already closed otherwise (reschedule reopens it).",
    ),
    Operation(
        "POST",
        _CONTACT + "/reschedule",
        reschedule_contact,
        "rescheduleContact",
        "Reopen a contact for redial, from the start or at a strategy step",
        "contacts",
        parameters=(s.CONTACT_ID,),
        body=s.json_body(schemas.RESCHEDULE, required=False),
        responses={
            "200": s.ok(s.ref("Contact")),
            **s.errors(*_WRITE_ERRORS, "409"),
        },
        description="The strategy's caps count every attempt of the contact, those "
        "before the reschedule too. 409 attempt_in_progress while a call is open.",
    ),
    Operation(
        "GET",
        _CONTACT + "/attempts",
        contact_attempts,
        "listContactAttempts",
        "Every attempt of a contact, oldest first",
        "contacts",
        parameters=(s.CONTACT_ID,),
        responses={
            "200": s.ok(
                s.obj({"items": {"type": "array", "items": s.ref("Attempt")}}, required=["items"])
            ),
            **s.errors("401", "404", "503"),
        },
    ),
    Operation(
        "GET",
        _CAMPAIGN + "/results",
        export_results,
        "exportResults",
        "A campaign's results: one row per contact with its last attempt",
        "contacts",
        parameters=(
            s.CAMPAIGN_ID,
            s.query_param("format", {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}),
        ),
        responses={
            "200": {
                "description": "The file (columns: " + ", ".join(export.COLUMNS) + ")",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    export.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **s.errors("401", "404", "422", "503"),
        },
    ),
]
