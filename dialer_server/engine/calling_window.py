"""When a contact may be called: allowed hours in the contact's local time.

Pure logic: the clock is passed in, zone data comes from the standard library
(zoneinfo) and phonenumbers. A campaign allows hours per weekday, e.g. Mon-Fri
09:00-20:00, and blacks out dates (holidays). They apply in the *contact's*
local time, and when a number may be in several zones (a country with several,
a number without an area code), only the hours allowed in all of them.

A call may start at ``t`` only if the whole ring time ``[t, t + ring]`` lies
inside the window, so a call never rings past closing time. Around DST changes
the window is read conservatively: a wall-clock time that happens twice opens
at its second occurrence and closes at its first; one that does not exist
(spring forward) opens at the later reading and closes at the earlier one. A
call can lose a few minutes to that, never land outside the window.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Far enough to find next Monday's window after a long holiday.
HORIZON_DAYS = 14
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_UNKNOWN_ZONE = "Etc/Unknown"

Interval = tuple[datetime, datetime]


class CallingWindowError(ValueError):
    """A calling window definition is invalid (the message names the field)."""


@dataclasses.dataclass(frozen=True)
class CallingWindow:
    # Per weekday (0 = Monday), allowed [start, end) wall-clock ranges in minutes of
    # the day; end may be 1440 (midnight at the end of the day).
    hours: tuple[tuple[tuple[int, int], ...], ...]
    blackout_dates: frozenset[date] = frozenset()
    # For contacts whose zone cannot be told from their data.
    default_zone: str = "UTC"

    @classmethod
    def always(cls, default_zone: str = "UTC") -> CallingWindow:
        return cls(hours=tuple(((0, 1440),) for _ in WEEKDAYS), default_zone=default_zone)

    @functools.cached_property
    def always_open(self) -> bool:
        """Every hour of every day, no blackout date: a call may start at any time in
        any zone, so a contact's zones need not be known (they cost a phone number's
        parse and type check, tens of microseconds, for each contact claimed)."""
        return not self.blackout_dates and all(day == ((0, 1440),) for day in self.hours)


def parse_window(data: Mapping[str, object]) -> CallingWindow:
    """Read ``{"hours": {"mon": ["09:00-20:00"], ...}, "blackout_dates": [...],
    "timezone": "Europe/Berlin"}``. A weekday left out allows no calls."""
    unknown = set(data) - {"hours", "blackout_dates", "timezone"}
    if unknown:
        raise CallingWindowError(f"unknown calling window keys: {', '.join(sorted(unknown))}")
    hours_raw = data.get("hours", {})
    if not isinstance(hours_raw, Mapping):
        raise CallingWindowError("calling_window.hours must be an object of weekdays")
    bad_days = set(hours_raw) - set(WEEKDAYS)
    if bad_days:
        raise CallingWindowError(
            f"calling_window.hours: unknown weekdays {', '.join(sorted(map(str, bad_days)))} "
            f"(use {', '.join(WEEKDAYS)})"
        )
    days: list[tuple[tuple[int, int], ...]] = []
    for day in WEEKDAYS:
        ranges = hours_raw.get(day, [])
        if not isinstance(ranges, list):
            raise CallingWindowError(f"calling_window.hours.{day} must be a list of HH:MM-HH:MM")
        days.append(_merge([_parse_range(r, f"calling_window.hours.{day}") for r in ranges]))
    blackout: set[date] = set()
    raw_dates = data.get("blackout_dates", [])
    if not isinstance(raw_dates, list):
        raise CallingWindowError("calling_window.blackout_dates must be a list of YYYY-MM-DD")
    for item in raw_dates:
        try:
            blackout.add(date.fromisoformat(str(item)))
        except ValueError:
            raise CallingWindowError(
                f"calling_window.blackout_dates: {item!r} is not a YYYY-MM-DD date"
            ) from None
    zone = str(data.get("timezone", "UTC"))
    if not valid_zone(zone):
        raise CallingWindowError(f"calling_window.timezone: unknown time zone {zone!r}")
    return CallingWindow(tuple(days), frozenset(blackout), zone)


def window_to_dict(window: CallingWindow) -> dict[str, object]:
    return {
        "hours": {
            day: [f"{_hhmm(a)}-{_hhmm(b)}" for a, b in window.hours[i]]
            for i, day in enumerate(WEEKDAYS)
            if window.hours[i]
        },
        "blackout_dates": sorted(d.isoformat() for d in window.blackout_dates),
        "timezone": window.default_zone,
    }


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zones_for_contact(
    timezone: str | None, phones: Iterable[str | None], default_zone: str
) -> list[str]:
    """The zones a contact may be in: its explicit zone, else its number's zones.

    Only the first usable number counts: the one dialled is usually phone 1, and
    intersecting every phone's zones would close the window for a contact with a
    foreign second number.
    """
    if timezone and valid_zone(timezone):
        return [timezone]
    for phone in phones:
        if not phone:
            continue
        try:
            number = phonenumbers.parse(phone, None)
        except phonenumbers.NumberParseException:
            continue
        zones = [
            z
            for z in number_timezones.time_zones_for_number(number)
            if z != _UNKNOWN_ZONE and valid_zone(z)
        ]
        if zones:
            return sorted(set(zones))
        break
    return [default_zone]


def next_allowed(
    window: CallingWindow,
    zones: Sequence[str],
    at: datetime,
    ring: timedelta,
    horizon_days: int = HORIZON_DAYS,
) -> datetime | None:
    """The earliest time >= ``at`` a call may start in every zone, or None within the horizon."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    allowed: list[Interval] | None = None
    for zone in zones or [window.default_zone]:
        starts = _start_intervals(window, ZoneInfo(zone), at, ring, horizon_days)
        allowed = starts if allowed is None else _intersect(allowed, starts)
    for start, end in allowed or []:
        if end < at:
            continue
        return max(start, at)
    return None


def is_allowed(window: CallingWindow, zones: Sequence[str], at: datetime, ring: timedelta) -> bool:
    return next_allowed(window, zones, at, ring, horizon_days=1) == at


# --- internals -------------------------------------------------------------------------


def _parse_range(text: object, path: str) -> tuple[int, int]:
    match = _RANGE.match(str(text))
    if not match:
        raise CallingWindowError(f"{path}: {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440 or end <= start:
        raise CallingWindowError(
            f"{path}: {text!r} must be a range within one day, start before end "
            "(split a night shift into two days)"
        )
    return start, end


def _merge(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _utc(day: date, minute: int, zone: ZoneInfo, *, opening: bool) -> datetime:
    """A local wall-clock time as UTC, read conservatively around DST changes."""
    if minute == 1440:
        day, minute = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    readings = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    return max(readings) if opening else min(readings)


def _start_intervals(
    window: CallingWindow, zone: ZoneInfo, at: datetime, ring: timedelta, horizon_days: int
) -> list[Interval]:
    """When a call may start in one zone: the window's UTC intervals, less the ring time."""
    first_day = at.astimezone(zone).date() - timedelta(days=1)
    return list(_day_intervals(window, zone, first_day, ring, horizon_days))


# The scheduler asks for every contact it claims, and a campaign's contacts share a
# handful of zones: the intervals depend on the local day, not on the instant.
@functools.lru_cache(maxsize=4096)
def _day_intervals(
    window: CallingWindow, zone: ZoneInfo, first_day: date, ring: timedelta, horizon_days: int
) -> tuple[Interval, ...]:
    raw: list[Interval] = []
    for offset in range(horizon_days + 2):
        day = first_day + timedelta(days=offset)
        if day in window.blackout_dates:
            continue
        for start, end in window.hours[day.weekday()]:
            utc_start = _utc(day, start, zone, opening=True)
            utc_end = _utc(day, end, zone, opening=False)
            if utc_end > utc_start:
                raw.append((utc_start, utc_end))
    raw.sort()
    merged: list[Interval] = []
    for opens, closes in raw:
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return tuple((opens, closes - ring) for opens, closes in merged if closes - ring >= opens)


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start <= end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out
