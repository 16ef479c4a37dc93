"""Call recordings: a campaign's settings, finding each recording, serving it, deleting it.

A campaign that records (``record_calls``) has its answered calls recorded by our
dialplan (``[dialer-record]``: MixMonitor from the answer until the hangup, after an
optional announcement), to ``<attempt id>.wav`` in Asterisk's ``monitor/dialer`` folder.
This daemon reads that folder as ``[recording] dir``: the same folder when Asterisk runs
on this machine (for the local stack, inside its root filesystem), shared storage (NFS,
SMB...) mounted here when it does not.

The :class:`RecordingKeeper` task, every ``scan_interval_s``:

- finds the recordings of calls that ended (answered, of a campaign that records): the
  file there and no longer growing, the attempt gets its path, duration (from the WAV
  header) and size (``recording_status`` ``stored``); not there ``missing_after_s`` after
  the call ended, ``missing`` (not recorded, or not reachable from here: the API says so);
- deletes the recordings older than their campaign's retention (``recording_retention_days``,
  else ``[recording] retention_days``): the file, then ``deleted`` on the attempt.

Several daemons may run it at once: every change is conditional on the attempt's current
status, so each happens once. A file is only ever looked for, served or deleted inside the
folder, named by its attempt id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import RecordingConfig
from ..db.outage import TRANSIENT_ERRORS, Outage
from ..db.queries import queries_of
from ..errors import InvalidInput, NotFound
from ..observability.metrics import Metrics
from . import operations as campaigns

query = queries_of(__name__)

logger = logging.getLogger(__name__)

# A file whose size and time have not changed for this long is complete.
SETTLED_S = 2.0
BATCH = 200
DB_RETRY_MAX_S = 5.0


def inside(directory: str, path: str) -> Path | None:
    """``path`` if it is a file name inside ``directory`` (no escaping it), else None."""
    if not directory:
        return None
    base = Path(directory).resolve()
    candidate = (base / path).resolve()
    if candidate.parent != base:
        return None
    return candidate


def file_name(attempt_id: str) -> str:
    """The recording of an attempt, as our dialplan names it."""
    return f"{attempt_id}.wav"


@dataclasses.dataclass(frozen=True)
class WavInfo:
    duration_s: float
    size: int


def wav_info(path: Path) -> WavInfo | None:
    """The duration and size of a finished WAV file (blocking); None when it is not one."""
    try:
        size = path.stat().st_size
        with wave.open(str(path), "rb") as audio:
            frames, rate = audio.getnframes(), audio.getframerate()
    except (OSError, EOFError, wave.Error):
        return None
    if rate <= 0:
        return None
    return WavInfo(frames / rate, size)


async def delete_file(directory: str, path: str) -> str:
    """Delete a recording: "deleted", "missing" (not there: deleted already, or never
    reachable here), or why it could not be."""
    target = inside(directory, path)
    if target is None:
        return f"{path}: not inside [recording] dir ({directory or 'not set'})"
    try:
        await asyncio.to_thread(os.unlink, target)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        logger.warning("cannot delete recording %s: %s", target, exc, extra={"action": "recording"})
        return f"{target}: {exc.strerror or exc}"
    return "deleted"


# --- a campaign's settings ---------------------------------------------------------------


def settings_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "enabled": row["record_calls"],
        "announcement": row["recording_announcement"],
        "retention_days": row["recording_retention_days"],
    }


async def get_settings(conn: Any, campaign_id: int) -> dict[str, Any]:
    return settings_json(await campaigns.get(conn, campaign_id))


async def put_settings(conn: Any, campaign_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """Set whether the campaign records, its announcement and its retention. The calls
    placed from the engine's next tick follow them (a call up keeps what it had)."""
    current = await campaigns.get(conn, campaign_id)
    enabled = body.get("enabled", current["record_calls"])
    announcement = body.get("announcement", current["recording_announcement"])
    retention = body.get("retention_days", current["recording_retention_days"])
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", details=[_field("enabled")])
    announcement = campaigns.check_sound(announcement, "announcement")
    if retention is not None and (
        isinstance(retention, bool) or not isinstance(retention, int) or not 1 <= retention <= 36500
    ):
        raise InvalidInput(
            "retention_days must be 1 to 36500, or null for [recording] retention_days",
            details=[_field("retention_days")],
        )
    row = await conn.fetchrow(
        query("set_campaign_recording"), campaign_id, enabled, announcement, retention
    )
    return settings_json(row)


def _field(name: str) -> dict[str, str]:
    return {"field": name, "message": "invalid"}


# --- serving one ---------------------------------------------------------------------------


async def file_of(conn: Any, attempt_id: str, config: RecordingConfig) -> Path:
    """The recording's file, there to be read; NotFound saying why not otherwise."""
    row = await conn.fetchrow(query("attempt_recording"), attempt_id)
    if row is None:
        raise NotFound(f"attempt {attempt_id} not found")
    status = row["recording_status"]
    where = config.dir or "(not set)"
    if status == "deleted":
        raise NotFound(
            f"the recording was deleted on {row['recording_deleted_at']:%Y-%m-%d %H:%M} UTC "
            "(its campaign's retention, or an erasure)",
            code="recording_deleted",
        )
    if status == "missing":
        raise NotFound(
            f"the recording is not reachable: Asterisk writes {file_name(attempt_id)} to its "
            f"monitor/dialer folder, and this dialer did not find it in [recording] dir "
            f"{where}. When the PBX runs elsewhere, that folder must be shared storage "
            "mounted there",
            code="recording_not_reachable",
        )
    if status is None:
        raise NotFound(
            "this call has no recording: its campaign does not record, it was not answered, "
            "or it ended moments ago and its file is not found yet",
            code="no_recording",
        )
    target = inside(config.dir, file_name(attempt_id))
    if target is None or not await asyncio.to_thread(target.is_file):
        raise NotFound(
            f"the recording was stored as {row['recording_path']} but is not reachable in "
            f"[recording] dir {where} now (is the shared storage mounted?)",
            code="recording_not_reachable",
        )
    return target


# --- the task ----------------------------------------------------------------------------------


class RecordingKeeper:
    """Notes each recording as it is written, deletes those past their retention."""

    def __init__(
        self,
        pool: Any,
        config: RecordingConfig,
        outage: Outage | None = None,
        metrics: Metrics | None = None,
    ):
        self.pool = pool
        self.config = config
        self.outage = outage if outage is not None else Outage()
        self.metrics = metrics
        # Files seen growing: (size, mtime) at the last look.
        self._last: dict[str, tuple[int, float]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            wait = self.config.scan_interval_s
            try:
                await self.step()
                self.outage.back()
                delay = 0.2
            except TRANSIENT_ERRORS as exc:
                self.outage.down(exc, component="recordings")
                wait, delay = delay, min(delay * 2, DB_RETRY_MAX_S)
            except Exception:
                # A bug or a bad file must not stop the daemon: logged loudly, next turn.
                logger.exception("recordings: a scan failed", extra={"action": "recording"})
            # The next turn comes after ``wait``, or at once when asked to stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def step(self) -> tuple[int, int, int]:
        """One scan: (recordings noted, missing, deleted)."""
        found = missing = 0
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query("recordings_to_find"), BATCH)
        looking = {str(row["id"]) for row in rows}
        self._last = {k: v for k, v in self._last.items() if k in looking}
        for row in rows:
            outcome = await self._look(row)
            if outcome == "stored":
                found += 1
            elif outcome == "missing":
                missing += 1
        deleted = await self._expire()
        if self.metrics is not None:
            for result, count in (("stored", found), ("missing", missing), ("deleted", deleted)):
                if count:
                    self.metrics.recordings.labels(result).inc(count)
        return found, missing, deleted

    async def _look(self, row: Any) -> str | None:
        attempt_id = str(row["id"])
        target = inside(self.config.dir, file_name(attempt_id))
        stat = await asyncio.to_thread(_stat, target) if target is not None else None
        if stat is None:
            if row["ended_s"] >= self.config.missing_after_s:
                async with self.pool.acquire() as conn:
                    await conn.execute(query("recording_missing"), row["id"])
                logger.warning(
                    "recording of attempt %s not found in [recording] dir %s",
                    attempt_id,
                    self.config.dir or "(not set)",
                    extra={"action": "recording", "attempt_id": attempt_id},
                )
                return "missing"
            return None
        # Complete once it stopped changing (MixMonitor closes it just after the hangup).
        previous = self._last.get(attempt_id)
        self._last[attempt_id] = stat
        if previous != stat and time.time() - stat[1] < SETTLED_S:
            return None
        assert target is not None
        info = await asyncio.to_thread(wav_info, target)
        if info is None:
            return None
        self._last.pop(attempt_id, None)
        async with self.pool.acquire() as conn:
            await conn.execute(
                query("recording_stored"), row["id"], str(target), info.duration_s, info.size
            )
        return "stored"

    async def _expire(self) -> int:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                query("recordings_past_retention"), self.config.retention_days, BATCH
            )
        deleted = 0
        for row in rows:
            outcome = await delete_file(self.config.dir, file_name(str(row["id"])))
            if outcome in ("deleted", "missing"):
                async with self.pool.acquire() as conn:
                    await conn.execute(query("recording_deleted"), row["id"])
                deleted += 1
        if deleted:
            logger.info(
                "deleted %d recordings past their retention",
                deleted,
                extra={"action": "recording", "count": deleted},
            )
        return deleted


def _stat(path: Path) -> tuple[int, float] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime
