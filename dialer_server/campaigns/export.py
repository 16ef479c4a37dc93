"""A campaign's results as CSV or XLSX: one row per contact and its last attempt.

Pure code: the rows come from ``contacts.export_rows`` (and the attempts' from
``attempts.export_rows``: :func:`table_csv` writes any table). Dates are ISO 8601 text
in UTC in both formats, so a CSV and an XLSX of the same campaign hold the same
cells. XLSX is written as a stream (``xlsx.XlsxStream``): every cell text, never a
formula.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

COLUMNS = (
    "contact_id",
    "external_id",
    *(f"phone{i}" for i in range(1, 6)),
    *(f"param{i}" for i in range(1, 13)),
    "timezone",
    "state",
    "status",
    "status_detail",
    "attempts",
    "last_outcome",
    "last_number",
    "last_attempt_at",
    "next_attempt_at",
    "closed_at",
)
# Text the CRM wrote: a spreadsheet must not run it as a formula.
FREE_TEXT = frozenset({"external_id", *(f"param{i}" for i in range(1, 13))})
# What Excel, LibreOffice and Google Sheets start a formula with ("|" a DDE call; the
# minus sign too), compared after NFKC so that the full-width and small forms an East
# Asian input method types (U+FF1D, U+FF0B, U+FF0D, U+FF20, U+FF5C, U+FE66...) count
# as what they stand for.
_FORMULA_START = frozenset("=+-@|\u2212")
# Spreadsheets skip these before they look for a formula: blanks of every kind, and
# characters that show nothing (zero-width and direction marks, the byte order mark,
# control characters).
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cell(value: Any) -> Any:
    """A value as it goes into a cell: text for dates, None kept, numbers kept."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def formula_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula.

    A leading quote makes a spreadsheet read the cell as text; it is added when the
    first character that shows (past blanks and invisible marks) starts a formula, and
    when the cell starts with a tab or a line break (OWASP's advice).
    """
    if text[:1] in ("\t", "\r", "\n"):
        return "'" + text
    for char in text:
        if char.isspace() or unicodedata.category(char) in _INVISIBLE:
            continue
        if unicodedata.normalize("NFKC", char)[:1] in _FORMULA_START:
            return "'" + text
        break
    return text


def _csv_text(column: str, value: Any, free_text: frozenset[str] = FREE_TEXT) -> str:
    value = cell(value)
    if value is None:
        return ""
    text = str(value)
    return formula_safe(text) if column in free_text else text


def csv_header() -> bytes:
    return csv_rows((), header=True)


def csv_rows(rows: Iterable[Mapping[str, Any]], *, header: bool = False) -> bytes:
    """CSV lines (UTF-8, CRLF) of results ``rows``, with the header line first if asked."""
    return table_csv(COLUMNS, FREE_TEXT, rows, header=header)


def table_csv(
    columns: Sequence[str],
    free_text: frozenset[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    header: bool = False,
) -> bytes:
    """CSV lines (UTF-8, CRLF) of ``rows`` in ``columns``; the ``free_text`` columns are
    guarded against spreadsheet formulas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_text(c, row[c], free_text) for c in columns])
    return buffer.getvalue().encode()


def xlsx_values(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    """The cells of ``rows`` for an XLSX sheet (xlsx.XlsxStream): dates as ISO 8601 text."""
    return [[cell(row[c]) for c in columns] for row in rows]
