"""Do-not-call lists: the global one, and one per campaign.

Numbers are stored in E.164, as contacts' phones are, so the engine's check
before every call and SMS (an exact match) finds them. A number written without
a country code is read with the campaign's default region (the global list:
the region the caller gives, US by default).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import phonenumbers

from ..db.queries import queries_of
from ..errors import InvalidInput
from . import operations as campaigns

query = queries_of(__name__)

logger = logging.getLogger(__name__)

MAX_NUMBER = 28
GLOBAL_REGION = "US"


def normalize(raw: str, region: str, field: str = "number") -> str:
    """``raw`` in E.164; InvalidInput when it cannot be a phone number.

    Lenient on purpose (a possible number is enough): listing a number too
    many never calls anyone, refusing one might.
    """
    text = raw.strip()
    if not text or len(text) > MAX_NUMBER:
        raise InvalidInput(
            f"{field} must be 1-{MAX_NUMBER} characters",
            details=[{"field": field, "message": "length"}],
        )
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(
            f"{field} {text!r} is not a phone number: {exc}",
            details=[{"field": field, "message": "not a phone number"}],
        ) from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(
            f"{field} {text!r} is not a possible phone number (region {region})",
            details=[{"field": field, "message": "not a possible number"}],
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def region_of(conn: Any, campaign_id: int | None, region: str | None) -> str:
    """The region national numbers are read with (campaign must exist)."""
    if campaign_id is not None:
        campaign = await campaigns.get(conn, campaign_id)
        return region or str(campaign["default_region"])
    return region or GLOBAL_REGION


async def add(
    conn: Any,
    numbers: Sequence[str],
    *,
    campaign_id: int | None = None,
    reason: str | None = None,
    region: str | None = None,
) -> tuple[list[str], list[str]]:
    """List ``numbers``; (every number in E.164, the ones that were not listed yet)."""
    region = await region_of(conn, campaign_id, region)
    normalized = [normalize(n, region, f"numbers[{i}]") for i, n in enumerate(numbers)]
    unique = list(dict.fromkeys(normalized))
    added = [
        r["number"] for r in await conn.fetch(query("dnc_add_numbers"), campaign_id, unique, reason)
    ]
    if added:
        logger.info(
            "numbers added to a do-not-call list",
            extra={"action": "dnc", "campaign_id": campaign_id, "count": len(added)},
        )
    return unique, added


async def remove(
    conn: Any, number: str, *, campaign_id: int | None = None, region: str | None = None
) -> tuple[str, bool]:
    """Take ``number`` off one list; (its E.164 form, whether it was listed)."""
    region = await region_of(conn, campaign_id, region)
    e164 = normalize(number, region)
    removed = await conn.fetchval(query("dnc_remove_number"), e164, campaign_id) is not None
    if removed:
        logger.info(
            "number removed from a do-not-call list",
            extra={"action": "dnc", "campaign_id": campaign_id},
        )
    return e164, removed


async def check(
    conn: Any, number: str, *, campaign_id: int | None = None, region: str | None = None
) -> dict[str, Any]:
    """Whether ``number`` may not be called: globally, or (with a campaign) for it.

    ``entries``: the global entry and, without a campaign, every campaign's
    entry; with one, that campaign's. ``registries``: the national registries listing
    it (every campaign's calls heed them), each entry with its expiry (``active``:
    not expired).
    """
    region = await region_of(conn, campaign_id, region)
    e164 = normalize(number, region)
    entries = [dict(r) for r in await conn.fetch(query("dnc_entries_of_number"), e164, campaign_id)]
    if campaign_id is None:
        listed = any(e["campaign_id"] is None for e in entries)
    else:
        listed = bool(entries)
    registries = [dict(r) for r in await conn.fetch(query("dnc_registry_entries_of_number"), e164)]
    listed = listed or any(r["active"] for r in registries)
    return {"number": e164, "listed": listed, "entries": entries, "registries": registries}


async def list_numbers(
    conn: Any, *, campaign_id: int | None = None, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:

    if campaign_id is not None:
        await campaigns.get(conn, campaign_id)
    return [dict(r) for r in await conn.fetch(query("dnc_list"), campaign_id, after, limit)]
