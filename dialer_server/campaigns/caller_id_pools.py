"""A campaign's caller-ID pool: its numbers and how they rotate (what the API and CLI set).

The engine picks from it (``engine/caller_ids.py``). Numbers are stored in E.164 with
their country code and area prefix (for local presence); setting the pool again keeps
the usage counts of the numbers it keeps, and drops the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..db.queries import queries_of
from ..engine.caller_ids import ROTATIONS, area_of
from ..errors import InvalidInput, NotFound
from . import do_not_call
from . import operations as campaigns

query = queries_of(__name__)

MAX_NUMBERS = 1000


async def get(conn: Any, campaign_id: int) -> dict[str, Any]:
    await campaigns.get(conn, campaign_id)
    pool = await conn.fetchrow(query("get_caller_id_pool"), campaign_id)
    if pool is None:
        raise NotFound(
            f"campaign {campaign_id} has no caller-ID pool: it calls from its caller_id "
            "(or the daemon's [dialing] caller_id)"
        )
    numbers = [dict(r) for r in await conn.fetch(query("list_caller_ids"), campaign_id)]
    return {**dict(pool), "today": pool["today"].isoformat(), "numbers": numbers}


def check_numbers(values: Any) -> list[tuple[str, int, str]]:
    """(E.164, country code, area prefix) of each number; InvalidInput naming a bad one."""
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_NUMBERS:
        raise InvalidInput(
            f"numbers must list 1 to {MAX_NUMBERS} numbers",
            details=[{"field": "numbers", "message": "invalid"}],
        )
    out: dict[str, tuple[str, int, str]] = {}
    for index, raw in enumerate(values):
        field = f"numbers[{index}]"
        if not isinstance(raw, str) or not raw.strip().startswith("+"):
            raise InvalidInput(
                f"{field} must be a number in E.164 (+ and the country code)",
                details=[{"field": field, "message": "not E.164"}],
            )
        e164 = do_not_call.normalize(raw, "US", field)
        area = area_of(e164)
        if area is None:  # pragma: no cover - normalize refused it already
            raise InvalidInput(f"{field} is not a phone number")
        out.setdefault(e164, (e164, area.country_code, area.prefix))
    return list(out.values())


async def put(conn: Any, campaign_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """Set the campaign's pool (its numbers, rotation, daily cap, local presence)."""
    await campaigns.get(conn, campaign_id)
    numbers = check_numbers(body.get("numbers"))
    rotation = body.get("rotation", "round_robin")
    if rotation not in ROTATIONS:
        raise InvalidInput(
            f"rotation must be one of {', '.join(ROTATIONS)}",
            details=[{"field": "rotation", "message": "invalid"}],
        )
    cap = body.get("daily_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise InvalidInput(
            "daily_cap must be a number of calls >= 1, or null for none",
            details=[{"field": "daily_cap", "message": "invalid"}],
        )
    await conn.execute(
        query("put_caller_id_pool"),
        campaign_id,
        rotation,
        cap,
        bool(body.get("local_presence", False)),
    )
    await conn.execute(
        query("put_caller_ids"),
        campaign_id,
        [n for n, _, _ in numbers],
        [c for _, c, _ in numbers],
        [p for _, _, p in numbers],
    )
    return await get(conn, campaign_id)


async def delete(conn: Any, campaign_id: int) -> dict[str, Any] | None:
    """Remove the pool (the campaign calls from its caller_id again); what it was."""
    await campaigns.get(conn, campaign_id)
    pool = await conn.fetchrow(query("get_caller_id_pool"), campaign_id)
    if pool is None:
        return None
    before = await get(conn, campaign_id)
    await conn.execute(query("delete_caller_id_pool"), campaign_id)
    return before
