"""phones.is_valid_number answers exactly as phonenumbers.is_valid_number, for every number."""

from __future__ import annotations

import random
import sys

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumber, PhoneNumberType, phonenumberutil
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS

from dialer_server.contacts.phones import (
    _REFERENCE_NORMALIZE,
    is_valid_number,
    normalize_digits_only,
    use_fast_digit_normalisation,
)
from dialer_server.contacts.rows import RowChecker

CALLING_CODES = sorted(COUNTRY_CODE_TO_REGION_CODE)
TYPES = [t for t in vars(PhoneNumberType).values() if isinstance(t, int)]


def _same(number: PhoneNumber) -> None:
    assert is_valid_number(number) == phonenumbers.is_valid_number(number), number


def _examples() -> list[PhoneNumber]:
    numbers = []
    for region in sorted(SUPPORTED_REGIONS):
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(example)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            numbers.append(example)
    return numbers


def _variant(number: PhoneNumber, rnd: random.Random) -> PhoneNumber:
    """A number near a valid one: same country, its leading digits kept, the rest
    random, sometimes a digit more or less: where valid and invalid numbers meet."""
    digits = str(number.national_number)
    keep = rnd.randint(0, len(digits))
    length = max(1, len(digits) + rnd.choice((-1, 0, 0, 0, 1)))
    tail = "".join(rnd.choice("0123456789") for _ in range(max(0, length - keep)))
    national = (digits[:keep] + tail)[:length] or "0"
    variant = PhoneNumber(country_code=number.country_code, national_number=int(national))
    if number.italian_leading_zero:
        variant.italian_leading_zero = True
        variant.number_of_leading_zeros = number.number_of_leading_zeros
    return variant


def test_every_example_number_of_every_region_and_type() -> None:
    examples = _examples()
    assert len(examples) > 1000
    assert all(phonenumbers.is_valid_number(n) for n in examples)
    for number in examples:
        _same(number)


def test_numbers_near_the_examples() -> None:
    rnd = random.Random(20261123)
    examples = _examples()
    valid = 0
    for _ in range(60):
        for number in examples:
            variant = _variant(number, rnd)
            _same(variant)
            valid += phonenumbers.is_valid_number(variant)
    # Both answers are well represented: the comparison is not all "invalid".
    assert valid > 10_000


def test_every_north_american_region_is_told_apart() -> None:
    # Country code 1 is shared by the US, Canada and the Caribbean: the region is found
    # from leading digits or by classifying the number, as in phonenumbers.
    rnd = random.Random(1)
    for area in range(200, 1000):
        for _ in range(20):
            national = int(f"{area}{rnd.randint(2_000_000, 9_999_999)}")
            _same(PhoneNumber(country_code=1, national_number=national))


@settings(max_examples=3000)
@given(
    code=st.one_of(st.sampled_from(CALLING_CODES), st.integers(0, 999)),
    national=st.integers(0, 10**17),
    leading_zeros=st.integers(0, 3),
)
def test_any_country_code_and_digits(code: int, national: int, leading_zeros: int) -> None:
    number = PhoneNumber(country_code=code, national_number=national)
    if leading_zeros:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = leading_zeros
    _same(number)


def _reference(raw: str, region: str) -> str | None:
    """What an import must store for ``raw``: phonenumbers' parse, validity, E.164, all
    phonenumbers' own (its own digit normalisation too, whatever an import installed)."""
    fast = phonenumberutil.normalize_digits_only
    phonenumberutil.normalize_digits_only = _REFERENCE_NORMALIZE
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    finally:
        phonenumberutil.normalize_digits_only = fast
    if not phonenumbers.is_valid_number(number) or number.extension:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


TRICKY = [
    "+1 (202) 555-0123",
    "202-555-0123",
    "(202) 555 0123",
    "2025550123",
    "1 202 555 0123",
    "011 44 20 7946 0958",
    "+44 20 7946 0958",
    "+44 (0) 20 7946 0958",
    "00 44 20 7946 0958",
    "+49 30 1234567",
    "+39 06 1234 5678",
    "+39 3123456789",
    "+33 1 23 45 67 89",
    "+1 268 464 1234",
    "+1 876 555 0123",
    "+1 800 FLOWERS",
    "1-800-GOT-JUNK",
    "+1 202 555 0123 ext. 12",
    "202 555 0123 x12",
    "202 555 0123#",
    "tel:+1-202-555-0123",
    "tel:202-555-0123;phone-context=+1",
    "+800 1234 5678",
    "+882 1234 5678",
    "+979 123456789",
    "\uff0b\uff11 \uff12\uff10\uff12 \uff15\uff15\uff15 \uff10\uff11\uff12\uff13",  # full width
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic
    "+1 202 555 01234",
    "+1 202 555 012",
    "555-0123",
    "911",
    "+",
    "++1 202 555 0123",
    "+0 202 555 0123",
    "+999 123456",
    "(((202))) 555-0123",
    "202.555.0123",
    "202/555/0123",
    "+1 202 555 0123 / +1 202 555 0199",
    "+7 495 123 45 67",
    "8 495 123 45 67",
    "+86 10 1234 5678",
    "+61 2 1234 5678",
    "+55 11 91234 5678",
]
ALPHABET = "0123456789+-() ./x#*;extTEL:ABCZ\u0660\u0661\u0662\uff13\uff14"


def _check_like_an_import(raws: list[str], region: str) -> None:
    checker = RowChecker(region)
    for raw in raws:
        stored, reason = checker.phone(raw)
        assert stored == _reference(raw, region), raw
        assert (stored is None) == (reason is not None), raw


def test_tricky_inputs_are_stored_as_phonenumbers_reads_them() -> None:
    for region in ("US", "GB", "DE", "IT", "RU", "AG", "BR"):
        _check_like_an_import(TRICKY, region)


@settings(max_examples=2000)
@given(
    raw=st.one_of(
        st.text(ALPHABET, min_size=1, max_size=28),
        st.builds(
            lambda prefix, digits, sep: prefix + sep.join(digits),
            st.sampled_from(["", "+", "+1", "+44", "00", "011", "0", "1"]),
            st.lists(st.text("0123456789", min_size=1, max_size=4), min_size=1, max_size=6),
            st.sampled_from(["", " ", "-", ".", ") "]),
        ),
    ),
    region=st.sampled_from(["US", "GB", "DE", "IT", "FR", "AG", "CA", "IN"]),
)
def test_generated_inputs_are_stored_as_phonenumbers_reads_them(raw: str, region: str) -> None:
    _check_like_an_import([raw], region)


# --- digit normalisation ----------------------------------------------------------------------


def test_digit_normalisation_maps_every_code_point_as_phonenumbers_does() -> None:
    # Both map each character on its own and join the results in order, so the same
    # answer for every single character is the same answer for every string.
    for keep in (False, True):
        mismatches = [
            code
            for code in range(sys.maxunicode + 1)
            if normalize_digits_only(chr(code), keep) != _REFERENCE_NORMALIZE(chr(code), keep)
        ]
        assert mismatches == [], [hex(c) for c in mismatches[:10]]


@settings(max_examples=500)
@given(text=st.text(max_size=40), keep=st.booleans())
def test_digit_normalisation_of_strings(text: str, keep: bool) -> None:
    assert normalize_digits_only(text, keep) == _REFERENCE_NORMALIZE(text, keep)


def test_an_import_uses_the_fast_normalisation_once_checked() -> None:
    RowChecker("US")
    assert phonenumberutil.normalize_digits_only is normalize_digits_only
    assert use_fast_digit_normalisation()
