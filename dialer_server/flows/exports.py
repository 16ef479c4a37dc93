"""Export tasks: a contact's row in its task's file of the day, and the files.

A row is written in the transaction that ends the export task (``add_row``), keyed
by the pass's idempotency key: a pass run twice holds one row. The file of a task
and day (the campaign's time zone) is then written from the database, whole, under
a transaction-scoped advisory lock per file: into a temporary file beside it,
flushed to disk, renamed over the old one (``write_file``): a reader sees the old
file or the new one, never half of one. The rows a file held when written are
noted; a file behind its rows (its daemon died between the commit and the write)
is written again by the next sweep (``stale_files``). The same rows, written by
the same code as the campaign's results export (``campaigns/export.py``), are
what the API serves for download.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..campaigns import export, xlsx
from ..db.queries import queries_of

query = queries_of(__name__)

# pg_advisory_xact_lock(LOCK_NAMESPACE, hashtext(file)): one writer per file.
LOCK_NAMESPACE = 1687
MEDIA_TYPES = {"csv": export.CSV_MEDIA_TYPE, "xlsx": export.XLSX_MEDIA_TYPE}


def _json_value(value: Any) -> Any:
    # As the results export writes them: ISO 8601 in UTC.
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


async def add_row(
    conn: Any, *, key: str, campaign_id: int, task: str, fmt: str, contact_id: int
) -> tuple[date, bool]:
    """Note the contact's row in today's file of ``task``; (the day, whether it is new)."""
    row = await conn.fetchrow(query("export_row"), contact_id)
    values = {column: _json_value(row[column]) for column in export.COLUMNS}
    day = row["day"]
    inserted = await conn.fetchval(
        query("insert_export_row"), key, campaign_id, task, day, contact_id, json.dumps(values)
    )
    if inserted is not None:
        await conn.execute(query("count_export_row"), campaign_id, task, day, fmt)
    return day, inserted is not None


def file_name(campaign_id: int, task: str, day: date, fmt: str) -> str:
    return f"{campaign_id}/{task}-{day.isoformat()}.{fmt}"


def render(rows: Sequence[Mapping[str, Any]], fmt: str) -> bytes:
    """A file's bytes: the results export's columns and writers."""
    if fmt == "xlsx":
        workbook = xlsx.XlsxStream("results", export.COLUMNS)
        return workbook.rows(export.xlsx_values(export.COLUMNS, rows)) + workbook.close()
    return export.csv_rows(rows, header=True)


async def file_rows(conn: Any, campaign_id: int, task: str, day: date) -> list[dict[str, Any]]:
    """The rows of one file, in the order they were added."""
    return [
        json.loads(r["row"]) for r in await conn.fetch(query("file_rows"), campaign_id, task, day)
    ]


async def list_files(conn: Any, campaign_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("list_files"), campaign_id)]


async def get_file(conn: Any, campaign_id: int, task: str, day: date) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("get_file"), campaign_id, task, day)
    return dict(row) if row is not None else None


async def write_file(pool: Any, folder: str, campaign_id: int, task: str, day: date) -> int:
    """Write one file from its rows, atomically; the rows it holds."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            query("lock_file"), LOCK_NAMESPACE, file_name(campaign_id, task, day, "")
        )
        meta = await get_file(conn, campaign_id, task, day)
        if meta is None:
            return 0
        rows = await file_rows(conn, campaign_id, task, day)
        target = Path(folder) / file_name(campaign_id, task, day, meta["format"])
        data = await asyncio.to_thread(render, rows, meta["format"])
        await asyncio.to_thread(_replace, target, data)
        await conn.execute(query("file_written"), campaign_id, task, day, len(rows))
    return len(rows)


def _replace(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself is durable once the folder is flushed.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def stale_files(conn: Any, limit: int) -> list[tuple[int, str, date]]:
    """Files whose rows outnumber what was last written: (campaign, task, day)."""
    return [
        (r["campaign_id"], r["task"], r["day"])
        for r in await conn.fetch(query("stale_files"), limit)
    ]
