"""Phone numbers as phonenumbers reads them, with the same results in less time.

``phonenumbers.is_valid_number`` first finds the number's region by classifying the
number against each region of its country code in turn (fixed line, mobile, toll free...
about ten regular expressions), then classifies it again for the region found, and only
asks whether the type is known: 14 us of the 38 us phonenumbers spends on a US number (a
quarter of an import's validation). :func:`is_valid_number`
answers the same question from the same metadata: a number's type is known exactly when
it matches the general pattern and at least one type's pattern of the right length, so it
tests that once per region, with the patterns of each length joined into one expression
compiled up front. tests/test_phones.py compares it with phonenumbers on many numbers.

Parsing and formatting stay phonenumbers' own (:func:`phonenumbers.parse`), with one
change of speed, not of result: :func:`use_fast_digit_normalisation` (below).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    PhoneMetadata,
    PhoneNumber,
    country_code_for_valid_region,
    national_significant_number,
    phonenumberutil,
)

__all__ = ["is_valid_number", "normalize_digits_only", "use_fast_digit_normalisation"]

# The number types _number_type_helper tries (phonenumberutil.py); mobile only when its
# pattern differs from fixed line's, as there.
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)
# Joining patterns into one alternation is only sound without back references or named
# groups (group numbers shift); phonenumbers' metadata has none, but a future version
# could: such patterns are then tried one by one.
_UNJOINABLE = re.compile(r"\\[1-9]|\(\?P|\(\?\(")


def is_valid_number(number: PhoneNumber) -> bool:
    """``phonenumbers.is_valid_number(number)``, computed from the same metadata."""
    code = number.country_code
    if code is None:
        return False  # no region has it: phonenumbers answers False too
    country = _COUNTRIES.get(code)
    if country is None:
        country = _COUNTRIES[code] = _Country(code)
    return country.is_valid(national_significant_number(number))


class _Types:
    """Whether a national number has a known type in one region's metadata:
    ``_number_type_helper(nsn, metadata) != PhoneNumberType.UNKNOWN``."""

    def __init__(self, metadata: Any) -> None:
        self._by_length: dict[int, tuple[re.Pattern[str] | None, list[re.Pattern[str]]]] = {}
        self._general = metadata.general_desc
        self._descs = [getattr(metadata, name) for name in _TYPES]
        if not metadata.same_mobile_and_fixed_line_pattern:
            self._descs.append(metadata.mobile)

    def known(self, national: str) -> bool:
        length = len(national)
        tests = self._by_length.get(length)
        if tests is None:
            tests = self._by_length[length] = self._tests(length)
        general, types = tests
        if general is None or not general.fullmatch(national):
            return False
        return any(pattern.fullmatch(national) for pattern in types)

    def _tests(self, length: int) -> tuple[re.Pattern[str] | None, list[re.Pattern[str]]]:
        """The general pattern and the type patterns a number of ``length`` digits can
        match (_is_number_matching_desc skips a description whose possible lengths
        exclude it, and one without a pattern never matches)."""
        general = _pattern(self._general, length)
        patterns = [p for p in (_pattern(d, length) for d in self._descs) if p is not None]
        sources = [p.pattern for p in patterns]
        if len(sources) > 1 and not any(_UNJOINABLE.search(s) for s in sources):
            patterns = [re.compile("|".join(f"(?:{s})" for s in sources))]
        return general, patterns


def _pattern(desc: Any, length: int) -> re.Pattern[str] | None:
    if desc is None:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    if not desc.national_number_pattern:
        return None
    return re.compile(desc.national_number_pattern)


class _Country:
    """is_valid_number for the numbers of one country calling code."""

    def __init__(self, code: int) -> None:
        regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
        # (leading digits pattern or None, the region's types, its validity types): see
        # _region_code_for_number_from_list and is_valid_number_for_region.
        self._regions: list[tuple[re.Pattern[str] | None, _Types, _Types | None]] = []
        self._single: _Types | None = None
        if not regions:
            return
        if len(regions) == 1:
            self._single = _validity(code, regions[0])
            return
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
            if metadata is None:
                continue
            leading = None
            if metadata.leading_digits is not None:
                leading = re.compile(metadata.leading_digits)
            types = _Types(metadata)
            self._regions.append((leading, types, _validity(code, region, metadata, types)))

    def is_valid(self, national: str) -> bool:
        if self._single is not None:
            return self._single.known(national)
        for leading, types, validity in self._regions:
            if leading is not None:
                if leading.match(national):
                    return validity is not None and validity.known(national)
            elif types.known(national):
                return validity is not None and (validity is types or validity.known(national))
        return False


def _validity(
    code: int, region: str, known: Any = None, known_types: _Types | None = None
) -> _Types | None:
    """What is_valid_number_for_region(number, region) checks for numbers of ``code``:
    None when it is always False. ``known_types`` are reused when they are for the same
    metadata (``known``)."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())
    if metadata is None:
        return None
    if region != REGION_CODE_FOR_NON_GEO_ENTITY and code != country_code_for_valid_region(region):
        return None
    if metadata is known and known_types is not None:
        return known_types
    return _Types(metadata)


_COUNTRIES: dict[int, _Country] = {}


# --- digit normalisation ------------------------------------------------------------------
#
# phonenumbers.parse normalises its input digit by digit in Python (normalize_digits_only:
# one unicodedata.digit call and one string concatenation per character), a third of its
# time. The same mapping, one character at a time, done by str.translate with a table
# filled from the same unicodedata.digit, gives the same string for every input: each
# character maps on its own and the results are concatenated in order, in both.
# tests/test_phones.py checks every Unicode code point.


class _DigitTable(dict[int, str | None]):
    """code point -> its ASCII digit, or None (dropped) for a character that is no digit."""

    def __missing__(self, code: int) -> str | None:
        value = unicodedata.digit(chr(code), -1)
        mapped = None if value == -1 else str(value)
        self[code] = mapped
        return mapped


class _KeptTable(dict[int, str]):
    """code point -> its ASCII digit; other characters unchanged (keep_non_digits)."""

    def __missing__(self, code: int) -> str:
        value = unicodedata.digit(chr(code), -1)
        mapped = chr(code) if value == -1 else str(value)
        self[code] = mapped
        return mapped


_DIGITS = _DigitTable()
_KEPT = _KeptTable()


def normalize_digits_only(number: str, keep_non_digits: bool = False) -> str:
    """``phonenumbers.normalize_digits_only``, by str.translate."""
    return str(number).translate(_KEPT if keep_non_digits else _DIGITS)


_REFERENCE_NORMALIZE = phonenumberutil.normalize_digits_only
# Characters of every kind the function sees: ASCII and other digits (Arabic-Indic,
# full width, Devanagari, superscripts), letters, punctuation, plus signs.
_PROBE = "0123456789+-() ./x#*;aZ\u0660\u0669\u06f5\uff10\uff19\u0966\u00b2\u2075\uff0b\u00a0"


def use_fast_digit_normalisation() -> bool:
    """Make phonenumbers.parse normalise digits with :func:`normalize_digits_only`.

    Process-wide and idempotent; the results of phonenumbers are unchanged. Done only
    when the installed phonenumbers' own function still gives the same answers on a probe
    (a future version could change it): returns whether the fast one is in use.
    """
    current = phonenumberutil.normalize_digits_only
    if current is normalize_digits_only:
        return True
    if current is not _REFERENCE_NORMALIZE:
        return False  # someone else replaced it: leave theirs
    for keep in (False, True):
        for text in (_PROBE, *_PROBE):
            if normalize_digits_only(text, keep) != current(text, keep):
                return False
    phonenumberutil.normalize_digits_only = normalize_digits_only
    return True
