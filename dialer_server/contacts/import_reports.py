"""Import reports: what each import did, and every problem of its rejected rows.

Every import (the API's JSON batches and files, ``dialer-server import``, the drop folder)
is recorded in ``imports`` with its counts, and the problems of its rejected rows in
``import_problems``, in row order: the first MAX_LISTED of them (``problems`` counts them
all, ``listed`` those kept). A report is kept ``[import] report_days`` (7 by default);
past that it is no longer served, and the next import deletes it. The API serves it as
CSV: ``GET /api/v1/imports/{id}/report``. It is written in the transaction of the
import's caller: the API's request stores its contacts and its report together.

While an import runs its problems go to a spool file (:class:`ProblemLog`), never all
into memory: only the first SHOWN stay there, for the import's answer. Writing the spool
is blocking I/O: the import calls :meth:`ProblemLog.add` in a thread.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import IO, Any

from ..campaigns.export import formula_safe
from ..db.queries import queries_of
from .rows import RowError

query = queries_of(__name__)

# Problems an import's answer shows; the report lists up to MAX_LISTED.
SHOWN = 100
MAX_LISTED = 1_000_000
_PAGE = 10_000
_COLUMNS = ("import_id", "position", "row_number", "field", "reason")
# What a problem's text may be in PostgreSQL: no NUL, no lone surrogate, not endless.
_MAX_TEXT = 1000


class ProblemLog:
    """The problems of one import: counted, the first SHOWN kept, the first MAX_LISTED
    spooled to a temporary file for the report (deleted on :meth:`close`).

    Duplicates found by dedup (:meth:`add`'s ``duplicates``) are listed in the report
    among the problems, in row order, but counted apart (``duplicates``, and the first
    SHOWN in ``duplicates_shown``): a duplicate is the import's hygiene, not a bad row.
    """

    def __init__(self, import_id: int, *, shown: int = SHOWN, max_listed: int = MAX_LISTED):
        self.import_id = import_id
        self.count = 0
        self.rows = 0
        self.listed = 0
        self.shown: list[RowError] = []
        self.duplicates = 0
        self.duplicates_shown: list[RowError] = []
        self._shown_max = shown
        self._max_listed = max_listed
        self._spool: IO[bytes] = tempfile.TemporaryFile()
        self._text = io.TextIOWrapper(self._spool, encoding="utf-8", newline="")
        # COPY ... (FORMAT csv): an unquoted empty field is NULL (a problem of no field).
        self._csv = csv.writer(self._text, lineterminator="\n")

    def add(self, errors: Sequence[RowError], duplicates: Sequence[RowError] = ()) -> None:
        """Log ``errors``, the problems of some rows after those of earlier calls, and the
        ``duplicates`` among those rows (blocking)."""
        if duplicates:
            self.duplicates += len(duplicates)
            if len(self.duplicates_shown) < self._shown_max:
                room = self._shown_max - len(self.duplicates_shown)
                self.duplicates_shown.extend(duplicates[:room])
        if errors:
            self.count += len(errors)
            self.rows += len({error.row for error in errors})
            if len(self.shown) < self._shown_max:
                self.shown.extend(errors[: self._shown_max - len(self.shown)])
        if duplicates:
            errors = sorted([*errors, *duplicates], key=lambda e: e.row)
        if not errors:
            return
        room = self._max_listed - self.listed
        if room > 0:
            listed = errors[:room]
            self._csv.writerows(
                (
                    self.import_id,
                    self.listed + position,
                    error.row,
                    None if error.field is None else _pg_text(error.field),
                    _pg_text(error.reason),
                )
                for position, error in enumerate(listed, 1)
            )
            self.listed += len(listed)

    def spooled(self) -> IO[bytes]:
        """The spool, from its start, as COPY reads it (blocking)."""
        self._text.flush()
        self._spool.seek(0)
        return self._spool

    def close(self) -> None:
        self._text.close()


def _pg_text(text: str) -> str:
    if len(text) > _MAX_TEXT:
        text = text[: _MAX_TEXT - 3] + "..."
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def new_id(conn: Any) -> int:
    """An id for an import about to run: its problems are spooled under it."""
    return int(await conn.fetchval(query("import_report_new_id")))


async def save(
    conn: Any,
    log: ProblemLog,
    *,
    campaign_id: int,
    source: str,
    file_name: str | None,
    received: int,
    inserted: int,
    updated: int,
    stored: bool,
    keep_days: float,
    options: dict[str, Any] | None = None,
) -> None:
    """Store the report of the import ``log`` belongs to (and delete reports past their time).

    In a transaction of its own unless ``conn`` is in one already.
    """
    async with conn.transaction():
        await conn.execute(query("import_report_purge"))
        saved = await conn.fetchval(
            query("import_report_insert"),
            log.import_id,
            campaign_id,
            source,
            file_name,
            received,
            inserted,
            updated,
            log.rows,
            log.count,
            log.listed,
            stored,
            keep_days * 86400.0,
            log.duplicates,
            json.dumps(options) if options else None,
        )
        if saved is not None and log.listed:
            # asyncpg reads a file source in a thread: the loop is not held up.
            await conn.copy_to_table(
                "import_problems", source=log.spooled(), columns=_COLUMNS, format="csv"
            )


async def get(conn: Any, import_id: int) -> Any:
    """The report's counts (a record), or None: no such import, or its report is past its time."""
    return await conn.fetchrow(query("import_report_get"), import_id)


async def problems(conn: Any, import_id: int) -> AsyncIterator[list[Any]]:
    """The report's problems in their order, a page at a time (records: row_number,
    field, reason)."""
    after = 0
    while True:
        page = await conn.fetch(query("import_report_problems"), import_id, after, _PAGE)
        if not page:
            return
        yield page
        after = page[-1]["position"]


def csv_lines(rows: Iterable[Any], *, header: bool = False) -> bytes:
    """CSV lines (UTF-8, CRLF) of problems: row, field, reason."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(("row", "field", "reason"))
    for problem in rows:
        # A reason quotes the value at fault: CRM text, which no spreadsheet may run.
        writer.writerow(
            (
                problem["row_number"],
                formula_safe(problem["field"] or ""),
                formula_safe(problem["reason"]),
            )
        )
    return buffer.getvalue().encode()
