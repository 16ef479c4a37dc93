"""Contact rows: the columns of an import and the validation of each row (pure code, no I/O).

A row is a mapping of column name to value: ``external_id``, ``phone1``..``phone5``,
``param1``..``param12``, ``timezone``. A missing key, ``None`` and an empty or all-blank
string all mean "empty"; values are stripped of surrounding whitespace. The rules:

- ``phone1`` is required, ``phone2``..``phone5`` are optional. A phone is at most 28
  characters as given, and must be a valid number (``phonenumbers``) read with the
  campaign's default region when it has no country code; it is stored in E.164
  (``+12025550123``). A number with an extension is refused: the dialer cannot dial one.
- ``param1``..``param12`` are free text of at most 255 characters.
- ``timezone``, when given, is an IANA zone name (``Europe/Berlin``).
- ``external_id`` (the CRM's id, at most 255 characters) is optional. The first row
  carrying an id claims it, valid or not: every later row of the same import with that id
  is rejected as a duplicate naming the first row. Rows without an id never conflict.
- An unknown column rejects the row that has it (files are checked once, at their header:
  see :func:`check_header`), so a CRM's typo never drops data silently.
- No value may hold a NUL character (PostgreSQL text cannot store one).

Two keys are reserved for readers of files: ``$row`` (the row number the user sees) and
``$error`` (a problem found while reading the row: broken quoting, wrong encoding...).

Every problem of a bad row is reported, one :class:`RowError` each, and the row is not
stored; the other rows are not affected.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from ..errors import DialerError
from .phones import is_valid_number, use_fast_digit_normalisation

PHONE_COLUMNS = tuple(f"phone{i}" for i in range(1, 6))
PARAM_COLUMNS = tuple(f"param{i}" for i in range(1, 13))
# The order of a validated record, and of the columns it is copied into.
COLUMNS = ("external_id", *PHONE_COLUMNS, *PARAM_COLUMNS, "timezone")
REQUIRED_COLUMNS = ("phone1",)

MAX_PHONE_CHARS = 28
MAX_PARAM_CHARS = 255
MAX_EXTERNAL_ID_CHARS = 255

# Reserved keys, set by the file readers.
ROW_KEY = "$row"
ERROR_KEY = "$error"

_KNOWN_KEYS = frozenset((*COLUMNS, ROW_KEY, ERROR_KEY))
_COLUMN_LIST = "external_id, phone1..phone5, param1..param12, timezone"
# Numbers seen during one import, kept to parse a repeated number once. Bounded: a
# file of unique numbers must not grow it without end.
_PHONE_CACHE_SIZE = 100_000

# A validated row: the values of COLUMNS, in that order.
Record = tuple[str | None, ...]


class ImportFileError(DialerError):
    """The file cannot be imported."""


@dataclasses.dataclass(frozen=True, slots=True)
class RowError:
    """One problem of one rejected row.

    ``row`` is the row number the user sees: in a CSV file the line the record starts on
    (the header is line 1, so the first data row is 2), in an XLSX sheet the sheet's row
    number (same convention), in a list of rows (a JSON batch) the 1-based position.
    ``field`` is the column at fault, or None when the row as a whole is (its encoding,
    its quoting, its number of fields).
    """

    row: int
    field: str | None
    reason: str


@dataclasses.dataclass
class Batch:
    """What :meth:`RowValidator.validate` made of some rows: the good rows' records (and
    their row numbers, in ``rows``), the bad rows' problems."""

    records: list[Record]
    errors: list[RowError]
    rows: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Checked:
    """What :meth:`RowChecker.check` made of some rows, before duplicates are known."""

    # (row number, record) of each row without a problem of its own.
    records: list[tuple[int, Record]]
    errors: list[RowError]
    # (row number, external id) of every row that names one, good or bad, in order.
    claims: list[tuple[int, str]]


def check_header(names: Sequence[str]) -> list[str]:
    """The column names of a file's header, normalised (stripped, lower case).

    Empty names are kept as "" (a column without a name, usually a trailing delimiter:
    its cells must be empty). Raises ImportFileError for unknown or repeated columns and
    when phone1 is missing: better to refuse the file than to drop a column silently.
    """
    normalised = [name.strip().lower() for name in names]
    if not any(normalised):
        raise ImportFileError("the header row is empty: the first row must name the columns")
    unknown = [n for n in normalised if n and n not in COLUMNS]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hints.append(f"{_show(name)}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise ImportFileError(
            f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: "
            f"the first row must name the columns, among {_COLUMN_LIST}"
        )
    repeated = sorted({n for n in normalised if n and normalised.count(n) > 1})
    if repeated:
        raise ImportFileError(f"column {', '.join(repeated)} appears more than once")
    missing = [n for n in REQUIRED_COLUMNS if n not in normalised]
    if missing:
        raise ImportFileError(f"no {', '.join(missing)} column: every contact needs phone1")
    return normalised


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone known to this machine."""
    return name in _time_zones()


class RowChecker:
    """Checks rows one by one: everything but duplicates (see :class:`ExternalIds`).

    Holds a cache of parsed phone numbers; no other state, so chunks of rows can be
    checked in any order, in other processes (:func:`check_chunk`).
    """

    def __init__(self, default_region: str) -> None:
        self.default_region = default_region
        self._phones: dict[str, tuple[str | None, str | None]] = {}
        # Same results, a third less time parsing (in worker processes too).
        use_fast_digit_normalisation()

    def check(self, rows: Iterable[Mapping[str, Any]], first_position: int = 1) -> Checked:
        """Check ``rows``; ``first_position`` is the 1-based position of the first of them
        in the whole import (a row's number when it carries no ``$row``)."""
        records: list[tuple[int, Record]] = []
        errors: list[RowError] = []
        claims: list[tuple[int, str]] = []
        known = _KNOWN_KEYS
        phone = self.phone
        for position, row in enumerate(rows, first_position):
            get = row.get
            number = _row_number(get(ROW_KEY), position)
            bad = len(errors)
            if not known.issuperset(row):
                errors.extend(
                    RowError(number, str(key), f"unknown column: the columns are {_COLUMN_LIST}")
                    for key in row
                    if key not in known
                )
            problem = get(ERROR_KEY)
            if problem:
                errors.append(RowError(number, None, str(problem)))

            values: list[str | None] = []
            for name in COLUMNS:
                value = get(name)
                if not value:
                    values.append(None)
                    continue
                if type(value) is not str:
                    if type(value) is int:
                        value = str(value)
                    else:
                        errors.append(
                            RowError(number, name, f"must be text, not {type(value).__name__}")
                        )
                        values.append(None)
                        continue
                value = value.strip()
                if not value:
                    values.append(None)
                    continue
                if "\x00" in value or (not value.isascii() and not _encodable(value)):
                    errors.append(RowError(number, name, "holds a character text cannot hold"))
                    values.append(None)
                    continue
                values.append(value)

            external_id = values[0]
            if external_id is not None:
                claims.append((number, external_id))
                if len(external_id) > MAX_EXTERNAL_ID_CHARS:
                    errors.append(_too_long(number, "external_id", external_id))
            if values[1] is None and not problem:
                errors.append(RowError(number, "phone1", "phone1 is required"))
            for slot in range(1, 6):
                raw = values[slot]
                if raw is None:
                    continue
                if len(raw) > MAX_PHONE_CHARS:
                    errors.append(_too_long(number, COLUMNS[slot], raw))
                    continue
                e164, reason = phone(raw)
                if reason is not None:
                    errors.append(RowError(number, COLUMNS[slot], reason))
                values[slot] = e164
            for index in range(6, 18):
                param = values[index]
                if param is not None and len(param) > MAX_PARAM_CHARS:
                    errors.append(_too_long(number, COLUMNS[index], param))
            zone = values[18]
            if zone is not None and not is_time_zone(zone):
                errors.append(
                    RowError(number, "timezone", f"{_show(zone)} is not an IANA time zone")
                )
            if len(errors) == bad:
                records.append((number, tuple(values)))
        return Checked(records, errors, claims)

    def phone(self, raw: str) -> tuple[str | None, str | None]:
        """(E.164 number, None) for a valid number, else (None, the reason)."""
        cached = self._phones.get(raw)
        if cached is not None:
            return cached
        result = _parse_phone(raw, self.default_region)
        if len(self._phones) >= _PHONE_CACHE_SIZE:
            self._phones.clear()
        self._phones[raw] = result
        return result


class ExternalIds:
    """The external ids of one import: the first row naming one claims it.

    Fed the checked chunks in row order; a later row naming a claimed id is rejected
    as a duplicate (its other problems, if any, come first in the report).
    """

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def settle(self, checked: Checked) -> Batch:
        first_rows = self._first
        duplicates: dict[int, RowError] = {}
        for number, external_id in checked.claims:
            first = first_rows.setdefault(external_id, number)
            if first != number:
                duplicates[number] = RowError(
                    number,
                    "external_id",
                    f"duplicate: external_id {_show(external_id)} is already in row {first}",
                )
        kept = [(n, record) for n, record in checked.records if n not in duplicates]
        errors = checked.errors
        if duplicates:
            errors = sorted([*checked.errors, *duplicates.values()], key=lambda e: e.row)
        return Batch([record for _, record in kept], errors, [n for n, _ in kept])


class RowValidator:
    """Validates the rows of one import, in order: a :class:`RowChecker` and the import's
    :class:`ExternalIds` (duplicates are found across successive :meth:`validate` calls)."""

    def __init__(self, default_region: str) -> None:
        self.checker = RowChecker(default_region)
        self.external_ids = ExternalIds()

    def validate(self, rows: Iterable[Mapping[str, Any]], first_position: int = 1) -> Batch:
        """The records of the good rows and the errors of the bad ones.

        ``first_position`` is the 1-based position of the first of ``rows`` in the whole
        import: a row's number when it carries no ``$row``.
        """
        return self.external_ids.settle(self.checker.check(rows, first_position))


# One checker per region in a worker process, so its phone cache lasts across chunks.
_CHECKERS: dict[str, RowChecker] = {}


def check_chunk(
    default_region: str, rows: Sequence[Mapping[str, Any]], first_position: int
) -> Checked:
    """:meth:`RowChecker.check` for a worker process (picklable arguments and result)."""
    checker = _CHECKERS.get(default_region)
    if checker is None:
        checker = _CHECKERS[default_region] = RowChecker(default_region)
    return checker.check(rows, first_position)


def _parse_phone(raw: str, region: str) -> tuple[str | None, str | None]:
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        why = _UNPARSABLE.get(exc.error_type, "")
        return None, f"{_show(raw)} is not a phone number{why}"
    if not is_valid_number(number):
        why = _IMPOSSIBLE.get(phonenumbers.is_possible_number_with_reason(number), "")
        return None, f"{_show(raw)} is not a valid phone number{why}"
    if number.extension:
        return None, f"{_show(raw)} has an extension: the dialer cannot dial one"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


_UNPARSABLE = {
    NumberParseException.INVALID_COUNTRY_CODE: " (unknown or missing country code)",
    NumberParseException.TOO_SHORT_NSN: " (too short)",
    NumberParseException.TOO_SHORT_AFTER_IDD: " (too short)",
    NumberParseException.TOO_LONG: " (too long)",
}
_IMPOSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: " (unknown country code)",
    ValidationResult.TOO_SHORT: " (too short)",
    ValidationResult.TOO_LONG: " (too long)",
    ValidationResult.INVALID_LENGTH: " (wrong length)",
}


def _row_number(given: Any, position: int) -> int:
    if given is None:
        return position
    try:
        return int(given)
    except (TypeError, ValueError):
        return position


def _encodable(value: str) -> bool:
    # Lone surrogates (from JSON escapes or undecodable bytes) cannot be sent to PostgreSQL.
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _too_long(number: int, field: str, value: str) -> RowError:
    limit = {"external_id": MAX_EXTERNAL_ID_CHARS}.get(
        field, MAX_PHONE_CHARS if field.startswith("phone") else MAX_PARAM_CHARS
    )
    return RowError(number, field, f"longer than {limit} characters ({len(value)})")


def _show(value: str, limit: int = 40) -> str:
    """A value quoted for a message, cut short when long."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return repr(value)
