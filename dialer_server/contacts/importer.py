"""Contact import: CSV and XLSX files and batches of rows into a campaign, in bulk.

The rules for a row are in :mod:`contact_rows`. The way in: readers turn a file into
rows (:func:`read_csv`, :func:`read_xlsx`, :func:`read_file`), :func:`import_contacts`
validates the rows and stores the good ones; the HTTP API, ``dialer-server import`` and
the drop folder (:mod:`drop_folder`) all go through it.

Storing is one transaction: chunks of validated rows are copied (COPY) into a temporary
table and moved into ``contacts`` with one ``INSERT ... ON CONFLICT (campaign_id,
external_id) DO UPDATE`` per chunk, while the next chunks are validated off the event
loop (in a thread, or in one process per CPU for big imports: see import_contacts). A new
contact is due at once (``next_attempt_at = now()``). A contact whose external id is
already in the campaign is updated: its phones, params and time zone only, never its
state, status or schedule, whether it is pending, in a call or closed (to dial a closed
contact again, reset it through the API). The update sets the columns the import has
(a file's header; the keys of a batch's rows), an empty value clearing the field, and
leaves the others as they are. An interrupted import stores nothing.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import datetime
import io
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..db.queries import queries_of
from ..errors import DialerError
from .rows import (
    COLUMNS,
    ERROR_KEY,
    ROW_KEY,
    Checked,
    ExternalIds,
    ImportFileError,
    Record,
    RowChecker,
    RowError,
    check_chunk,
    check_header,
)

query = queries_of(__name__)

__all__ = [
    "CampaignNotFound",
    "ImportFileError",
    "ImportReport",
    "RowError",
    "import_contacts",
    "import_file",
    "read_csv",
    "read_file",
    "read_xlsx",
]

logger = logging.getLogger(__name__)

# Rows validated and stored at a time: big enough for COPY to pay, small enough for
# validation and the database to overlap and for progress to move.
CHUNK_ROWS = 10_000
# From this many rows an import is worth starting worker processes for (about a second).
PARALLEL_MIN_ROWS = 50_000
_BUFFER_TABLE = "contact_import_rows"
# Campaign ids are PostgreSQL bigints: an id outside this range names no campaign.
_MAX_CAMPAIGN_ID = 2**63 - 1
_XLSX_MAGIC = b"PK\x03\x04"


class CampaignNotFound(DialerError):
    """No such campaign."""


def _check_campaign_id(campaign_id: int) -> None:
    # Beyond bigint the driver would refuse the query argument itself: an error that is
    # not about PostgreSQL but about an id no campaign can have.
    if not 1 <= campaign_id <= _MAX_CAMPAIGN_ID:
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """The outcome of an import.

    ``received``: rows submitted (blank lines of a file are not rows). ``inserted`` and
    ``updated``: contacts created and updated (an external id already in the campaign).
    ``rejected``: every problem of every bad row, in row order (a row with two problems
    appears twice; :attr:`rejected_rows` counts rows). ``stored`` is False when the
    import was all-or-nothing and a row was bad: then nothing was written.
    """

    received: int
    inserted: int
    updated: int
    rejected: list[RowError]
    stored: bool

    @property
    def rejected_rows(self) -> int:
        return len({e.row for e in self.rejected})

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**dataclasses.asdict(self), "rejected_rows": self.rejected_rows}


# --- reading files ---------------------------------------------------------------------


def read_file(name: str, data: bytes) -> list[dict[str, str]]:
    """The rows of a CSV or XLSX file, told apart by content (XLSX is a zip) and name."""
    lower = name.lower()
    if lower.endswith(".xls") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError("old .xls workbooks are not supported: save it as .xlsx or CSV")
    if data.startswith(_XLSX_MAGIC) or lower.endswith(".xlsx"):
        return read_xlsx(data)
    return read_csv(data)


def read_csv(data: bytes) -> list[dict[str, str]]:
    """The rows of a CSV file, as {column: value} for every column of the header.

    The first non-blank line is the header, naming columns among those of
    :mod:`contact_rows` (any case); an unknown, repeated or missing phone1 column refuses
    the file (ImportFileError). The delimiter is the one of ``,`` ``;`` or tab the header
    uses most. Each row carries ``$row``: the line its record starts on (the header is
    line 1, the first data row 2). Blank lines are skipped.

    Encoding: UTF-8, with or without a byte order mark (UTF-16 with a BOM is read too).
    Nothing is guessed: a row that is not valid UTF-8 is reported as such (``$error``) and
    the others are read; a file of which no row can be decoded is refused.

    A row that breaks the CSV quoting (a quote never closed, text after a closing quote)
    is reported and reading goes on at the next line, so one stray quote costs one row
    and never swallows the rest of the file. A quoted value may still span lines when the
    record it makes has the header's number of fields. A row with another number of fields
    than the header is reported: an unquoted delimiter would shift values into the wrong
    columns.

    CPU-bound (about a second per 300k rows): servers call it in a thread.
    """
    text, clean = _decode(data)
    lines = io.StringIO(text, newline="").readlines()
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ImportFileError("the file is empty")
    header_line = lines[header_at]
    if not clean and not _encodable(header_line):
        raise ImportFileError(
            "the file is not UTF-8 text (its header line cannot be read): save it as UTF-8"
        )
    delimiter = max((",", ";", "\t"), key=header_line.count)
    try:
        header = next(csv.reader([header_line], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise ImportFileError(f"the header line cannot be read as CSV: {exc}") from None
    names = check_header(header)

    rows: list[dict[str, str]] = []
    decoded_any = clean
    for number, record, problem in _csv_records(lines, header_at + 1, delimiter, len(names)):
        if problem is not None:
            rows.append({ROW_KEY: str(number), ERROR_KEY: problem})
            continue
        if not clean:
            bad = _undecodable(record, names)
            if bad is not None:
                rows.append({ROW_KEY: str(number), ERROR_KEY: bad})
                continue
            decoded_any = True
        rows.append(_row(names, record, number))
    if not decoded_any and rows:
        raise ImportFileError(
            "the file is not UTF-8 text (no row could be decoded): save it as UTF-8"
        )
    return rows


def _decode(data: bytes) -> tuple[str, bool]:
    """The text and whether it decoded cleanly; undecodable bytes become surrogates."""
    if data.startswith(_XLSX_MAGIC):
        raise ImportFileError("this is an XLSX workbook (a zip file), not CSV")
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), True
            except UnicodeDecodeError:
                raise ImportFileError("the file is not valid UTF-16 text") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if b"\x00" in data[:4096]:
        raise ImportFileError("the file is binary, or UTF-16 without a byte order mark: not CSV")
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape"), False


def _csv_records(
    lines: list[str], start: int, delimiter: str, width: int
) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, fields, problem) for each non-blank record from ``lines[start]`` on.

    On a quoting error the record's first line is reported and parsing starts again on
    the line after it.
    """
    end = len(lines)
    while start < end:
        reader = csv.reader(
            map(lines.__getitem__, range(start, end)), delimiter=delimiter, strict=True
        )
        consumed = 0  # lines of `lines[start:]` read by the records returned so far
        restart: int | None = None
        try:
            for record in reader:
                first = start + consumed
                consumed = reader.line_num
                count = len(record)
                if count != width and not any(f.strip() for f in record):
                    continue  # a blank line, or one of delimiters only
                # Exactly the header's number of fields: an unquoted delimiter in a value
                # would shift the values after it into the wrong columns.
                if count != width and start + consumed - first > 1:
                    # A quote left open swallowed the next lines: report its own line
                    # and read the swallowed ones again.
                    yield first + 1, [], "broken quoting: a quote opened on this line is not closed"
                    restart = first + 1
                    break
                if count != width:
                    yield first + 1, [], _field_count(count, width)
                    continue
                if not any(record):
                    continue
                yield first + 1, record, None
        except csv.Error as exc:
            first = start + consumed
            yield first + 1, [], f"broken quoting: {exc}"
            restart = first + 1
        start = end if restart is None else restart


def _field_count(count: int, width: int) -> str:
    return (
        f"has {count} field{'s' if count != 1 else ''}, the header has {width} "
        "(a value holding the delimiter must be quoted)"
    )


def _row(names: list[str], record: Sequence[str], number: int) -> dict[str, str]:
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


def read_xlsx(data: bytes) -> list[dict[str, str]]:
    """The rows of the first sheet of an XLSX workbook, like :func:`read_csv`'s.

    The first non-empty row is the header; ``$row`` is the sheet's row number. Cells are
    read as text: whole numbers without a decimal point (a phone typed as a number),
    dates in ISO format. Formulas count by their last computed value.
    """
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl's own errors: all mean a bad file
        raise ImportFileError(f"not a readable XLSX workbook: {exc}") from None
    try:
        if not book.worksheets:
            raise ImportFileError("the workbook has no sheet")
        sheet = book.worksheets[0]
        if hasattr(sheet, "reset_dimensions"):
            # Some writers store wrong dimensions: read what is there, not what they say.
            sheet.reset_dimensions()
        try:
            return _sheet_rows(sheet.iter_rows(min_row=1, values_only=True))
        except ImportFileError:
            raise
        except Exception as exc:
            raise ImportFileError(f"not a readable XLSX workbook: {exc}") from None
    finally:
        book.close()


def _sheet_rows(cells: Iterable[Sequence[Any]]) -> list[dict[str, str]]:
    names: list[str] | None = None
    rows: list[dict[str, str]] = []
    for number, values in enumerate(cells, 1):
        record = [_cell_text(v) for v in values]
        if not any(v.strip() for v in record):
            continue
        if names is None:
            names = check_header(record)
            continue
        width = len(names)
        if len(record) > width and any(v.strip() for v in record[width:]):
            rows.append({ROW_KEY: str(number), ERROR_KEY: "a value in a column without a name"})
            continue
        # A sheet row ends at its last non-empty cell: pad it to the header's width.
        record = record[:width] + [""] * (width - len(record))
        rows.append(_row(names, record, number))
    if names is None:
        raise ImportFileError("the sheet is empty")
    return rows


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


# --- storing ---------------------------------------------------------------------------


class _Rollback(Exception):
    """All-or-nothing import with bad rows: undo everything."""


async def import_contacts(
    conn: Any,
    campaign_id: int,
    rows: Sequence[Mapping[str, Any]],
    *,
    default_region: str,
    all_or_nothing: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Validate ``rows`` and store the good ones in the campaign, in one transaction.

    ``rows`` come from a reader (they carry ``$row``) or a batch (row numbers are then
    the 1-based positions). ``default_region`` (the campaign's, e.g. ``US``) reads numbers
    without a country code. Bad rows are reported in the returned report; the good ones
    are stored unless ``all_or_nothing``, in which case one bad row stores nothing.
    ``progress`` is called with the number of rows handled so far, after each chunk.

    Validation is CPU-bound (parsing phone numbers) and runs off the event loop: in a
    thread, or with ``workers`` > 0 in that many processes. ``workers=None`` picks one
    process per CPU for imports of PARALLEL_MIN_ROWS rows or more on a machine with
    more than one CPU, else a thread.

    ``conn`` is an asyncpg connection (not a pool); if it is already in a transaction the
    import runs in a savepoint. Raises CampaignNotFound when the campaign does not exist.
    """
    _check_campaign_id(campaign_id)
    if workers is None:
        cpus = os.cpu_count() or 1
        workers = cpus if cpus > 1 and len(rows) >= PARALLEL_MIN_ROWS else 0
    job = _Import(conn, campaign_id, rows, default_region, all_or_nothing, progress)
    try:
        async with conn.transaction():
            if await conn.fetchval(query("contact_import_lock_campaign"), campaign_id) is None:
                raise CampaignNotFound(f"campaign {campaign_id} does not exist")
            await conn.execute(query("contact_import_create_buffer"))
            await conn.execute(query("contact_import_clear_buffer"))
            job.columns = await asyncio.to_thread(_columns_present, rows)
            await job.run(workers)
            if all_or_nothing and job.rejected:
                raise _Rollback
    except _Rollback:
        return ImportReport(len(rows), 0, 0, job.rejected, stored=False)
    return ImportReport(len(rows), job.inserted, job.updated, job.rejected, stored=True)


class _Import:
    """One import's pipeline: chunks are checked off the loop, a few ahead, while the
    previous chunk is written to PostgreSQL (which works on another core meanwhile)."""

    def __init__(
        self,
        conn: Any,
        campaign_id: int,
        rows: Sequence[Mapping[str, Any]],
        default_region: str,
        all_or_nothing: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.conn = conn
        self.campaign_id = campaign_id
        self.rows = rows
        self.region = default_region
        self.all_or_nothing = all_or_nothing
        self.progress = progress
        self.columns: list[str] = []
        self.rejected: list[RowError] = []
        self.inserted = 0
        self.updated = 0
        self._writing: asyncio.Task[tuple[int, int]] | None = None
        self._written_upto = 0

    async def run(self, workers: int) -> None:
        loop = asyncio.get_running_loop()
        external_ids = ExternalIds()
        checker = RowChecker(self.region)
        executor: concurrent.futures.Executor | None = None
        if workers > 0:
            # forkserver: never fork a process that runs an event loop and threads.
            executor = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("forkserver")
            )
        ahead = workers + 1 if workers > 0 else 1
        starts = iter(range(0, len(self.rows), CHUNK_ROWS))
        pending: collections.deque[tuple[int, asyncio.Future[Checked]]] = collections.deque()

        def submit() -> None:
            start = next(starts, None)
            if start is None:
                return
            chunk = self.rows[start : start + CHUNK_ROWS]
            if executor is None:
                future = loop.run_in_executor(None, checker.check, chunk, start + 1)
            else:
                future = loop.run_in_executor(
                    executor, check_chunk, self.region, list(chunk), start + 1
                )
            pending.append((start + len(chunk), future))

        try:
            for _ in range(ahead):
                submit()
            while pending:
                end, future = pending.popleft()
                checked = await future
                submit()
                batch = external_ids.settle(checked)
                self.rejected.extend(batch.errors)
                await self._settle()
                if batch.records and not (self.all_or_nothing and self.rejected):
                    self._writing = asyncio.create_task(self._store(batch.records))
                    self._written_upto = end
                elif self.progress is not None:
                    self.progress(end)
            await self._settle()
        finally:
            for _, future in pending:
                future.cancel()
            if self._writing is not None:
                self._writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._writing
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    async def _settle(self) -> None:
        """Wait for the write in progress, if any, and count it."""
        if self._writing is not None:
            inserted, updated = await self._writing
            self._writing = None
            self.inserted += inserted
            self.updated += updated
            if self.progress is not None:
                self.progress(self._written_upto)

    async def _store(self, records: list[Record]) -> tuple[int, int]:
        conn = self.conn
        await conn.copy_records_to_table(_BUFFER_TABLE, records=records, columns=COLUMNS)
        row = await conn.fetchrow(
            query("contact_import_move_buffer"), self.campaign_id, self.columns
        )
        await conn.execute(query("contact_import_clear_buffer"))
        return int(row["inserted"]), int(row["updated"])


def _columns_present(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns any row names: those an update sets (the others it leaves alone)."""
    names: set[str] = set().union(*rows)
    return [c for c in COLUMNS if c in names]


async def campaign_region(conn: Any, campaign_id: int) -> str:
    """The campaign's default region; CampaignNotFound if there is no such campaign."""
    _check_campaign_id(campaign_id)
    region = await conn.fetchval(query("contact_import_campaign_region"), campaign_id)
    if region is None:
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return str(region)


async def import_file(
    conn: Any,
    campaign_id: int,
    name: str,
    data: bytes,
    *,
    all_or_nothing: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Read a CSV or XLSX file (in a thread) and import it with the campaign's region."""
    region = await campaign_region(conn, campaign_id)
    rows = await asyncio.to_thread(read_file, name, data)
    return await import_contacts(
        conn,
        campaign_id,
        rows,
        default_region=region,
        all_or_nothing=all_or_nothing,
        progress=progress,
    )


# --- the command line ------------------------------------------------------------------


class ProgressBar:
    """A one-line text bar on a terminal stream, redrawn at most every 0.1 s."""

    def __init__(self, total: int, stream: IO[str], width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self._drawn < 0.1:
            return
        self._drawn = now
        share = done / self.total if self.total else 1.0
        filled = int(share * self.width)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {share:4.0%} "
            f"{done}/{self.total} rows  {rate:,.0f} rows/s"
        )
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def format_report(
    report: ImportReport, source: str, campaign_id: int, *, show_errors: int = 20
) -> str:
    """A readable summary of a report, with its first ``show_errors`` problems."""
    lines = [
        f"{source} -> campaign {campaign_id}: {report.received} rows received, "
        f"{report.inserted} inserted, {report.updated} updated, "
        f"{report.rejected_rows} rejected"
    ]
    if not report.stored:
        lines.append("nothing stored: rows were rejected and the import was all-or-nothing")
    if report.rejected:
        shown = report.rejected[:show_errors]
        more = len(report.rejected) - len(shown)
        lines.append(
            f"{len(report.rejected)} problem{'s' if len(report.rejected) > 1 else ''}"
            + (f" (first {len(shown)} shown)" if more else "")
            + ":"
        )
        field_width = max(5, *(len(e.field or "-") for e in shown))
        row_width = max(3, *(len(str(e.row)) for e in shown))
        lines.append(f"  {'row':>{row_width}}  {'field':<{field_width}}  reason")
        lines.extend(
            f"  {e.row:>{row_width}}  {e.field or '-':<{field_width}}  {e.reason}" for e in shown
        )
        if more:
            lines.append(f"  ... and {more} more")
    return "\n".join(lines)


async def run_import_command(
    pool: Any,
    path: Path,
    campaign_id: int,
    *,
    all_or_nothing: bool,
    show_errors: int,
    as_json: bool,
    show_progress: bool | None,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """``dialer-server import``: 0 when every row was stored, 3 when rows were rejected.

    Raises DialerError (exit 1) when the file or the campaign cannot be used.
    """
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise DialerError(f"cannot read {path}: {exc.strerror or exc}") from None
    if show_progress is None:
        show_progress = err.isatty()
    async with pool.acquire() as conn:
        region = await campaign_region(conn, campaign_id)
        if show_progress:
            err.write(f"reading {path.name} ...\n")
            err.flush()
        rows = await asyncio.to_thread(read_file, path.name, data)
        report = await import_contacts(
            conn,
            campaign_id,
            rows,
            default_region=region,
            all_or_nothing=all_or_nothing,
            progress=ProgressBar(len(rows), err) if show_progress and rows else None,
        )
    if as_json:
        import json

        json.dump({"file": str(path), "campaign_id": campaign_id, **report.to_dict()}, out)
        out.write("\n")
    else:
        out.write(format_report(report, path.name, campaign_id, show_errors=show_errors) + "\n")
    return 3 if report.rejected else 0
