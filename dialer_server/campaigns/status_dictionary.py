"""The status dictionary: the named results agents can set (seed 003).

A global dictionary (``campaign_id`` None) and one per campaign. A campaign's
own entries are the ones its calls take (``dispositions.py``): a new campaign
gets a copy of every active global entry marked ``auto_add`` (a database
trigger, whatever creates the campaign), and global entries can be copied into
an existing campaign (``from_global``). Entries are keyed by name in their scope.

An entry used by a disposition is never deleted (Conflict): deactivate it, and
the history keeps its meaning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..db.queries import queries_of
from ..engine.disposition_effects import FINAL_ACTIONS, DispositionAction
from ..engine.strategy import DETAIL_PATTERN, MAX_DELAY_S, NAME_PATTERN
from ..errors import Conflict, InvalidInput, NotFound
from ..states import PREDEFINED_DETAILS
from . import operations as campaigns

query = queries_of(__name__)

logger = logging.getLogger(__name__)

# The writable fields, in the column order of insert/update_dictionary_entry.
FIELDS = (
    "name",
    "label",
    "description",
    "action",
    "status_detail",
    "delay_s",
    "active",
    "hidden",
    "auto_add",
)
_DEFAULTS: Mapping[str, Any] = {
    "description": None,
    "status_detail": None,
    "delay_s": 0,
    "active": True,
    "hidden": False,
    "auto_add": False,
}


def check_entry(entry: Mapping[str, Any], *, campaign_id: int | None) -> dict[str, Any]:
    """The entry's fields, complete and consistent; InvalidInput naming the field."""
    values = {**_DEFAULTS, **entry}
    if values.get("label") is None:
        values["label"] = values.get("name")
    name = values.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise _invalid("name", "name must be lowercase letters, digits, _ or - (1-63)")
    try:
        action = DispositionAction(str(values.get("action")))
    except ValueError:
        raise _invalid(
            "action", f"action must be one of {', '.join(a.value for a in DispositionAction)}"
        ) from None
    detail = values["status_detail"]
    if detail is not None:
        if action not in FINAL_ACTIONS:
            raise _invalid(
                "status_detail", "status_detail applies to success, declined and failed only"
            )
        if detail not in PREDEFINED_DETAILS and not DETAIL_PATTERN.fullmatch(detail):
            raise _invalid(
                "status_detail",
                "status_detail must be a predefined detail ($wrong_number...) or lowercase "
                "words (letters, digits, _ - and spaces, up to 100)",
            )
    delay = values["delay_s"]
    if delay and action is not DispositionAction.CALL_AGAIN:
        raise _invalid("delay_s", "delay_s applies to call_again only")
    if not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_S:
        raise _invalid("delay_s", f"delay_s must be from 0 to {MAX_DELAY_S}")
    if values["auto_add"] and campaign_id is not None:
        raise _invalid("auto_add", "auto_add applies to global entries only")
    values["action"] = action.value
    return {field: values[field] for field in FIELDS}


async def list_entries(
    conn: Any, campaign_id: int | None, *, active: bool | None, hidden: bool | None
) -> list[dict[str, Any]]:
    await _check_campaign(conn, campaign_id)
    rows = await conn.fetch(query("list_dictionary"), campaign_id, active, hidden)
    return [dict(r) for r in rows]


async def get_entry(conn: Any, campaign_id: int | None, name: str) -> dict[str, Any]:
    await _check_campaign(conn, campaign_id)
    row = await conn.fetchrow(query("get_dictionary_entry"), campaign_id, name)
    if row is None:
        raise NotFound(f"no status {name!r} in {_scope(campaign_id)}")
    return dict(row)


async def create_entry(
    conn: Any, campaign_id: int | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """A new entry; with ``from_global`` (campaigns only) a copy of that global
    entry, the other fields given overriding its own."""
    await _check_campaign(conn, campaign_id)
    fields = dict(fields)
    source_name = fields.pop("from_global", None)
    if source_name is not None:
        if campaign_id is None:
            raise _invalid("from_global", "from_global applies to campaign entries only")
        source = await conn.fetchrow(query("get_dictionary_entry"), None, source_name)
        if source is None:
            raise _invalid("from_global", f"no status {source_name!r} in the global dictionary")
        inherited = {f: source[f] for f in FIELDS if f != "auto_add"}
        fields = {**inherited, **fields}
    values = check_entry(fields, campaign_id=campaign_id)
    row = await conn.fetchrow(
        query("insert_dictionary_entry"), campaign_id, *(values[f] for f in FIELDS)
    )
    if row is None:
        raise Conflict(
            f"status {values['name']!r} exists in {_scope(campaign_id)}", code="name_taken"
        )
    logger.info(
        "status dictionary entry created",
        extra={"action": "dictionary", "campaign_id": campaign_id, "status": values["name"]},
    )
    return dict(row)


async def update_entry(
    conn: Any, campaign_id: int | None, name: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change an entry. Renaming keeps the history: dispositions store the name
    they were set with."""
    await _check_campaign(conn, campaign_id)
    row = await conn.fetchrow(query("lock_dictionary_entry"), campaign_id, name)
    if row is None:
        raise NotFound(f"no status {name!r} in {_scope(campaign_id)}")
    merged = {**{f: row[f] for f in FIELDS}, **changes}
    if "action" in changes and changes["action"] != row["action"]:
        # What only fits the old action goes, unless given again.
        for field in ("status_detail", "delay_s"):
            if field not in changes:
                merged[field] = _DEFAULTS[field]
    values = check_entry(merged, campaign_id=campaign_id)
    if await conn.fetchval(query("dictionary_name_taken"), campaign_id, values["name"], row["id"]):
        raise Conflict(
            f"status {values['name']!r} exists in {_scope(campaign_id)}", code="name_taken"
        )
    updated = await conn.fetchrow(
        query("update_dictionary_entry"), row["id"], *(values[f] for f in FIELDS)
    )
    return dict(updated)


async def delete_entry(conn: Any, campaign_id: int | None, name: str) -> None:
    """Delete an entry no disposition used; Conflict (deactivate it) otherwise."""
    await _check_campaign(conn, campaign_id)
    row = await conn.fetchrow(query("lock_dictionary_entry"), campaign_id, name)
    if row is None:
        raise NotFound(f"no status {name!r} in {_scope(campaign_id)}")
    if await conn.fetchval(query("dictionary_entry_in_use"), row["id"]):
        raise Conflict(
            f"status {name!r} was set for calls: deactivate it (PATCH active false) "
            "to keep their history",
            code="status_in_use",
        )
    await conn.execute(query("delete_dictionary_entry"), row["id"])
    logger.info(
        "status dictionary entry deleted",
        extra={"action": "dictionary", "campaign_id": campaign_id, "status": name},
    )


async def _check_campaign(conn: Any, campaign_id: int | None) -> None:
    if campaign_id is not None:
        await campaigns.get(conn, campaign_id)


def _scope(campaign_id: int | None) -> str:
    return "the global dictionary" if campaign_id is None else f"campaign {campaign_id}"


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details=[{"field": field, "message": "invalid"}])
