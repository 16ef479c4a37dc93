"""What the stack's far end (sipp) counted itself, apart from our database.

``scripts/stack`` starts sipp with ``-trace_counts -fd 1``: every second it
writes its running count of every message of farend.xml to
``farend_<pid>_counts.csv`` in the stack's state directory (``SIPP_COUNTS_DIR``
in ``scripts/stack env``). INVITEs received (``1_INVITE_Recv``) are the calls
that reached the far end, retransmissions apart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

# sipp writes the counts every second: a read this long after the last call
# includes it.
DUMP_INTERVAL_S = 1.0


def _counts_file(stack: Any) -> Path:
    directory = Path(stack.env["SIPP_COUNTS_DIR"])
    files = sorted(directory.glob("farend_*_counts.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise AssertionError(
            f"no sipp counts in {directory}: the stack's sipp was started without "
            "-trace_counts (restart it: scripts/stack stop, then start)"
        )
    return files[-1]


def invites_received(stack: Any) -> int:
    """INVITEs the far end has received since it started, as of its last dump."""
    lines = _counts_file(stack).read_text().splitlines()
    header = lines[0].split(";")
    last = lines[-1].split(";")
    return int(last[header.index("1_INVITE_Recv")])


async def settled_invites_received(stack: Any) -> int:
    """INVITEs received, read after the far end's next dump (no call in flight)."""
    await asyncio.sleep(DUMP_INTERVAL_S * 1.5)
    return invites_received(stack)
