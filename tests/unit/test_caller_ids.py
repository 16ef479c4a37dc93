"""Caller-ID pools' pure part: a number's area, for local presence."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.engine.caller_ids import Area, area_of


@pytest.mark.parametrize(
    ("number", "area"),
    [
        ("+12025550143", Area(1, "+1202")),
        ("+14155550100", Area(1, "+1415")),
        ("+442079460000", Area(44, "+4420")),
        ("+447911123456", Area(44, "+44")),  # a mobile: no area, its country
        ("+4930123456", Area(49, "+4930")),
        ("+33142685300", Area(33, "+331")),
    ],
)
def test_the_area_is_the_country_and_the_area_code(number: str, area: Area) -> None:
    assert area_of(number) == area


def test_no_number_has_no_area() -> None:
    assert area_of("not a number") is None


regions = sorted(phonenumbers.SUPPORTED_REGIONS)


@given(st.sampled_from(regions))
def test_an_area_is_a_prefix_of_its_number(region: str) -> None:
    example = phonenumbers.example_number(region)
    if example is None:
        return
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    area = area_of(e164)
    assert area is not None
    assert e164.startswith(area.prefix)
    assert area.prefix.startswith(f"+{area.country_code}")
