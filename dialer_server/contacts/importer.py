"""Contact import: CSV and XLSX files and batches of rows into a campaign, in bulk.

The rules for a row are in :mod:`rows`, the file readers in :mod:`files`, the report in
:mod:`import_reports`. The ways in: :func:`import_file` (a file, read a chunk at a time)
and :func:`import_contacts` (rows already in memory: a JSON batch); the HTTP API,
``dialer-server import`` and the drop folder (:mod:`drop_folder`) all go through them.

Nothing of an import runs on the event loop but the database's part: the file is read
and its rows checked off the loop (reading in a thread; checking in a thread, or in one
process per CPU for big imports: see :func:`import_contacts`), a few chunks ahead, while
the previous chunk is written. What an import holds in memory is bounded by its chunks,
not by its size: a few chunks of rows, the external ids seen so far (to find duplicates),
and the first problems (the others go to a spool file, then to the report). Its answer is
bounded too: counts, the first problems, and the id of its report, which lists them all.

Storing is one transaction: chunks of validated rows are copied (COPY) into a temporary
table and moved into ``contacts`` with one ``INSERT ... ON CONFLICT (campaign_id,
external_id) DO UPDATE`` per chunk. A new contact is due at once (``next_attempt_at =
now()``). A contact whose external id is already in the campaign is updated: its phones,
params and time zone only, never its state, status or schedule, whether it is pending, in
a call or closed (to dial a closed contact again, reset it through the API). The update
sets the columns the import has (a file's header; the keys of a batch's rows), an empty
value clearing the field, and leaves the others as they are. An interrupted import stores
nothing. The report is written after the import's own transaction, in the caller's (if
any): an all-or-nothing import that stored nothing still has its report.

Dedup (:class:`Dedup`, off unless asked): a new contact whose phone (any of phone1..5, in
E.164) is already a phone of a contact of the campaign (``campaign``; of the campaign or
of any running campaign: ``running``), or of an earlier row of the import, is a
duplicate: stored as ``not_connected``/``failed``/``$duplicate`` and never dialled
(``keep``), or not stored (``skip``). Each is listed in the import's report, in row
order among the problems, and counted apart (``duplicates``). A row that updates a
contact (its external id is the campaign's already) is never a duplicate. The numbers
of earlier chunks are looked up in the database (they are stored already, in this
transaction): dedup holds nothing in memory beyond a chunk.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import io
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from ..db.queries import queries_of
from ..errors import DialerError
from . import data_rights, import_reports
from .files import open_rows
from .rows import (
    COLUMNS,
    Batch,
    Checked,
    ExternalIds,
    ImportFileError,
    Record,
    RowChecker,
    RowError,
    check_chunk,
)

query = queries_of(__name__)

__all__ = [
    "CampaignNotFound",
    "Dedup",
    "ImportFileError",
    "ImportReport",
    "RowError",
    "import_contacts",
    "import_file",
]

logger = logging.getLogger(__name__)

# Rows read, validated and stored at a time: big enough for COPY to pay, small enough for
# validation and the database to overlap, for progress to move, and for memory to stay
# small whatever the import's size.
CHUNK_ROWS = 10_000
# From this size an import is worth starting worker processes for (about a second of
# checking): rows of a batch, bytes of a file (some 50,000 rows of a typical CSV).
PARALLEL_MIN_ROWS = 50_000
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
# How long a report is kept when the caller does not say ([import] report_days).
REPORT_DAYS = 7.0
_BUFFER_TABLE = "contact_import_rows"
# Campaign ids are PostgreSQL bigints: an id outside this range names no campaign.
_MAX_CAMPAIGN_ID = 2**63 - 1

# (rows handled so far, the share of the input read: None when unknown)
Progress = Callable[[int, float | None], None]


class CampaignNotFound(DialerError):
    """No such campaign."""


DEDUP_SCOPES = ("off", "campaign", "running")
DUPLICATE_ACTIONS = ("keep", "skip")


@dataclasses.dataclass(frozen=True)
class Dedup:
    """Whether an import looks for duplicates by phone number, against what, and what it
    does with them: ``scope`` off, campaign or running (the campaign and every running
    campaign); ``duplicates`` keep (stored as failed/$duplicate) or skip."""

    scope: str = "off"
    duplicates: str = "keep"

    def __post_init__(self) -> None:
        if self.scope not in DEDUP_SCOPES:
            raise ValueError(f"dedup must be one of {', '.join(DEDUP_SCOPES)}")
        if self.duplicates not in DUPLICATE_ACTIONS:
            raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_ACTIONS)}")

    @property
    def on(self) -> bool:
        return self.scope != "off"

    def options(self) -> dict[str, str] | None:
        """What the report records of it (None: off)."""
        return {"dedup": self.scope, "duplicates": self.duplicates} if self.on else None


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
    ``duplicates``: rows dedup found (kept as failed/$duplicate, and counted in
    ``inserted`` too; or skipped), the first of them in ``duplicate_rows``.
    ``problems``: every problem of every bad row (a row with two problems counts twice);
    ``rejected_rows`` counts the rows. ``rejected``: the first of those problems
    (import_reports.SHOWN), in row order; the report ``import_id`` lists them all (its
    first ``listed``). ``stored`` is False when the import was all-or-nothing and a row
    was bad: then nothing was written (but the report).
    """

    received: int
    inserted: int
    updated: int
    rejected: list[RowError]
    stored: bool
    rejected_rows: int
    problems: int
    listed: int = 0
    import_id: int | None = None
    duplicates: int = 0
    duplicate_rows: list[RowError] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "import_id": self.import_id,
            "received": self.received,
            "inserted": self.inserted,
            "updated": self.updated,
            "stored": self.stored,
            "rejected_rows": self.rejected_rows,
            "problems": self.problems,
            "problems_listed": self.listed,
            "duplicates": self.duplicates,
            "rejected": [dataclasses.asdict(e) for e in self.rejected],
            "duplicate_rows": [dataclasses.asdict(e) for e in self.duplicate_rows],
        }


# --- the ways in -------------------------------------------------------------------------


async def import_contacts(
    conn: Any,
    campaign_id: int,
    rows: Sequence[Mapping[str, Any]],
    *,
    default_region: str,
    all_or_nothing: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    source: str = "api",
    keep_report_days: float = REPORT_DAYS,
    dedup: Dedup = Dedup(),
    hash_key: str | None = None,
) -> ImportReport:
    """Validate ``rows`` and store the good ones in the campaign, in one transaction.

    ``rows`` are a batch (row numbers are the 1-based positions) or a reader's (they carry
    ``$row``). ``default_region`` (the campaign's, e.g. ``US``) reads numbers without a
    country code. Bad rows are reported; the good ones are stored unless
    ``all_or_nothing``, in which case one bad row stores nothing. ``progress`` is called
    after each chunk. ``workers``: validation processes (0: a thread; None: one process
    per CPU from PARALLEL_MIN_ROWS rows on a machine with more than one CPU). ``source``
    names the way in, in the report (api, file, cli, drop_folder). ``dedup``: whether to
    look for duplicates by phone number (see the module's docstring). ``hash_key``: the
    ``[privacy] hash_key`` erased numbers are known by (a row with one is refused).

    ``conn`` is an asyncpg connection (not a pool); if it is already in a transaction the
    import runs in a savepoint, and the report is written in that transaction. Raises
    CampaignNotFound when the campaign does not exist.
    """
    reader = await asyncio.to_thread(_RowList, rows)
    return await _import(
        conn,
        campaign_id,
        reader,
        region=default_region,
        all_or_nothing=all_or_nothing,
        progress=progress,
        workers=_workers(workers, len(rows) >= PARALLEL_MIN_ROWS),
        source=source,
        file_name=None,
        keep_report_days=keep_report_days,
        dedup=dedup,
        hash_key=hash_key,
    )


async def import_file(
    conn: Any,
    campaign_id: int,
    name: str,
    file: IO[bytes] | bytes | Path,
    *,
    fmt: str | None = None,
    default_region: str | None = None,
    all_or_nothing: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    source: str = "file",
    keep_report_days: float = REPORT_DAYS,
    dedup: Dedup = Dedup(),
    hash_key: str | None = None,
) -> ImportReport:
    """Import a CSV or XLSX file, read a chunk at a time (see :func:`import_contacts`).

    ``file`` is a seekable binary file (left open), a path, or the file's bytes. ``fmt``
    ("csv", "xlsx") says what it is; None: told by its content and ``name``.
    ``default_region``: None takes the campaign's. ImportFileError when the file cannot
    be read (before anything is stored, or later: then nothing is stored).
    """
    _check_campaign_id(campaign_id)
    region = default_region or await campaign_region(conn, campaign_id)
    opened: IO[bytes] | None = None
    if isinstance(file, bytes):
        stream: IO[bytes] = io.BytesIO(file)
    elif isinstance(file, Path):
        stream = opened = await asyncio.to_thread(file.open, "rb")
    else:
        stream = file
    try:
        size = await asyncio.to_thread(_size, stream)
        reader = await asyncio.to_thread(open_rows, name, stream, fmt)
        try:
            return await _import(
                conn,
                campaign_id,
                reader,
                region=region,
                all_or_nothing=all_or_nothing,
                progress=progress,
                workers=_workers(workers, size >= PARALLEL_MIN_BYTES),
                source=source,
                file_name=name or None,
                keep_report_days=keep_report_days,
                dedup=dedup,
                hash_key=hash_key,
            )
        finally:
            await asyncio.to_thread(reader.close)
    finally:
        if opened is not None:
            await asyncio.to_thread(opened.close)


def _size(stream: IO[bytes]) -> int:
    position = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(position)
    return size


def _workers(workers: int | None, large: bool) -> int:
    if workers is not None:
        return workers
    cpus = os.cpu_count() or 1
    return cpus if cpus > 1 and large else 0


class _Rows(Protocol):
    """Where an import's rows come from: a file's reader, or rows in memory."""

    columns: list[str]

    def read(self, count: int) -> Sequence[Mapping[str, Any]]: ...

    def fraction(self) -> float | None: ...


class _RowList:
    """Rows already in memory, read like a file's."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._rows = rows
        self._at = 0
        # The columns any row names: those an update sets (the others it leaves alone).
        names: set[str] = set().union(*rows)
        self.columns = [c for c in COLUMNS if c in names]

    def read(self, count: int) -> Sequence[Mapping[str, Any]]:
        chunk = list(self._rows[self._at : self._at + count])
        self._at += len(chunk)
        return chunk

    def fraction(self) -> float | None:
        return self._at / len(self._rows) if self._rows else 1.0

    def close(self) -> None:
        """Nothing to let go: the rows are the caller's."""


# --- storing ---------------------------------------------------------------------------


class _Rollback(Exception):
    """All-or-nothing import with bad rows: undo everything."""


async def _import(
    conn: Any,
    campaign_id: int,
    reader: _Rows,
    *,
    region: str,
    all_or_nothing: bool,
    progress: Progress | None,
    workers: int,
    source: str,
    file_name: str | None,
    keep_report_days: float,
    dedup: Dedup,
    hash_key: str | None,
) -> ImportReport:
    _check_campaign_id(campaign_id)
    # Before anything is read: a missing or wrong key refuses the import at once.
    screen = await data_rights.suppression(conn, hash_key)
    log = import_reports.ProblemLog(await import_reports.new_id(conn))
    try:
        job = _Import(
            conn, campaign_id, reader, region, all_or_nothing, progress, log, dedup, screen
        )
        try:
            async with conn.transaction():
                if await conn.fetchval(query("contact_import_lock_campaign"), campaign_id) is None:
                    raise CampaignNotFound(f"campaign {campaign_id} does not exist")
                await conn.execute(query("contact_import_create_buffer"))
                await conn.execute(query("contact_import_clear_buffer"))
                await job.prepare()
                await job.run(workers)
                if all_or_nothing and log.count:
                    raise _Rollback
            stored = True
        except _Rollback:
            stored = False
            job.inserted = job.updated = 0
        await import_reports.save(
            conn,
            log,
            campaign_id=campaign_id,
            source=source,
            file_name=file_name,
            received=job.received,
            inserted=job.inserted,
            updated=job.updated,
            stored=stored,
            keep_days=keep_report_days,
            options=dedup.options(),
        )
    finally:
        await asyncio.to_thread(log.close)
    return ImportReport(
        received=job.received,
        inserted=job.inserted,
        updated=job.updated,
        rejected=log.shown,
        stored=stored,
        rejected_rows=log.rows,
        problems=log.count,
        listed=log.listed,
        import_id=log.import_id,
        duplicates=log.duplicates,
        duplicate_rows=log.duplicates_shown,
    )


class _Import:
    """One import's pipeline: chunks are read and checked off the loop, a few ahead,
    while the previous chunk is written to PostgreSQL (which works on another core)."""

    def __init__(
        self,
        conn: Any,
        campaign_id: int,
        reader: _Rows,
        region: str,
        all_or_nothing: bool,
        progress: Progress | None,
        log: import_reports.ProblemLog,
        dedup: Dedup = Dedup(),
        screen: data_rights.Suppression | None = None,
    ) -> None:
        self.conn = conn
        self.screen = screen
        self.campaign_id = campaign_id
        self.reader = reader
        self.region = region
        self.all_or_nothing = all_or_nothing
        self.progress = progress
        self.log = log
        self.dedup = dedup
        self.received = 0
        self.inserted = 0
        self.updated = 0
        self._writing: asyncio.Task[_Stored] | None = None
        self._written_upto = 0
        # Problems of the rows read so far, logged or not yet (all or nothing decides by it).
        self._problems_seen = 0
        # Dedup: the campaigns whose contacts' numbers a new contact may not have.
        self._dedup_campaigns: list[int] = []

    async def prepare(self) -> None:
        """What the import needs to know before its rows (in its transaction)."""
        if self.dedup.scope == "campaign":
            self._dedup_campaigns = [self.campaign_id]
        elif self.dedup.scope == "running":
            running = await self.conn.fetch(query("contact_import_running_campaigns"))
            self._dedup_campaigns = [self.campaign_id, *(r["id"] for r in running)]

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
        pending: collections.deque[tuple[int, asyncio.Future[Checked]]] = collections.deque()
        at_end = False

        async def submit() -> None:
            nonlocal at_end
            if at_end:
                return
            chunk = await asyncio.to_thread(self.reader.read, CHUNK_ROWS)
            if not chunk:
                at_end = True
                return
            start = self.received
            self.received += len(chunk)
            if executor is None:
                future = loop.run_in_executor(None, checker.check, chunk, start + 1)
            else:
                future = loop.run_in_executor(executor, check_chunk, self.region, chunk, start + 1)
            pending.append((self.received, future))

        try:
            for _ in range(ahead):
                await submit()
            while pending:
                end, future = pending.popleft()
                checked = await future
                await submit()
                batch = await asyncio.to_thread(external_ids.settle, checked)
                self._problems_seen += len(batch.errors)
                await self._written()
                if batch.records and not (self.all_or_nothing and self._problems_seen):
                    # The chunk's problems are logged with what storing it finds
                    # (duplicates), so that the report stays in row order.
                    self._writing = asyncio.create_task(
                        self._store(batch), name=f"import-{self.log.import_id}-store"
                    )
                    self._written_upto = end
                else:
                    await asyncio.to_thread(self.log.add, batch.errors)
                    self._progressed(end)
            await self._written()
        finally:
            for _, future in pending:
                future.cancel()
            if self._writing is not None:
                self._writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._writing
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def _progressed(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, self.reader.fraction())

    async def _written(self) -> None:
        """Wait for the write in progress, if any, count it and log its problems."""
        if self._writing is not None:
            stored = await self._writing
            self._writing = None
            self.inserted += stored.inserted
            self.updated += stored.updated
            self._problems_seen += stored.more_problems
            await asyncio.to_thread(self.log.add, stored.problems, stored.duplicates)
            self._progressed(self._written_upto)

    async def _store(self, batch: Batch) -> _Stored:
        conn = self.conn
        problems = batch.errors
        more = 0
        if self.screen is not None:
            batch, refused = await self._refuse_erased(batch, self.screen)
            if refused:
                more = len(refused)
                problems = sorted([*problems, *refused], key=lambda e: e.row)
        records: list[Record] | list[tuple[Any, ...]] = batch.records
        columns: tuple[str, ...] = COLUMNS
        duplicates: list[RowError] = []
        if self.dedup.on:
            records, duplicates = await self._find_duplicates(batch)
            columns = (*COLUMNS, "duplicate")
        if records:
            await conn.copy_records_to_table(_BUFFER_TABLE, records=records, columns=columns)
            row = await conn.fetchrow(
                query("contact_import_move_buffer"), self.campaign_id, self.reader.columns
            )
            await conn.execute(query("contact_import_clear_buffer"))
            inserted, updated = int(row["inserted"]), int(row["updated"])
        else:
            inserted = updated = 0
        return _Stored(inserted, updated, problems, duplicates, more)

    async def _refuse_erased(
        self, batch: Batch, screen: data_rights.Suppression
    ) -> tuple[Batch, list[RowError]]:
        """The chunk without the rows that have an erased person's number, and their
        problems: a later import must not bring an erased person back."""
        numbers = sorted({n for record in batch.records for n in record[1:6] if n})
        gone = await data_rights.erased(self.conn, screen, numbers)
        if not gone:
            return batch, []
        kept = Batch([], batch.errors, [])
        refused: list[RowError] = []
        for number, record in zip(batch.rows, batch.records, strict=True):
            slot = next((i for i, n in enumerate(record[1:6], 1) if n in gone), None)
            if slot is None:
                kept.records.append(record)
                kept.rows.append(number)
            else:
                refused.append(
                    RowError(
                        number,
                        f"phone{slot}",
                        "this number's owner was erased at their request (GDPR): it may not "
                        "be imported again",
                    )
                )
        return kept, refused

    async def _find_duplicates(self, batch: Batch) -> tuple[list[tuple[Any, ...]], list[RowError]]:
        """The chunk's records, each with its duplicate flag (the skipped ones left out),
        and the duplicates found, in row order."""
        numbers = sorted({n for record in batch.records for n in record[1:6] if n})
        ids = [record[0] for record in batch.records if record[0] is not None]
        found = await self.conn.fetch(
            query("contact_import_known_numbers"), self._dedup_campaigns, numbers, self.campaign_id
        )
        known = {r["number"]: r for r in found}
        updates = {
            r["external_id"]
            for r in await self.conn.fetch(
                query("contact_import_known_external_ids"), self.campaign_id, ids
            )
        }
        return await asyncio.to_thread(self._judge, batch, known, updates)

    def _judge(
        self, batch: Batch, known: Mapping[str, Any], updates: set[str]
    ) -> tuple[list[tuple[Any, ...]], list[RowError]]:
        """Pure: which records of the chunk are duplicates (blocking: in a thread)."""
        keep = self.dedup.duplicates == "keep"
        seen: dict[str, int] = {}
        out: list[tuple[Any, ...]] = []
        duplicates: list[RowError] = []
        for number, record in zip(batch.rows, batch.records, strict=True):
            phones = [(slot, phone) for slot, phone in enumerate(record[1:6], 1) if phone]
            why = None
            if record[0] is None or record[0] not in updates:
                for slot, phone in phones:
                    if phone in known:
                        contact = known[phone]
                        where = (
                            "an earlier row of this import"
                            if contact["this_import"]
                            else f"campaign {contact['campaign_id']}"
                        )
                        why = (slot, f"{phone} is already contact {contact['id']}'s, of {where}")
                    elif phone in seen:
                        why = (slot, f"{phone} is already in row {seen[phone]}")
                    if why is not None:
                        break
            if why is None:
                for _, phone in phones:
                    seen.setdefault(phone, number)
                out.append((*record, False))
                continue
            slot, text = why
            outcome = "kept as failed/$duplicate" if keep else "skipped"
            duplicates.append(RowError(number, f"phone{slot}", f"duplicate: {text} ({outcome})"))
            if keep:
                out.append((*record, True))
        return out, duplicates


@dataclasses.dataclass(frozen=True)
class _Stored:
    """What storing a chunk did: its counts, its rows' problems (to log), its duplicates."""

    inserted: int
    updated: int
    problems: list[RowError]
    duplicates: list[RowError]
    # Problems found while storing (rows with an erased number): for all or nothing.
    more_problems: int = 0


async def campaign_region(conn: Any, campaign_id: int) -> str:
    """The campaign's default region; CampaignNotFound if there is no such campaign."""
    _check_campaign_id(campaign_id)
    region = await conn.fetchval(query("contact_import_campaign_region"), campaign_id)
    if region is None:
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return str(region)


# --- the command line ------------------------------------------------------------------


class ProgressBar:
    """A one-line text bar on a terminal stream, redrawn at most every 0.1 s."""

    def __init__(self, stream: IO[str], width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self._drawn = 0.0
        self._last: tuple[int, float | None] | None = None

    def __call__(self, done: int, share: float | None) -> None:
        self._last = (done, share)
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._draw(now)

    def _draw(self, now: float) -> None:
        if self._last is None:
            return
        self._drawn = now
        done, share = self._last
        rate = done / max(now - self.started, 1e-9)
        bar = ""
        if share is not None:
            filled = int(share * self.width)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {share:4.0%} "
        self.stream.write(f"\r{bar}{done} rows  {rate:,.0f} rows/s")
        self.stream.flush()

    def end(self) -> None:
        """Draw the last state and end the line."""
        if self._last is not None:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def format_report(
    report: ImportReport,
    source: str,
    campaign_id: int,
    problems: Sequence[RowError],
    *,
    show_errors: int = 20,
) -> str:
    """A readable summary of a report, with its first ``show_errors`` ``problems``."""
    lines = [
        f"{source} -> campaign {campaign_id}: {report.received} rows received, "
        f"{report.inserted} inserted, {report.updated} updated, "
        f"{report.rejected_rows} rejected"
        + (f", {report.duplicates} duplicates" if report.duplicates else "")
    ]
    if not report.stored:
        lines.append("nothing stored: rows were rejected and the import was all-or-nothing")
    if report.problems:
        shown = list(problems[:show_errors])
        more = report.problems - len(shown)
        lines.append(
            f"{report.problems} problem{'s' if report.problems > 1 else ''}"
            + (f" (first {len(shown)} shown)" if more else "")
            + ":"
        )
        if shown:
            field_width = max(5, *(len(e.field or "-") for e in shown))
            row_width = max(3, *(len(str(e.row)) for e in shown))
            lines.append(f"  {'row':>{row_width}}  {'field':<{field_width}}  reason")
            lines.extend(
                f"  {e.row:>{row_width}}  {e.field or '-':<{field_width}}  {e.reason}"
                for e in shown
            )
        if more:
            lines.append(f"  ... and {more} more (import {report.import_id}'s report lists them)")
    return "\n".join(lines)


async def report_problems(conn: Any, report: ImportReport, limit: int) -> list[RowError]:
    """The first ``limit`` problems of ``report``: those it holds, else from its stored report."""
    if limit <= len(report.rejected) or report.import_id is None:
        return report.rejected[:limit]
    found: list[RowError] = []
    async for page in import_reports.problems(conn, report.import_id):
        found.extend(RowError(p["row_number"], p["field"], p["reason"]) for p in page)
        if len(found) >= limit:
            break
    return found[:limit]


async def run_import_command(
    pool: Any,
    path: Path,
    campaign_id: int,
    *,
    all_or_nothing: bool,
    show_errors: int,
    as_json: bool,
    show_progress: bool | None,
    keep_report_days: float = REPORT_DAYS,
    dedup: Dedup = Dedup(),
    hash_key: str | None = None,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """``dialer-server import``: 0 when every row was stored, 3 when rows were rejected.

    Raises DialerError (exit 1) when the file or the campaign cannot be used.
    """
    try:
        stream = await asyncio.to_thread(path.open, "rb")
    except OSError as exc:
        raise DialerError(f"cannot read {path}: {exc.strerror or exc}") from None
    if show_progress is None:
        show_progress = err.isatty()
    bar = ProgressBar(err) if show_progress else None
    try:
        async with pool.acquire() as conn:
            if bar is not None:
                err.write(f"reading {path.name} ...\n")
                err.flush()
            report = await import_file(
                conn,
                campaign_id,
                path.name,
                stream,
                all_or_nothing=all_or_nothing,
                progress=bar,
                source="cli",
                keep_report_days=keep_report_days,
                dedup=dedup,
                hash_key=hash_key,
            )
            if bar is not None:
                bar.end()
            if as_json:
                await _write_json(conn, out, path, campaign_id, report)
            else:
                shown = await report_problems(conn, report, show_errors)
                out.write(
                    format_report(report, path.name, campaign_id, shown, show_errors=show_errors)
                    + "\n"
                )
    finally:
        await asyncio.to_thread(stream.close)
    return 3 if report.problems else 0


async def _write_json(
    conn: Any, out: IO[str], path: Path, campaign_id: int, report: ImportReport
) -> None:
    """The whole report as one JSON object, every listed problem read from the database."""
    import json

    head = {"file": str(path), "campaign_id": campaign_id, **report.to_dict()}
    del head["rejected"]
    out.write(json.dumps(head)[:-1] + ', "rejected": [')
    first = True
    if report.import_id is not None:
        async for page in import_reports.problems(conn, report.import_id):
            for problem in page:
                item = {"row": problem["row_number"], "field": problem["field"]}
                item["reason"] = problem["reason"]
                out.write(("" if first else ", ") + json.dumps(item))
                first = False
    out.write("]}\n")
