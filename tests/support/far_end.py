"""What a PBX's sipp far end saw, from its own files: apart from our database.

``scripts/stack`` starts every far end (one per PBX) in its PBX's directory
(``PBX<n>_DIR`` in ``scripts/stack env``) with two records of its own:

- ``-trace_shortmsg``: one line per SIP message it sent (S) or received (R),
  tab-separated: date, time, epoch seconds, direction, Call-ID, CSeq, first
  line. A call is one Call-ID with an INVITE received; it is on the far end
  from that INVITE to the last message of its Call-ID, so the calls up at any
  moment, the most of them at once, and how many times each number was dialled
  (the INVITE's Request-URI) come from the trace alone (``calls``);
- ``-trace_counts -fd 1``: every second, its running count of every message
  of farend.xml in ``farend_<pid>_counts.csv``. INVITEs received
  (``1_INVITE_Recv``) are the calls that reached it, retransmissions apart
  (``invites_received``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

_INVITE = re.compile(r"^INVITE sip:([^@;> ]+)@")
# sipp writes the counts every second: a read this long after the last call
# includes it.
DUMP_INTERVAL_S = 1.0


@dataclasses.dataclass(frozen=True)
class FarEndCall:
    call_id: str
    number: str
    # Epoch seconds of its INVITE and of its last message.
    started: float
    ended: float


def _latest(directory: str | Path, pattern: str, option: str) -> Path:
    files = sorted(Path(directory).glob(pattern), key=lambda p: p.stat().st_mtime)
    if not files:
        raise AssertionError(
            f"no {pattern} in {directory}: the far end was started without {option} "
            "(restart it: scripts/stack sipp-stop N, then sipp-start N)"
        )
    return files[-1]


def trace_file(directory: str | Path) -> Path:
    """The trace of the far end that runs in ``directory`` (a PBX's, ``PBX<n>_DIR``)."""
    return _latest(directory, "farend_*_shortmessages.log", "-trace_shortmsg")


def calls(
    directory: str | Path, *, since: float = 0.0, numbers: Iterable[str] = ()
) -> list[FarEndCall]:
    """The calls whose INVITE reached the far end at ``since`` (epoch seconds) or later;
    only those to ``numbers`` when given."""
    wanted = set(numbers)
    seen: dict[str, list[float]] = {}
    dialled: dict[str, str] = {}
    for line in trace_file(directory).read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 7:
            continue  # a line being written
        at, direction, call_id, first = float(fields[2]), fields[3], fields[4], fields[6]
        if call_id not in dialled:
            match = _INVITE.match(first) if direction == "R" else None
            if match is None or at < since or (wanted and match.group(1) not in wanted):
                continue
            dialled[call_id] = match.group(1)
            seen[call_id] = [at, at]
        else:
            seen[call_id][1] = at
    return [FarEndCall(cid, dialled[cid], start, end) for cid, (start, end) in seen.items()]


def most_at_once(found: Iterable[FarEndCall]) -> int:
    """The most calls up together at any moment."""
    edges = sorted(
        [(c.started, 1) for c in found] + [(c.ended, -1) for c in found],
        # A call that ends at the instant another starts is not counted with it.
        key=lambda edge: (edge[0], edge[1]),
    )
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def dials_per_number(found: Iterable[FarEndCall]) -> Counter[str]:
    return Counter(c.number for c in found)


async def settled_calls(
    directory: str | Path, *, since: float = 0.0, numbers: Iterable[str] = ()
) -> list[FarEndCall]:
    """``calls``, once sipp has written what it saw (it writes each message as it goes,
    through a buffer: a moment is enough)."""
    await asyncio.sleep(1.0)
    return calls(directory, since=since, numbers=numbers)


def invites_received(directory: str | Path) -> int:
    """INVITEs the far end in ``directory`` has received since it started, as of its
    last dump of its counts."""
    counts = _latest(directory, "farend_*_counts.csv", "-trace_counts")
    lines = counts.read_text().splitlines()
    header = lines[0].split(";")
    last = lines[-1].split(";")
    return int(last[header.index("1_INVITE_Recv")])


async def settled_invites_received(directory: str | Path) -> int:
    """INVITEs received, read after the far end's next dump (no call in flight)."""
    await asyncio.sleep(DUMP_INTERVAL_S * 1.5)
    return invites_received(directory)
