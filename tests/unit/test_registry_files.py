"""A registry file's numbers: the same E.164 as phonenumbers gives, read fast; gzip undone."""

from __future__ import annotations

import gzip

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from dialer_server.campaigns.registry_files import Gunzip, NumberReader, copy_lines

KINDS = (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE)
FORMATS = (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164)


def examples() -> list[tuple[str, str, str]]:
    """(region, the number as written, its E.164) of every region's example numbers."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in KINDS:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            for fmt in FORMATS:
                out.append((region, phonenumbers.format_number(number, fmt), e164))
    return out


def test_every_regions_example_numbers_read_as_phonenumbers_reads_them() -> None:
    readers: dict[str, NumberReader] = {}
    wrong = []
    for region, written, e164 in examples():
        reader = readers.setdefault(region, NumberReader(region))
        got = reader.number(written)
        if got != e164:
            wrong.append((region, written, got, e164))
    assert not wrong, wrong[:20]
    # Most regions take the fast path; those whose national numbers need pattern rules
    # are read by phonenumbers itself.
    fast = [r for r in readers.values() if r.fast]
    assert len(fast) > 180
    assert not NumberReader("AR").fast and NumberReader("US").fast and NumberReader("GB").fast


@given(st.integers(2_000_000_000, 9_999_999_999))
def test_a_us_registry_line_is_its_number_with_plus_one(national: int) -> None:
    reader = NumberReader("US")
    text = str(national)
    assert reader.number(text) == "+1" + text
    assert reader.number("1" + text) == "+1" + text
    assert reader.number(f"({text[:3]}) {text[3:6]}-{text[6:]}") == "+1" + text
    assert reader.number("011 1 " + text) == "+1" + text


def test_lines_csv_headers_comments_and_problems() -> None:
    reader = NumberReader("GB")
    text = (
        "number;source\n"
        "# TPS 2025-06\n"
        "07911 123456;tps\n"
        '"020 7946 0001",tps\r\n'
        "\n"
        "555\n"
        "+44 20 7946 0002\n"
        "call me maybe\n"
        "0044207946"
    )
    out = reader.numbers(text[:50]) + reader.numbers(text[50:]) + reader.end()
    assert out == ["+447911123456", "+442079460001", "+442079460002", "+44207946"]
    assert (reader.read, reader.rejected) == (6, 2)
    assert [(p.line, p.text) for p in reader.problems] == [(6, "555"), (8, "call me maybe")]
    assert copy_lines(out[:2]) == b"+447911123456\n+442079460001\n"
    assert copy_lines([]) == b""


def test_a_header_is_skipped_only_first() -> None:
    reader = NumberReader("US")
    assert reader.numbers("phone\n2025550143\nphone\n") == ["+12025550143"]
    assert reader.rejected == 1


def test_gzip_is_undone_as_it_comes_several_members_too() -> None:
    data = gzip.compress(b"2025550143\n") + gzip.compress(b"2025550144\n")
    unzip = Gunzip()
    out = b"".join(unzip.feed(data[i : i + 7]) for i in range(0, len(data), 7)) + unzip.finish()
    assert out == b"2025550143\n2025550144\n"
    plain = Gunzip()
    assert plain.feed(b"2") + plain.feed(b"025\n") + plain.finish() == b"2025\n"
    cut = Gunzip()
    cut.feed(gzip.compress(b"2025550143\n" * 100)[:-10])
    with pytest.raises(ValueError, match="cut short"):
        cut.finish()


def test_an_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="region"):
        NumberReader("XX")
