"""Structured logs: one JSON object per line on stderr.

Log calls pass context in ``extra`` (``extra={"action": "originate",
"attempt_id": ...}``); every extra field lands in the JSON object, so a log
pipeline can filter by campaign, contact or attempt without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # panoramisk logs every lost connection at ERROR with a traceback-free
    # message of its own; our AMI client reports connection state itself.
    logging.getLogger("panoramisk").setLevel(logging.CRITICAL)
    # asyncpg's pool logs a WARNING with a traceback each time it fails to
    # reconnect its idle connections, every second of a PostgreSQL outage or
    # failover; db/outage.py reports the outage once, and its end.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
