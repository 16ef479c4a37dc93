"""The drop folder: contact files put in a folder are imported by the daemon.

``[import] drop_dir`` names the folder (empty: off). A file named
``<campaign_id>-<anything>.csv`` or ``.xlsx`` (any case) is imported into that campaign:

1. It is taken only once its size and modification time have stayed the same for
   ``settle_s`` (a file still being written is left alone). Safer still, and what
   scripts should do: write it under a name the folder ignores (``.3-leads.csv``,
   ``3-leads.csv.part``) and rename it into place when complete.
2. It is claimed by a rename into ``processing/`` (so daemons sharing the folder never
   import a file twice), imported, then moved to ``done/``, with
   ``<name>.report.json`` beside it (counts, the import's id, and every problem its report
   lists, read back from the database a page at a time). A file that cannot be imported
   (not CSV/XLSX, unknown column, no such campaign, or bad rows under ``all_or_nothing``)
   goes to ``failed/`` with its report. A name already taken there
   gets a numbered suffix (``3-leads.2.csv``).
3. When PostgreSQL is unavailable the file goes back to the folder and is tried again.

Hidden files, directories and other extensions are ignored; a ``.csv``/``.xlsx`` whose
name does not start with a campaign id goes to ``failed/``. Files left in
``processing/`` by a daemon that died mid-import are not retried automatically (the
import may have been committed): the daemon logs them at start; move them back to retry
(rows with an external id update rather than duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ImportConfig
from ..db.outage import TRANSIENT_ERRORS, Outage
from ..errors import DialerError
from . import import_reports
from .data_rights import PrivacyKeyError
from .importer import CampaignNotFound, Dedup, ImportReport, import_file
from .rows import ImportFileError

logger = logging.getLogger(__name__)

# ASCII digits only: int() would also read other scripts' digits ("\u0663" is 3).
FILE_NAME = re.compile(r"^([0-9]+)-.*\.(csv|xlsx)$", re.IGNORECASE)
_EXTENSIONS = (".csv", ".xlsx")
_ACQUIRE_TIMEOUT_S = 10.0


@dataclasses.dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class DropFolder:
    """Watches ``config.drop_dir`` and imports what settles there. One per daemon."""

    def __init__(
        self,
        pool: Any,
        config: ImportConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        outage: Outage | None = None,
        hash_key: str | None = None,
    ) -> None:
        self.pool = pool
        # [privacy] hash_key: an erased person's number is refused (data_rights).
        self.hash_key = hash_key
        self.outage = outage if outage is not None else Outage()
        self.config = config
        self.dir = Path(config.drop_dir)
        self.clock = clock
        self._seen: dict[str, _Seen] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Scan every ``poll_interval_s`` until ``stop`` is set."""
        try:
            await asyncio.to_thread(self.prepare)
        except OSError as exc:
            raise DialerError(
                f"cannot use the drop folder {self.dir} (import.drop_dir): {exc.strerror or exc}"
            ) from None
        logger.info(
            "watching drop folder %s",
            self.dir,
            extra={"action": "drop_folder", "dir": str(self.dir)},
        )
        while not stop.is_set():
            try:
                await self.scan()
            except OSError as exc:
                # A folder that went away or lost its permissions: say so, keep trying.
                logger.warning("drop folder %s: %s", self.dir, exc, extra={"action": "drop_folder"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_interval_s)

    def prepare(self) -> None:
        """Create the folder and its subfolders; log files a dead daemon left in processing/."""
        for sub in ("", "processing", "done", "failed"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        left = sorted(p.name for p in (self.dir / "processing").iterdir())
        if left:
            logger.warning(
                "files left in %s by an import that did not finish (maybe stored, maybe "
                "not): check them and move them back to retry: %s",
                self.dir / "processing",
                ", ".join(left),
                extra={"action": "drop_folder"},
            )

    async def scan(self) -> list[Path]:
        """Import every settled file once; the paths of the files moved to done/ or failed/."""
        moved = []
        for name in await asyncio.to_thread(self._settled):
            target = await self._process(name)
            if target is not None:
                moved.append(target)
        return moved

    def _settled(self) -> list[str]:
        now = self.clock()
        present: dict[str, _Seen] = {}
        ready = []
        with os.scandir(self.dir) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.lower().endswith(_EXTENSIONS):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
                before = self._seen.get(name)
                if before is None or (before.size, before.mtime_ns) != (
                    stat.st_size,
                    stat.st_mtime_ns,
                ):
                    before = _Seen(stat.st_size, stat.st_mtime_ns, now)
                present[name] = before
                if now - before.since >= self.config.settle_s:
                    ready.append(name)
        self._seen = present
        return sorted(ready)

    async def _process(self, name: str) -> Path | None:
        source = self.dir / name
        claimed = self.dir / "processing" / name
        try:
            await asyncio.to_thread(os.rename, source, claimed)
        except FileNotFoundError:
            return None  # another daemon took it
        self._seen.pop(name, None)
        started = datetime.datetime.now(datetime.UTC)
        match = FILE_NAME.match(name)
        report: dict[str, Any] = {"file": name, "started_at": started.isoformat()}
        if match is None:
            report["error"] = (
                "the file name must start with the campaign id: <campaign_id>-<anything>.csv"
                " or .xlsx"
            )
            return await self._finish(claimed, "failed", report)
        campaign_id = int(match.group(1))
        report["campaign_id"] = campaign_id
        try:
            stream = await asyncio.to_thread(claimed.open, "rb")
        except OSError as exc:
            report["error"] = f"cannot read the file: {exc.strerror or exc}"
            return await self._finish(claimed, "failed", report)
        try:
            async with self.pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
                try:
                    result: ImportReport = await import_file(
                        conn,
                        campaign_id,
                        name,
                        stream,
                        all_or_nothing=self.config.all_or_nothing,
                        source="drop_folder",
                        keep_report_days=self.config.report_days,
                        dedup=Dedup(self.config.dedup, self.config.duplicates),
                        hash_key=self.hash_key,
                    )
                except (ImportFileError, CampaignNotFound, PrivacyKeyError) as exc:
                    report["error"] = str(exc)
                    return await self._finish(claimed, "failed", report)
                report.update(result.to_dict())
                outcome = "done" if result.stored else "failed"
                # Every listed problem, read back from the report as the file is written.
                return await self._finish(claimed, outcome, report, conn, result.import_id)
        except TRANSIENT_ERRORS as exc:
            # PostgreSQL is not there right now: keep the file and try again.
            self.outage.down(exc, component="drop folder")
            logger.warning(
                "drop folder: cannot import %s now (%s): will try again",
                name,
                exc,
                extra={"action": "drop_folder", "file": name},
            )
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.rename, claimed, source)
            return None
        except Exception as exc:
            logger.exception(
                "drop folder: importing %s failed", name, extra={"action": "drop_folder"}
            )
            report["error"] = f"internal error: {exc!r}"
            return await self._finish(claimed, "failed", report)
        finally:
            await asyncio.to_thread(stream.close)

    async def _finish(
        self,
        claimed: Path,
        outcome: str,
        report: dict[str, Any],
        conn: Any = None,
        import_id: int | None = None,
    ) -> Path:
        report["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat()
        report["outcome"] = outcome
        target = await asyncio.to_thread(_move, claimed, self.dir / outcome)
        try:
            await _write_report(target, report, conn, import_id)
        except TRANSIENT_ERRORS as exc:
            # The import is done (or failed) whatever becomes of its report file: the
            # database's report has every problem (GET /api/v1/imports/{id}/report).
            logger.warning(
                "drop folder: the report of %s could not be written: %s",
                report["file"],
                exc,
                extra={"action": "drop_folder", "file": report["file"]},
            )
        level = logging.INFO if outcome == "done" else logging.WARNING
        logger.log(
            level,
            "drop folder: %s -> %s/%s%s",
            report["file"],
            outcome,
            target.name,
            f": {report['error']}" if "error" in report else "",
            extra={
                "action": "drop_folder",
                "file": report["file"],
                "outcome": outcome,
                **{
                    k: report[k]
                    for k in (
                        "campaign_id",
                        "import_id",
                        "received",
                        "inserted",
                        "updated",
                        "rejected_rows",
                    )
                    if k in report
                },
            },
        )
        return target


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under a name free for it and its report."""
    target = folder / path.name
    counter = 1
    while target.exists() or target.with_name(target.name + ".report.json").exists():
        counter += 1
        target = folder / f"{Path(path.name).stem}.{counter}{Path(path.name).suffix}"
    os.rename(path, target)
    return target


async def _write_report(
    target: Path, report: dict[str, Any], conn: Any, import_id: int | None
) -> None:
    """``<target>.report.json``: ``report``, and every problem its import's report lists
    (read from the database a page at a time, never all in memory), written under a
    hidden name and renamed into place."""
    head = {k: v for k, v in report.items() if k != "rejected"}
    partial = target.with_name("." + target.name + ".report.json.tmp")
    out = await asyncio.to_thread(partial.open, "w", encoding="utf-8", errors="backslashreplace")
    try:
        # The head's closing brace is left off: the problems follow.
        text = json.dumps(head, indent=2, ensure_ascii=False)[:-2] + ',\n  "rejected": ['
        await asyncio.to_thread(out.write, text)
        if import_id is not None and conn is not None:
            first = True
            async for page in import_reports.problems(conn, import_id):
                lines = []
                for problem in page:
                    item = {
                        "row": problem["row_number"],
                        "field": problem["field"],
                        "reason": problem["reason"],
                    }
                    lines.append(("\n    " if first else ",\n    ") + json.dumps(item))
                    first = False
                await asyncio.to_thread(out.write, "".join(lines))
            await asyncio.to_thread(out.write, "\n  ]\n}\n" if not first else "]\n}\n")
        else:
            await asyncio.to_thread(out.write, "]\n}\n")
    finally:
        await asyncio.to_thread(out.close)
    await asyncio.to_thread(os.rename, partial, target.with_name(target.name + ".report.json"))
