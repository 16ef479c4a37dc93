"""Contact files: CSV and XLSX read as rows, a chunk at a time.

A reader holds a bounded part of its file at once, whatever the file's size: a chunk of
rows, the CSV lines of the record being read (at most a line of MAX_LINE_CHARS and a
field of the csv module's 131,072 characters), and for XLSX what openpyxl's read-only
mode keeps (the sheet is streamed; its shared-strings table is read whole). Readers do
blocking I/O and CPU work: the import calls them in a thread, never on the event loop.

Rows are ``{column: value}`` for every column of the header, plus ``$row`` (the row
number the user sees) and, for a row the reader could not read, ``$error`` (the
problem): see :mod:`rows` for what the import makes of them.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime
import io
from collections.abc import Iterator, Sequence
from typing import IO, Any, Protocol

from .rows import ERROR_KEY, ROW_KEY, ImportFileError, check_header

# A CSV line longer than this cannot be a row (18 columns of at most 255 characters):
# it is reported as a bad row and skipped, never held whole.
MAX_LINE_CHARS = 1024 * 1024
_XLSX_MAGIC = b"PK\x03\x04"
_OLD_XLS_MAGIC = b"\xd0\xcf\x11\xe0"

Row = dict[str, str]


class RowReader(Protocol):
    """The rows of one file, in order, a chunk at a time (blocking: call it in a thread)."""

    #: The header's columns: those an import of the file sets.
    columns: list[str]

    def read(self, count: int) -> list[Row]:
        """Up to ``count`` more rows; an empty list at the end of the file."""

    def fraction(self) -> float | None:
        """How much of the file was read (0 to 1), if known."""

    def close(self) -> None:
        """Let go of the file."""


def open_rows(name: str, stream: IO[bytes], fmt: str | None = None) -> RowReader:
    """A reader for a CSV or XLSX file, told apart by ``fmt`` ("csv" or "xlsx"), else by
    content (XLSX is a zip) and name. ImportFileError when it cannot be read at all.

    ``stream`` is a binary file open for reading and seekable; the reader reads it from
    its start and does not close it.
    """
    stream.seek(0)
    head = stream.read(8)
    stream.seek(0)
    lower = name.lower()
    if fmt == "xlsx":
        return XlsxRows(stream)
    if fmt == "csv":
        return CsvRows(stream)
    if lower.endswith(".xls") or head.startswith(_OLD_XLS_MAGIC):
        raise ImportFileError("old .xls workbooks are not supported: save it as .xlsx or CSV")
    if head.startswith(_XLSX_MAGIC) or lower.endswith(".xlsx"):
        return XlsxRows(stream)
    return CsvRows(stream)


def read_all(reader: RowReader, chunk: int = 10_000) -> list[Row]:
    """Every row of ``reader`` (for small files and tests: a big file is read by chunks)."""
    rows: list[Row] = []
    try:
        while batch := reader.read(chunk):
            rows.extend(batch)
    finally:
        reader.close()
    return rows


def read_file(name: str, data: bytes) -> list[Row]:
    """The rows of a CSV or XLSX file held in memory."""
    return read_all(open_rows(name, io.BytesIO(data)))


def read_csv(data: bytes) -> list[Row]:
    """The rows of a CSV file held in memory (see :class:`CsvRows`)."""
    return read_all(CsvRows(io.BytesIO(data)))


def read_xlsx(data: bytes) -> list[Row]:
    """The rows of an XLSX workbook held in memory (see :class:`XlsxRows`)."""
    return read_all(XlsxRows(io.BytesIO(data)))


# --- CSV -------------------------------------------------------------------------------


class _Lines:
    """The lines of a text stream, numbered from 1, that can be read again.

    The csv module takes lines one by one; those it took for the record being read are
    kept (``taken``) so that a record broken by a stray quote can be given back and read
    again from its second line. A line longer than MAX_LINE_CHARS is skipped (its number
    goes to ``too_long``) and an empty line takes its place.
    """

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._again: collections.deque[tuple[int, str, bool]] = collections.deque()
        self.number = 0
        self.taken: list[tuple[int, str, bool]] = []
        self.too_long: collections.deque[int] = collections.deque()
        self.undecodable_seen = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        item = self._again.popleft() if self._again else self._read()
        self.taken.append(item)
        return item[1]

    def _read(self) -> tuple[int, str, bool]:
        try:
            line = self._text.readline(MAX_LINE_CHARS + 1)
        except UnicodeDecodeError:
            # Only UTF-16 is decoded strictly (UTF-8 keeps bad bytes to report per row).
            raise ImportFileError("the file is not valid UTF-16 text") from None
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            # Skip to the line's end a piece at a time: it is never held whole.
            rest = line
            while rest and not rest.endswith(("\n", "\r")):
                rest = self._text.readline(MAX_LINE_CHARS)
            self.too_long.append(self.number)
            return self.number, "\n", False
        # Bytes that are not UTF-8 were decoded as lone surrogates: the row says so.
        undecodable = not line.isascii() and not _encodable(line)
        self.undecodable_seen = self.undecodable_seen or undecodable
        return self.number, line, undecodable

    def take(self) -> list[tuple[int, str, bool]]:
        """The lines taken since the last call: those of the record just read."""
        taken, self.taken = self.taken, []
        return taken

    def again(self, lines: Sequence[tuple[int, str, bool]]) -> None:
        """Read ``lines`` again, before any line not read yet."""
        self._again.extendleft(reversed(lines))


class CsvRows:
    """The rows of a CSV file, read a chunk at a time.

    The first non-blank line is the header, naming columns among those of :mod:`rows`
    (any case); an unknown, repeated or missing phone1 column refuses the file
    (ImportFileError). The delimiter is the one of ``,`` ``;`` or tab the header uses
    most. Each row carries ``$row``: the line its record starts on (the header is line 1,
    the first data row 2). Blank lines are skipped.

    Encoding: UTF-8, with or without a byte order mark (UTF-16 with a BOM is read too).
    Nothing is guessed: a row that is not valid UTF-8 is reported as such (``$error``)
    and the others are read; a file of which no row can be decoded is refused (when its
    end is reached: an import raising it stores nothing).

    A row that breaks the CSV quoting (a quote never closed, text after a closing quote)
    is reported and reading goes on at the next line, so one stray quote costs one row
    and never swallows the rest of the file. A quoted value may still span lines when the
    record it makes has the header's number of fields. A row with another number of
    fields than the header is reported: an unquoted delimiter would shift values into the
    wrong columns. A line longer than MAX_LINE_CHARS is reported and skipped.

    CPU-bound (about a second per 300k rows): call it in a thread.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._binary = stream
        self._size = _size_of(stream)
        self._lines = _Lines(_text_of(stream))
        header_line = self._header_line()
        if self._lines.undecodable_seen:
            raise ImportFileError(
                "the file is not UTF-8 text (its header line cannot be read): save it as UTF-8"
            )
        delimiter = max((",", ";", "\t"), key=header_line.count)
        try:
            header = next(csv.reader([header_line], delimiter=delimiter, strict=True))
        except csv.Error as exc:
            raise ImportFileError(f"the header line cannot be read as CSV: {exc}") from None
        self.columns = check_header(header)
        self._names = self.columns
        self._records = _csv_records(self._lines, delimiter, len(self.columns))
        self._decoded_any = False
        self._rows_read = 0

    def _header_line(self) -> str:
        for line in self._lines:
            self._lines.take()
            if self._lines.too_long:
                raise ImportFileError(
                    f"the header line is longer than {MAX_LINE_CHARS} characters: not a header"
                )
            if line.strip():
                return line
        raise ImportFileError("the file is empty")

    def read(self, count: int) -> list[Row]:
        rows: list[Row] = []
        names = self._names
        for number, record, problem, undecodable in self._records:
            if problem is not None:
                rows.append({ROW_KEY: str(number), ERROR_KEY: problem})
            elif undecodable and (bad := _undecodable(record, names)) is not None:
                rows.append({ROW_KEY: str(number), ERROR_KEY: bad})
            else:
                self._decoded_any = True
                rows.append(_row(names, record, number))
            if len(rows) >= count:
                break
        self._rows_read += len(rows)
        if not rows and self._rows_read and self._lines.undecodable_seen and not self._decoded_any:
            raise ImportFileError(
                "the file is not UTF-8 text (no row could be decoded): save it as UTF-8"
            )
        return rows

    def fraction(self) -> float | None:
        if not self._size:
            return None
        return min(1.0, self._binary.tell() / self._size)

    def close(self) -> None:
        """Nothing to let go: the stream is the caller's."""


def _size_of(stream: IO[bytes]) -> int:
    position = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(position)
    return size


def _text_of(stream: IO[bytes]) -> IO[str]:
    """The stream as text: UTF-8 (bad bytes kept as surrogates, to report per row) or
    UTF-16 with a byte order mark (decoded strictly)."""
    head = stream.read(4096)
    stream.seek(0)
    if head.startswith(_XLSX_MAGIC):
        raise ImportFileError("this is an XLSX workbook (a zip file), not CSV")
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            stream.seek(len(bom))
            return _wrap(stream, encoding, "strict")
    if head.startswith(codecs.BOM_UTF8):
        stream.seek(len(codecs.BOM_UTF8))
        head = head[len(codecs.BOM_UTF8) :]
    if b"\x00" in head:
        raise ImportFileError("the file is binary, or UTF-16 without a byte order mark: not CSV")
    return _wrap(stream, "utf-8", "surrogateescape")


def _wrap(stream: IO[bytes], encoding: str, errors: str) -> IO[str]:
    # newline="": line endings are kept as they are (the csv module wants them).
    buffered = io.BufferedReader(_Unclosable(stream), buffer_size=256 * 1024)
    return io.TextIOWrapper(buffered, encoding=encoding, errors=errors, newline="")


class _Unclosable(io.RawIOBase):
    """``stream`` seen through a text wrapper that must not close it when collected."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _csv_records(
    lines: _Lines, delimiter: str, width: int
) -> Iterator[tuple[int, list[str], str | None, bool]]:
    """(line number, fields, problem, undecodable) for each non-blank record.

    On a quoting error the record's first line is reported and parsing starts again on
    the line after it.
    """
    while True:
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        restart = False
        try:
            for record in reader:
                taken = lines.take()
                yield from _too_long(lines, taken[0][0])
                first = taken[0][0]
                count = len(record)
                if count != width and not any(f.strip() for f in record):
                    continue  # a blank line, or one of delimiters only
                # Exactly the header's number of fields: an unquoted delimiter in a value
                # would shift the values after it into the wrong columns.
                if count != width and len(taken) > 1:
                    # A quote left open swallowed the next lines: report its own line
                    # and read the swallowed ones again.
                    yield (
                        first,
                        [],
                        "broken quoting: a quote opened on this line is not closed",
                        False,
                    )
                    lines.again(taken[1:])
                    restart = True
                    break
                if count != width:
                    yield first, [], _field_count(count, width), False
                    continue
                if not any(record):
                    continue
                yield first, record, None, any(bad for _, _, bad in taken)
        except csv.Error as exc:
            taken = lines.take()
            first = taken[0][0] if taken else lines.number
            yield from _too_long(lines, first)
            yield first, [], f"broken quoting: {exc}", False
            lines.again(taken[1:])
            restart = True
        if not restart:
            yield from _too_long(lines, None)
            return


def _too_long(
    lines: _Lines, before: int | None
) -> Iterator[tuple[int, list[str], str | None, bool]]:
    """The lines cut out for their length, up to line ``before`` (None: all)."""
    while lines.too_long and (before is None or lines.too_long[0] <= before):
        number = lines.too_long.popleft()
        yield number, [], f"the line is longer than {MAX_LINE_CHARS} characters", False


def _field_count(count: int, width: int) -> str:
    return (
        f"has {count} field{'s' if count != 1 else ''}, the header has {width} "
        "(a value holding the delimiter must be quoted)"
    )


def _row(names: list[str], record: Sequence[str], number: int) -> Row:
    # Every column of the header is in every row, empty or not: a column the file has
    # is one the import sets (an empty cell clears the field of an updated contact).
    row = dict(zip(names, record, strict=True))
    if "" in row:
        del row[""]
        if any(v.strip() for n, v in zip(names, record, strict=True) if not n):
            row[ERROR_KEY] = "a value in a column without a name in the header"
    row[ROW_KEY] = str(number)
    return row


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _undecodable(record: Sequence[str], names: Sequence[str]) -> str | None:
    for index, value in enumerate(record):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            byte = ord(value[exc.start]) - 0xDC00
            where = names[index] if index < len(names) and names[index] else f"field {index + 1}"
            return f"not UTF-8 text (byte 0x{byte:02X} in {where}): save the file as UTF-8"
    return None


# --- XLSX ------------------------------------------------------------------------------


class XlsxRows:
    """The rows of the first sheet of an XLSX workbook, like :class:`CsvRows`'s.

    The first non-empty row is the header; ``$row`` is the sheet's row number. Cells are
    read as text: whole numbers without a decimal point (a phone typed as a number),
    dates in ISO format. Formulas count by their last computed value. The sheet is
    streamed (openpyxl's read-only mode); its shared-strings table is read whole.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        import openpyxl

        try:
            self._book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except Exception as exc:  # zipfile, XML and openpyxl's own errors: a bad file
            raise ImportFileError(f"not a readable XLSX workbook: {exc}") from None
        try:
            if not self._book.worksheets:
                raise ImportFileError("the workbook has no sheet")
            sheet = self._book.worksheets[0]
            if hasattr(sheet, "reset_dimensions"):
                # Some writers store wrong dimensions: read what is there, not what they say.
                sheet.reset_dimensions()
            self._cells = enumerate(sheet.iter_rows(min_row=1, values_only=True), 1)
            self.columns = self._header()
        except ImportFileError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ImportFileError(f"not a readable XLSX workbook: {exc}") from None

    def _header(self) -> list[str]:
        for _, values in self._cells:
            record = [_cell_text(v) for v in values]
            if any(v.strip() for v in record):
                return check_header(record)
        raise ImportFileError("the sheet is empty")

    def read(self, count: int) -> list[Row]:
        try:
            return self._read(count)
        except ImportFileError:
            raise
        except Exception as exc:
            raise ImportFileError(f"not a readable XLSX workbook: {exc}") from None

    def _read(self, count: int) -> list[Row]:
        names = self.columns
        width = len(names)
        rows: list[Row] = []
        for number, values in self._cells:
            record = [_cell_text(v) for v in values]
            if not any(v.strip() for v in record):
                continue
            if len(record) > width and any(v.strip() for v in record[width:]):
                rows.append({ROW_KEY: str(number), ERROR_KEY: "a value in a column without a name"})
            else:
                # A sheet row ends at its last non-empty cell: pad it to the header's width.
                record = record[:width] + [""] * (width - len(record))
                rows.append(_row(names, record, number))
            if len(rows) >= count:
                break
        return rows

    def fraction(self) -> float | None:
        return None

    def close(self) -> None:
        self._book.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)
