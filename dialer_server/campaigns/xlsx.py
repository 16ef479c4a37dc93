"""An XLSX workbook written as a stream: rows go in, the file's bytes come out as they are made.

Pure code, no I/O: the caller sends each piece of bytes on (an HTTP response). Memory
stays flat whatever the number of rows: every cell is an inline string or a number (no
shared-strings table, which would grow with every distinct text), and the zip is written
entry by entry with data descriptors (sizes after the data), so nothing is held back but
a compressor's window.

A sheet holds at most 1,048,576 rows (Excel's limit) and, here, about 3.5 GB of XML (a
zip entry above 4 GiB would need zip64, which not every spreadsheet opens): past either,
the rows go on in a new sheet (``results``, ``results-2``...), each with the header row.
The workbook's own parts (its list of sheets) are written last, once the sheets are
known: a zip's entries may come in any order.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

MAX_SHEET_ROWS = 1_048_576
MAX_SHEET_BYTES = 3_500_000_000
# Characters XML 1.0 cannot hold (control characters but tab, line feed, carriage return).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b"<sheetData>"
)
_SHEET_TAIL = b"</sheetData></worksheet>"
_EMPTY = "<c/>"


class _Buffer:
    """Where the zip writes: collected until the caller takes it. No seek or tell, so
    zipfile writes each entry's sizes after its data (a data descriptor)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing is held: the caller takes the parts."""

    def close(self) -> None:
        """Nothing to let go."""

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def text_cell(value: str) -> str:
    """An inline-string cell of ``value`` (characters XML cannot hold are dropped)."""
    value = _ILLEGAL.sub("", value).translate(_ESCAPES)
    if not value:
        return _EMPTY  # an empty text is an empty cell, as in the CSV
    space = ' xml:space="preserve"' if value[:1].isspace() or value[-1:].isspace() else ""
    return f'<c t="inlineStr"><is><t{space}>{value}</t></is></c>'


def cell(value: Any) -> str:
    """One cell: text (always typed as text, so "=1+1" stays text), a number, or empty."""
    if value is None:
        return _EMPTY
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        # Beyond 15 digits a spreadsheet's double would round it: text keeps it exact.
        return f"<c><v>{value}</v></c>" if abs(value) < 10**15 else text_cell(str(value))
    if isinstance(value, float):
        finite = value == value and abs(value) != float("inf")
        return f"<c><v>{value!r}</v></c>" if finite else _EMPTY
    return text_cell(str(value))


class XlsxStream:
    """One workbook: ``rows`` returns the bytes made so far, ``close`` the rest."""

    def __init__(
        self,
        sheet_name: str,
        columns: Sequence[str],
        *,
        max_rows: int = MAX_SHEET_ROWS,
        max_bytes: int = MAX_SHEET_BYTES,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,25}", sheet_name):
            raise ValueError(f"sheet name {sheet_name!r}: 1-25 of A-Z a-z 0-9 _ -")
        self._name = sheet_name
        self._header = self._row(list(columns))
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._out = _Buffer()
        self._zip = zipfile.ZipFile(self._out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._sheets = 0
        self._sheet: Any = None
        self._rows = 0
        self._bytes = 0
        self.rows_written = 0

    @property
    def sheets(self) -> int:
        return self._sheets

    def rows(self, rows: Iterable[Sequence[Any]]) -> bytes:
        """Write ``rows`` (each a sequence of values in the columns' order)."""
        for values in rows:
            full = self._rows >= self._max_rows or self._bytes >= self._max_bytes
            if self._sheet is None or full:
                self._next_sheet()
            data = self._row(values)
            self._sheet.write(data)
            self._rows += 1
            self._bytes += len(data)
            self.rows_written += 1
        return self._out.take()

    def close(self) -> bytes:
        """The end of the file: the last sheet closed, then the workbook's parts."""
        if self._sheet is None:
            self._next_sheet()  # an empty export is still a workbook, with its header
        self._end_sheet()
        names = [self.sheet_name(n) for n in range(1, self._sheets + 1)]
        self._zip.writestr("xl/workbook.xml", _workbook(names))
        self._zip.writestr("xl/_rels/workbook.xml.rels", _workbook_rels(len(names)))
        self._zip.writestr("xl/styles.xml", _STYLES)
        self._zip.writestr("_rels/.rels", _ROOT_RELS)
        self._zip.writestr("[Content_Types].xml", _content_types(len(names)))
        self._zip.close()
        return self._out.take()

    def sheet_name(self, number: int) -> str:
        return self._name if number == 1 else f"{self._name}-{number}"

    def _next_sheet(self) -> None:
        self._end_sheet()
        self._sheets += 1
        self._sheet = self._zip.open(f"xl/worksheets/sheet{self._sheets}.xml", "w")
        self._sheet.write(_SHEET_HEAD + self._header)
        self._rows = 1
        self._bytes = len(_SHEET_HEAD) + len(self._header)

    def _end_sheet(self) -> None:
        if self._sheet is not None:
            self._sheet.write(_SHEET_TAIL)
            self._sheet.close()
            self._sheet = None

    @staticmethod
    def _row(values: Sequence[Any]) -> bytes:
        return ("<row>" + "".join(map(cell, values)) + "</row>").encode()


def _workbook(names: Sequence[str]) -> bytes:
    sheets = "".join(
        f'<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>' for n, name in enumerate(names, 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f"<sheets>{sheets}</sheets></workbook>"
    ).encode()


def _workbook_rels(count: int) -> bytes:
    sheets = "".join(
        f'<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/'
        f'2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, count + 1)
    )
    styles = (
        f'<Relationship Id="rId{count + 1}" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f"{sheets}{styles}</Relationships>"
    ).encode()


def _content_types(count: int) -> bytes:
    sheets = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for n in range(1, count + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        f"{sheets}</Types>"
    ).encode()


_ROOT_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
# The least a spreadsheet wants: one font, fill, border and cell format.
_STYLES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    b'<fills count="2"><fill><patternFill patternType="none"/></fill>'
    b'<fill><patternFill patternType="gray125"/></fill></fills>'
    b'<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    b'<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    b'<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    b'<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    b"</styleSheet>"
)
