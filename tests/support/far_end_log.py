"""Who called whom, as the stack's far end (sipp) saw it: one line per INVITE.

farend.xml logs each INVITE's dialled number (the Request-URI's user) and caller ID (the
From's user) to ``farend_<pid>_logs.log`` in its PBX's directory (``PBX<n>_DIR`` of
``scripts/stack env``; sipp runs with ``-trace_logs``): what the caller-ID tests compare
with our database, from the other end of the line.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

_LINE = re.compile(r"INVITE dialled=(\S*) caller=(\S*)")


def _log_file(stack: Any, pbx: int = 1) -> Path:
    directory = Path(stack.env[f"PBX{pbx}_DIR"])
    files = sorted(directory.glob("farend_*_logs.log"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise AssertionError(
            f"no sipp log in {directory}: the stack's sipp was started without -trace_logs "
            "(restart it: scripts/stack sipp-stop N, then sipp-start N)"
        )
    return files[-1]


def invites(stack: Any) -> list[tuple[str, str]]:
    """(dialled, caller ID) of every INVITE the far end has received, in order."""
    text = _log_file(stack).read_text(errors="replace")
    return [(m.group(1), m.group(2)) for m in _LINE.finditer(text)]


async def callers_of(stack: Any, dialled: set[str], timeout: float = 5.0) -> dict[str, str]:
    """The caller ID each of ``dialled`` was called from (the last call to it), once the
    far end has logged a call to every one (it writes through a buffer)."""
    async with asyncio.timeout(timeout):
        while True:
            seen = {number: caller for number, caller in invites(stack) if number in dialled}
            if set(seen) == dialled:
                return seen
            await asyncio.sleep(0.2)
