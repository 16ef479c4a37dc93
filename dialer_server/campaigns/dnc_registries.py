"""National do-not-call registries: tens of millions of numbers, loaded whole or merged.

A registry (``dnc_registries``: a name, the region its national numbers are read with)
keeps its numbers in a partition of its own of ``dnc_registry_numbers``, each with an
optional expiry. Every claim probes them right before its Originate or SMS, with the
do-not-call lists (``engine/claims.py``'s ``do_not_call_numbers``): an index probe in each
registry's partition, whatever its size; an expired entry no longer stops a call.

Loading, in the caller's transaction:

- ``replace``: the numbers go by COPY into a new table (no index yet, a default for the
  registry and the expiry, so only the numbers are sent), whose index is then built in
  one pass, and which is attached in place of the previous partition (detached and
  dropped) in one short moment (``dnc_registry_swap``). Until the commit, every claim
  sees the previous registry whole; after it, the new one whole: never half of one.
- ``merge``: the numbers go by COPY into a temporary table, then into the registry's
  partition: those it lists already get the new expiry, the others are added; expired
  entries are deleted.

The file is read (and gunzipped) as it comes and its numbers made E.164 a piece at a
time off the event loop (``registry_files``): nothing grows with its size. A line that
is no number is counted and the first ones kept, and the load goes on; numbers are not
made unique (a number twice in a file is two entries: the check does not care).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from ..db.queries import queries_of
from ..errors import Conflict, InvalidInput, NotFound
from .registry_files import Gunzip, NumberReader, Problem, copy_lines

query = queries_of(__name__)

logger = logging.getLogger(__name__)

MODES = ("replace", "merge")
_MERGE_TABLE = "dnc_registry_merge"
# Decoded bytes a load reads at most (a file of 1.5 billion numbers).
MAX_DECODED_BYTES = 16 * 1024**3

# (numbers read so far, bytes read so far)
Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What a load did: lines that held a number or should have (``read``), numbers
    stored (``loaded``), lines refused (``rejected``, the first in ``problems``), the
    registry's entries after it, and how long it took."""

    registry: dict[str, Any]
    mode: str
    read: int
    loaded: int
    rejected: int
    problems: list[Problem]
    seconds: float

    @property
    def rate(self) -> float:
        return self.loaded / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "mode": self.mode,
            "read": self.read,
            "loaded": self.loaded,
            "rejected": self.rejected,
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "seconds": round(self.seconds, 3),
            "numbers_per_second": round(self.rate),
        }


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
        raise InvalidInput(
            "a registry's name is 1-63 of a-z 0-9 _ -, starting with a letter or digit",
            details=[{"field": "name", "message": "invalid name"}],
        )
    return name


def registry_json(row: Any) -> dict[str, Any]:
    return {
        "name": row["name"],
        "region": row["region"],
        "entries": row["entries"],
        "loaded_at": row["loaded_at"],
        "last_mode": row["last_mode"],
        "last_file": row["last_file"],
        "created_at": row["created_at"],
    }


async def list_registries(conn: Any) -> list[dict[str, Any]]:
    return [registry_json(r) for r in await conn.fetch(query("list_dnc_registries"))]


async def get(conn: Any, name: str) -> dict[str, Any]:
    row = await conn.fetchrow(query("get_dnc_registry"), check_name(name))
    if row is None:
        raise NotFound(f"no do-not-call registry {name!r}")
    return registry_json(row)


async def delete(conn: Any, name: str) -> dict[str, Any]:
    """Delete the registry and its numbers (they stop no call from the commit on)."""
    row = await conn.fetchrow(query("lock_dnc_registry"), check_name(name))
    if row is None:
        raise NotFound(f"no do-not-call registry {name!r}")
    await conn.execute(query("drop_dnc_registry_partition"), row["id"], row["generation"])
    await conn.execute(query("delete_dnc_registry"), row["id"])
    logger.info("do-not-call registry %s deleted", name, extra={"action": "dnc_registry"})
    return registry_json(row)


async def load(
    conn: Any,
    name: str,
    source: AsyncIterator[bytes],
    *,
    region: str | None,
    mode: str,
    expires_at: datetime | None,
    file_name: str | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Load a registry's file (``source``: its bytes, gzip or not) in the caller's
    transaction. ``region``: how national numbers are read (required for a new
    registry; an existing one keeps its own unless given). ``expires_at``: when the
    loaded entries stop counting (None: never)."""
    started = time.monotonic()
    check_name(name)
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
    row = await conn.fetchrow(query("lock_dnc_registry"), name)
    if row is None:
        if region is None:
            raise InvalidInput(
                f"registry {name!r} is new: give the region its national numbers are in",
                details=[{"field": "region", "message": "required for a new registry"}],
            )
        row = await conn.fetchrow(query("insert_dnc_registry"), name, region)
    elif region is not None and region != row["region"]:
        if mode == "merge":
            raise Conflict(
                f"registry {name!r} is of region {row['region']}: a merge keeps it "
                "(replace the registry to change its region)",
                code="registry_region",
            )
        await conn.execute(query("set_dnc_registry_region"), row["id"], region)
    try:
        reader = NumberReader(region or row["region"])
    except ValueError as exc:
        raise InvalidInput(str(exc), details=[{"field": "region", "message": "unknown"}]) from None
    registry_id, generation = int(row["id"]), int(row["generation"])
    numbers = _numbers(source, reader, progress)
    if mode == "replace":
        table = await conn.fetchval(
            query("new_dnc_registry_partition"), registry_id, generation + 1, expires_at
        )
        status = await conn.copy_to_table(table, source=numbers, columns=["number"])
        loaded = int(status.split()[-1])
        if loaded == 0:
            # A file without one number is not a registry (a wrong or damaged file):
            # replacing with it would empty the registry. The caller's transaction ends
            # with this error, the new partition with it.
            raise InvalidInput(
                f"the file holds no phone number ({reader.read} lines read, "
                f"{reader.rejected} refused): registry {name} not replaced",
                details=[{"field": f"line {p.line}", "message": p.reason} for p in reader.problems],
            )
        await conn.execute(
            query("swap_dnc_registry_partition"), registry_id, generation + 1, generation
        )
        await conn.execute(
            query("dnc_registry_loaded"), registry_id, generation + 1, loaded, mode, file_name
        )
    else:
        if generation == 0:
            # A new registry: an empty partition to merge into.
            await conn.fetchval(query("new_dnc_registry_partition"), registry_id, 1, None)
            await conn.execute(query("swap_dnc_registry_partition"), registry_id, 1, 0)
            generation = 1
        await conn.execute(query("create_dnc_registry_merge"))
        status = await conn.copy_to_table(_MERGE_TABLE, source=numbers, columns=["number"])
        loaded = int(status.split()[-1])
        status = await conn.execute(query("delete_expired_dnc_registry_entries"), registry_id)
        expired = int(status.split()[-1])
        status = await conn.execute(query("merge_dnc_registry"), registry_id, expires_at)
        added = int(status.split()[-1])
        await conn.execute(query("drop_dnc_registry_merge"))
        await conn.execute(
            query("dnc_registry_merged"), registry_id, generation, added - expired, mode, file_name
        )
    registry = registry_json(await conn.fetchrow(query("get_dnc_registry"), name))
    result = LoadResult(
        registry,
        mode,
        reader.read,
        loaded,
        reader.rejected,
        reader.problems,
        time.monotonic() - started,
    )
    logger.info(
        "do-not-call registry %s: %d numbers loaded (%s, %d lines refused) in %.1f s",
        name,
        loaded,
        mode,
        reader.rejected,
        result.seconds,
        extra={"action": "dnc_registry", "count": loaded},
    )
    return result


async def _numbers(
    source: AsyncIterator[bytes], reader: NumberReader, progress: Progress | None
) -> AsyncIterator[bytes]:
    """COPY's data: the file's numbers, made E.164 a piece at a time off the event loop."""
    gunzip = Gunzip()
    decoded = 0
    pending = b""
    async for data in source:
        pending += data
        # Pieces of about a megabyte: worth a thread's hop, small enough to stay flat.
        if len(pending) < 1024 * 1024:
            continue
        piece, pending = pending, b""
        text = await asyncio.to_thread(_decode, gunzip, piece)
        decoded += len(text)
        if decoded > MAX_DECODED_BYTES:
            raise InvalidInput(f"the registry file is more than {MAX_DECODED_BYTES} bytes")
        out = await asyncio.to_thread(_convert, reader, text)
        if progress is not None:
            progress(reader.read, decoded)
        if out:
            yield out
    text = await asyncio.to_thread(_decode, gunzip, pending, True)
    out = await asyncio.to_thread(_convert, reader, text, True)
    if progress is not None:
        progress(reader.read, decoded + len(text))
    if out:
        yield out


def _decode(gunzip: Gunzip, data: bytes, last: bool = False) -> str:
    try:
        raw = gunzip.feed(data) + (gunzip.finish() if last else b"")
    except (ValueError, zlib.error) as exc:
        raise InvalidInput(f"the registry file is not valid gzip data: {exc}") from None
    # Registries are ASCII digits: any other byte is kept as Latin-1 (never an error),
    # so a stray byte costs its line, not the file.
    return raw.decode("latin-1")


def _convert(reader: NumberReader, text: str, last: bool = False) -> bytes:
    numbers = reader.numbers(text)
    if last:
        numbers += reader.end()
    return copy_lines(numbers)
