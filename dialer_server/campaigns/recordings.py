"""Call recordings: where their files are, and deleting them.

Our dialplan records the answered calls of a campaign that records (MixMonitor, named by
the attempt id: ``<attempt id>.wav`` in Asterisk's ``monitor/dialer`` folder); this
daemon reads them from ``[recording] dir``, that folder as this machine sees it. A file is
only ever looked for, served or deleted inside that folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def inside(directory: str, path: str) -> Path | None:
    """``path`` if it is a file name inside ``directory`` (no escaping it), else None."""
    if not directory:
        return None
    base = Path(directory).resolve()
    candidate = (base / path).resolve()
    if candidate.parent != base:
        return None
    return candidate


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
