"""Calling windows: never a call outside the allowed hours in any zone the contact may be in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer_server.engine.calling_window import (
    WEEKDAYS,
    CallingWindow,
    CallingWindowError,
    is_allowed,
    next_allowed,
    parse_window,
    window_to_dict,
    zones_for_contact,
)

OFFICE = parse_window(
    {
        "hours": {day: ["09:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
        | {"sat": ["10:00-14:00"]},
        "blackout_dates": ["2026-12-25"],
        "timezone": "America/New_York",
    }
)
RING = timedelta(seconds=30)
NY = ZoneInfo("America/New_York")

# Zones with DST, half-hour DST (Lord Howe), none (Kolkata), southern hemisphere.
ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "UTC",
]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_inside_the_window_a_call_starts_now() -> None:
    at = local(NY, 2026, 11, 23, 10, 0)  # a Monday
    assert next_allowed(OFFICE, ["America/New_York"], at, RING) == at
    assert is_allowed(OFFICE, ["America/New_York"], at, RING)


def test_the_ring_time_must_fit_before_closing() -> None:
    at = local(NY, 2026, 11, 23, 19, 59, 45)
    assert next_allowed(OFFICE, ["America/New_York"], at, RING) == local(NY, 2026, 11, 24, 9, 0)
    last = local(NY, 2026, 11, 23, 19, 59, 30)
    assert next_allowed(OFFICE, ["America/New_York"], last, RING) == last


def test_sunday_waits_for_monday_and_holidays_are_skipped() -> None:
    sunday = local(NY, 2026, 11, 29, 12, 0)
    assert next_allowed(OFFICE, ["America/New_York"], sunday, RING) == local(NY, 2026, 11, 30, 9, 0)
    christmas_eve_late = local(NY, 2026, 12, 24, 21, 0)  # Thursday; Friday is a holiday
    assert next_allowed(OFFICE, ["America/New_York"], christmas_eve_late, RING) == local(
        NY, 2026, 12, 26, 10, 0
    )


def test_several_zones_allow_only_the_hours_allowed_in_all() -> None:
    # 09:00 in Los Angeles is 12:00 in New York: the later opening wins.
    at = local(NY, 2026, 11, 23, 9, 0)
    got = next_allowed(OFFICE, ["America/New_York", "America/Los_Angeles"], at, RING)
    assert got == local(NY, 2026, 11, 23, 12, 0)


def test_zone_comes_from_the_contact_then_the_number_then_the_campaign() -> None:
    assert zones_for_contact("Europe/Paris", ["+12025550100"], "UTC") == ["Europe/Paris"]
    assert zones_for_contact(None, ["+12025550100"], "UTC") == ["America/New_York"]
    assert zones_for_contact("Not/AZone", [None, "+12025550100"], "UTC") == ["America/New_York"]
    assert zones_for_contact(None, ["+61255550100"], "UTC") == ["Australia/Sydney"]
    # A US number without a recognised area code may be anywhere in the country.
    many = zones_for_contact(None, ["+18005550100"], "UTC")
    assert len(many) > 3 and "America/Los_Angeles" in many
    assert zones_for_contact(None, ["garbage"], "Europe/Berlin") == ["Europe/Berlin"]
    assert zones_for_contact(None, [], "Europe/Berlin") == ["Europe/Berlin"]


def test_no_window_within_the_horizon_is_none() -> None:
    closed = parse_window({"hours": {}})
    assert next_allowed(closed, ["UTC"], datetime(2026, 1, 1, tzinfo=UTC), RING) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hours": {"monday": ["09:00-17:00"]}}, "unknown weekdays monday"),
        ({"hours": {"mon": ["9-17"]}}, "calling_window.hours.mon: '9-17' is not HH:MM-HH:MM"),
        ({"hours": {"mon": ["22:00-02:00"]}}, "split a night shift"),
        ({"hours": {"mon": ["09:00-24:30"]}}, "within one day"),
        ({"hours": {"mon": "09:00-17:00"}}, "must be a list"),
        ({"blackout_dates": ["25/12/2026"]}, "is not a YYYY-MM-DD date"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"hourz": {}}, "unknown calling window keys: hourz"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(CallingWindowError, match=message):
        parse_window(data)


def test_window_round_trips() -> None:
    assert parse_window(window_to_dict(OFFICE)) == OFFICE


# --- properties --------------------------------------------------------------------------


def reference_allowed(window: CallingWindow, zone: ZoneInfo, moment: datetime) -> bool:
    """The window read directly from the wall clock, no interval arithmetic."""
    wall = moment.astimezone(zone)
    minute = wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60
    day = wall.date()
    if day not in window.blackout_dates:
        for start, end in window.hours[day.weekday()]:
            if start <= minute <= end:
                return True
    # Exactly midnight closes the previous day's range that ends at 24:00.
    if minute == 0:
        before = day - timedelta(days=1)
        if before not in window.blackout_dates:
            return any(end == 1440 for _, end in window.hours[before.weekday()])
    return False


def call_fits(window: CallingWindow, zones: list[str], start: datetime, ring: timedelta) -> bool:
    steps = int(ring.total_seconds() // 5)
    moments = [start + timedelta(seconds=5 * k) for k in range(steps + 1)] + [start + ring]
    return all(reference_allowed(window, ZoneInfo(z), m) for z in zones for m in moments)


minutes = st.integers(min_value=0, max_value=1440 // 15).map(lambda q: q * 15)


@st.composite
def windows(draw: st.DrawFn) -> CallingWindow:
    hours = []
    for _ in WEEKDAYS:
        ranges = []
        for _ in range(draw(st.integers(0, 2))):
            a, b = sorted(draw(st.lists(minutes, min_size=2, max_size=2, unique=True)))
            ranges.append((a, b))
        hours.append(ranges)
    data = {
        "hours": {
            day: [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in hours[i]]
            for i, day in enumerate(WEEKDAYS)
        },
        "blackout_dates": [
            d.isoformat()
            for d in draw(st.lists(st.dates(date(2025, 1, 1), date(2027, 12, 31)), max_size=3))
        ],
    }
    return parse_window(data)


# Moments near the DST changes of the zones above, and anywhere at all.
DST_DAYS = [
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 9, 27, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
]
moments = st.one_of(
    st.builds(
        lambda day, s: day + timedelta(seconds=s),
        st.sampled_from(DST_DAYS),
        st.integers(-2 * 86400, 2 * 86400),
    ),
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
)


@settings(max_examples=400, deadline=None)
@given(
    window=windows(),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    at=moments,
    ring_s=st.integers(15, 120),
)
def test_no_call_ever_starts_or_rings_outside_the_window_in_any_zone(
    window: CallingWindow, zones: list[str], at: datetime, ring_s: int
) -> None:
    ring = timedelta(seconds=ring_s)
    start = next_allowed(window, zones, at, ring)
    if start is None:
        return
    assert start >= at
    assert call_fits(window, zones, start, ring), (start, zones)


@settings(max_examples=200, deadline=None)
@given(
    window=windows(),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    at=moments,
    ring_s=st.integers(15, 120),
)
def test_the_first_allowed_moment_is_not_later_than_needed(
    window: CallingWindow, zones: list[str], at: datetime, ring_s: int
) -> None:
    ring = timedelta(seconds=ring_s)
    start = next_allowed(window, zones, at, ring, horizon_days=3)
    end = start if start is not None else at + timedelta(days=2)
    # Each zone's offset at both ends, in that zone's own time (a UTC moment read as
    # local time would miss a change that falls between them).
    offsets = {(z, m.astimezone(ZoneInfo(z)).utcoffset()) for z in zones for m in (at, end)}
    if len(offsets) > len(zones):
        return  # a DST change in between: the conservative reading may start later
    probe = at
    while probe < end and probe < at + timedelta(days=2):
        assert not call_fits(window, zones, probe, ring), (probe, start)
        probe += timedelta(minutes=7)


@settings(max_examples=200, deadline=None)
@given(
    window=windows(),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    at=moments,
    ring_s=st.integers(15, 120),
)
def test_a_window_is_always_open_only_if_any_call_may_start_at_any_time(
    window: CallingWindow, zones: list[str], at: datetime, ring_s: int
) -> None:
    # The claim does not work out a contact's zones for an always-open window: no zone
    # may matter then.
    ring = timedelta(seconds=ring_s)
    if window.always_open:
        assert next_allowed(window, zones, at, ring) == at
    always = CallingWindow.always(default_zone=window.default_zone)
    assert always.always_open
    assert next_allowed(always, zones, at, ring) == at


def test_a_window_with_a_gap_or_a_blackout_date_is_not_always_open() -> None:
    every_day = {day: ["00:00-24:00"] for day in WEEKDAYS}
    assert parse_window({"hours": every_day}).always_open
    assert parse_window({"hours": every_day | {"sun": ["00:00-12:00", "12:00-24:00"]}}).always_open
    assert not parse_window({"hours": every_day | {"sun": ["00:00-23:59"]}}).always_open
    assert not parse_window({"hours": every_day, "blackout_dates": ["2026-12-25"]}).always_open
    assert not OFFICE.always_open
