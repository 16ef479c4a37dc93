"""Caller-ID pools: which of a campaign's numbers a call is placed from.

A campaign with a pool (``caller_id_pools``, its numbers in ``caller_ids``) calls from one
of its numbers instead of its one ``caller_id``, chosen in the claim, right before the
attempt row is written (``choose``), and written on the attempt with it (``claims.py``):

- ``round_robin``: the number used least recently (each in turn);
- ``least_used``: the number with the fewest calls today, then the least recent;
- ``daily_cap``: a number that placed that many calls today (the campaign's day, in its
  time zone) is not used again before tomorrow; when every number is at its cap, the
  contact waits for tomorrow (``Exhausted``);
- ``local_presence``: a number of the called number's area (the same E.164 prefix up to
  its area code, ``+1202``) is preferred, then one of its country, then any; the rotation
  applies among the preferred ones.

The claim holds the campaign row's lock (every claim of a campaign takes it), so two
claims never pick from one pool at once: the choice and its counting are one statement.
Which numbers are local is pure code (:func:`area_of`), from phonenumbers' metadata.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import phonenumbers

from ..db.queries import queries_of

query = queries_of(__name__)

ROTATIONS = ("round_robin", "least_used")


@dataclasses.dataclass(frozen=True)
class Area:
    """A number's country calling code and its E.164 prefix up to its area code (just
    the country code when it has no geographic area: a mobile, a non-geographic number)."""

    country_code: int
    prefix: str


def area_of(e164: str) -> Area | None:
    """The area of a number in E.164; None when it is no number."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    code = number.country_code or 0
    national = phonenumbers.national_significant_number(number)
    length = phonenumbers.length_of_geographical_area_code(number)
    if length == 0 and code == 1 and len(national) == 10:
        # NANP numbers of any kind have a 3-digit area code (a mobile too).
        length = 3
    return Area(code, f"+{code}{national[:length]}")


@dataclasses.dataclass(frozen=True)
class Exhausted:
    """Every number of the pool placed its daily cap of calls: try again at ``retry_at``."""

    retry_at: datetime


def pool_of(campaign: Any) -> Any:
    """The campaign's pool settings and its day, from the row the claim locked (its
    ``lock_campaign_lines``, read once per claim); None: no pool."""
    return campaign if campaign["has_caller_id_pool"] else None


async def choose(conn: Any, pool: Any, campaign_id: int, called: str) -> str | Exhausted | None:
    """The caller ID for a call to ``called`` (E.164), counted as used; None when the
    campaign has no pool (``pool_of`` gave None: its caller_id, or the daemon's, is used)."""
    if pool is None:
        return None
    area = area_of(called) if pool["local_presence"] else None
    picked = await conn.fetchval(
        query("pick_caller_id"),
        campaign_id,
        pool["today"],
        pool["daily_cap"],
        pool["rotation"] == "least_used",
        area.prefix if area else None,
        area.country_code if area else None,
    )
    if picked is None:
        return Exhausted(pool["tomorrow"])
    return str(picked)
