"""A campaign's results as CSV or XLSX: one row per contact and its last attempt.

Pure code: the rows come from ``contacts.export_rows``. Dates are ISO 8601 text
in UTC in both formats, so a CSV and an XLSX of the same campaign hold the same
cells.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
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
_FREE_TEXT = frozenset({"external_id", *(f"param{i}" for i in range(1, 13))})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cell(value: Any) -> Any:
    """A value as it goes into a cell: text for dates, None kept, numbers kept."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _csv_text(column: str, value: Any) -> str:
    value = cell(value)
    if value is None:
        return ""
    text = str(value)
    # The usual guard against CSV formula injection: a leading quote makes a
    # spreadsheet read the cell as text.
    if column in _FREE_TEXT and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_header() -> bytes:
    return csv_rows((), header=True)


def csv_rows(rows: Iterable[Mapping[str, Any]], *, header: bool = False) -> bytes:
    """CSV lines (UTF-8, CRLF) of ``rows``, with the header line first if asked."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_text(c, row[c]) for c in COLUMNS])
    return buffer.getvalue().encode()


def xlsx_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The XLSX workbook (one sheet, "results")."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("results")
    sheet.append(list(COLUMNS))
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = cell(row[column])
            if isinstance(value, str):
                # XML cannot hold most control characters: they are dropped.
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
                item = WriteOnlyCell(sheet, value)
                # A string starting with "=" would otherwise be stored as a formula.
                item.data_type = "s"
                cells.append(item)
            else:
                cells.append(WriteOnlyCell(sheet, value))
        sheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
