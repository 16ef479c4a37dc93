"""Contact operations of the HTTP API: read, change, cancel, reschedule.

Every function works in the caller's transaction. A contact's plan
(next_attempt_at, next_step...) belongs to the engine while an attempt of it is
open: rescheduling waits until that attempt has its result, and a cancel lets
the result land on the attempt while the contact stays cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import phonenumbers

from ..campaigns import operations as campaigns
from ..db.queries import queries_of
from ..engine import store, task_moves
from ..errors import Conflict, InvalidInput, NotFound
from . import data_rights

query = queries_of(__name__)

logger = logging.getLogger(__name__)

PHONE_FIELDS = tuple(f"phone{i}" for i in range(1, 6))
PARAM_FIELDS = tuple(f"param{i}" for i in range(1, 13))
# Fields a PATCH may change, in the column order of update_contact_fields.
EDITABLE = (*PHONE_FIELDS, *PARAM_FIELDS, "timezone")
MAX_PHONE = 28
MAX_PARAM = 255


def normalize_phone(raw: str, region: str, field: str) -> str:
    """A number in E.164 by the import's rules (contact_rows: at most 28 characters as
    given, a valid number, no extension); InvalidInput naming ``field``."""
    text = raw.strip()
    if not text or len(text) > MAX_PHONE:
        raise InvalidInput(
            f"{field} must be 1-{MAX_PHONE} characters",
            details=[{"field": field, "message": "length"}],
        )
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed) or parsed.extension:
        reason = "has an extension" if parsed is not None and parsed.extension else "is invalid"
        raise InvalidInput(
            f"{field} {text!r} {reason} (default region {region})",
            details=[{"field": field, "message": f"number {reason}"}],
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_variants(raw: str, region: str) -> list[str]:
    """What a phone filter matches: the text as given, and its E.164 form if it has one."""
    text = raw.strip()
    variants = [text]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return variants
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 != text:
        variants.append(e164)
    return variants


async def get(conn: Any, contact_id: int) -> dict[str, Any]:
    contact = await store.get_contact(conn, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return contact


async def get_by_external_id(conn: Any, campaign_id: int, external_id: str) -> dict[str, Any]:
    await campaigns.get(conn, campaign_id)
    row = await conn.fetchrow(query("contact_by_external_id"), campaign_id, external_id)
    if row is None:
        raise NotFound(f"campaign {campaign_id} has no contact with external id {external_id!r}")
    return dict(row)


async def list_contacts(
    conn: Any,
    campaign_id: int,
    *,
    state: str | None = None,
    status: str | None = None,
    status_detail: str | None = None,
    phone: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    campaign = await campaigns.get(conn, campaign_id)
    phones = phone_variants(phone, campaign["default_region"]) if phone is not None else None
    rows = await conn.fetch(
        query("list_contacts"), campaign_id, after, state, status, status_detail, phones, limit
    )
    return [dict(r) for r in rows]


async def update(
    conn: Any, contact_id: int, changes: Mapping[str, Any], *, hash_key: str | None = None
) -> dict[str, Any]:
    """Change phones, params or the time zone. Phones are checked and stored in E.164
    (read with the campaign's default region); null empties a field (not phone1). An
    erased person's number is refused (``hash_key``: ``[privacy] hash_key``), as is any
    change of an erased contact."""
    contact = await _lock(conn, contact_id)
    if contact["erased_at"] is not None:
        raise Conflict("the contact was erased (GDPR): it holds no data", code="contact_erased")
    campaign = await campaigns.get(conn, contact["campaign_id"])
    values = {key: contact[key] for key in EDITABLE}
    for key, value in changes.items():
        if key in PHONE_FIELDS:
            if value is None or (isinstance(value, str) and not value.strip()):
                if key == "phone1":
                    raise InvalidInput(
                        "phone1 is required", details=[{"field": key, "message": "required"}]
                    )
                values[key] = None
            elif isinstance(value, str):
                values[key] = normalize_phone(value, campaign["default_region"], key)
            else:
                raise InvalidInput(f"{key} must be a string or null", details=[_field(key)])
        elif key in PARAM_FIELDS:
            if value is not None and (not isinstance(value, str) or len(value) > MAX_PARAM):
                raise InvalidInput(
                    f"{key} must be a string of at most {MAX_PARAM} characters, or null",
                    details=[_field(key)],
                )
            values[key] = value
        elif key == "timezone":
            values[key] = None if value is None else campaigns.check_timezone(value, "timezone")
        else:
            raise InvalidInput(
                f"{key} is not a field a contact update may change", details=[_field(key)]
            )
    new = [values[key] for key in PHONE_FIELDS if key in changes and values[key]]
    screen = await data_rights.suppression(conn, hash_key) if new else None
    if screen is not None and (gone := await data_rights.erased(conn, screen, new)):
        field = next(key for key in PHONE_FIELDS if values[key] in gone)
        raise InvalidInput(
            f"{field}: this number's owner was erased at their request (GDPR): it may not be "
            "stored again",
            code="number_erased",
            details=[{"field": field, "message": "erased number"}],
        )
    row = await conn.fetchrow(
        query("update_contact_fields"), contact_id, *(values[key] for key in EDITABLE)
    )
    return dict(row)


async def cancel(conn: Any, contact_id: int) -> tuple[dict[str, Any], bool]:
    """Close the contact as cancelled/failed/$cancelled; (contact, whether it changed).

    An open contact, or one waiting for an SMS reply, can be cancelled; cancelling
    a cancelled contact changes nothing; any other closed contact is a Conflict.
    A call in progress ends normally: its result is kept on the attempt.
    """
    contact = await _lock(conn, contact_id)
    if contact["state"] == "cancelled":
        return contact, False
    if contact["closed_at"] is not None and contact["state"] != "sms_sent":
        raise Conflict(
            f"contact is closed ({contact['state']}): reschedule it to reopen it",
            code="contact_closed",
            details={"state": contact["state"]},
        )
    row = await conn.fetchrow(query("cancel_contact"), contact_id)
    logger.info(
        "contact cancelled",
        extra={
            "action": "contact",
            "contact_id": contact_id,
            "campaign_id": contact["campaign_id"],
        },
    )
    return dict(row), True


async def reschedule(
    conn: Any, contact_id: int, *, at: datetime, step: int | None
) -> dict[str, Any]:
    """Reopen the contact, due at ``at``: at strategy step ``step`` (from 0), or
    with ``step`` None from the start (the strategy's first action).

    The strategy's caps count every attempt of the contact, those made before
    too: a contact that used up ``caps.per_contact`` gets one more attempt.
    """
    contact = await _lock(conn, contact_id)
    if contact["erased_at"] is not None:
        raise Conflict("the contact was erased (GDPR): it cannot be dialled", code="contact_erased")
    await store.hold_campaign_open(conn, contact["campaign_id"])
    if await store.contact_has_open_attempt(conn, contact_id):
        raise Conflict(
            "an attempt of this contact is in progress: reschedule it once it has ended",
            code="attempt_in_progress",
        )
    if contact["task"] is not None:
        # In a flow, a contact is rescheduled within its call task; elsewhere it moves.
        flow = await task_moves.campaign_flow(conn, contact["campaign_id"])
        task = flow.task(contact["task"]) if flow is not None else None
        if task is not None and task.type != "call":
            raise Conflict(
                f"the contact is in task {task.name} ({task.type}), not a call task: move it "
                f"with POST /api/v1/campaigns/{contact['campaign_id']}/moves",
                code="not_in_call_task",
            )
    channel: str | None = None
    slot: int | None = None
    if step is not None:
        strategy = await store.campaign_strategy(conn, contact["campaign_id"])
        if strategy is None:
            raise Conflict("the campaign has no strategy", code="no_strategy")
        if not 0 <= step < len(strategy.steps):
            raise InvalidInput(
                f"step must be from 0 to {len(strategy.steps) - 1} "
                f"(strategy {strategy.name} has {len(strategy.steps)} attempts)",
                details=[_field("step")],
            )
        planned = strategy.steps[step]
        channel = planned.channel
        # An empty phone slot falls back to phone 1, as the engine does.
        slot = planned.phone if contact[f"phone{planned.phone}"] else 1
    updated = await conn.fetchrow(query("reschedule_contact"), contact_id, at, step, channel, slot)
    logger.info(
        "contact rescheduled",
        extra={"action": "contact", "contact_id": contact_id, "step": step},
    )
    return dict(updated)


async def attempts(conn: Any, contact_id: int) -> list[dict[str, Any]]:
    await get(conn, contact_id)
    return await store.contact_attempts(conn, contact_id)


async def export_rows(conn: Any, campaign_id: int) -> AsyncIterator[Mapping[str, Any]]:
    """Every contact of the campaign with its last attempt, streamed by a cursor.

    Needs a transaction (a cursor lives in one)."""
    await campaigns.get(conn, campaign_id)
    async for row in conn.cursor(query("export_results"), campaign_id, prefetch=1000):
        yield row


async def _lock(conn: Any, contact_id: int) -> dict[str, Any]:
    row = await store.lock_contact(conn, contact_id)
    if row is None:
        raise NotFound(f"contact {contact_id} not found")
    return row


def _field(name: str) -> dict[str, str]:
    return {"field": name, "message": "invalid"}
