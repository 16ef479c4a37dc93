"""The connection pool: how the daemon and the CLI reach PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from ..config import DatabaseConfig
from ..errors import DatabaseUnavailable


async def create_pool(config: DatabaseConfig) -> Any:
    """A connection pool; DatabaseUnavailable with the reason when PostgreSQL can't be reached."""
    try:
        return await asyncpg.create_pool(
            config.url,
            min_size=config.min_connections,
            max_size=config.max_connections,
            timeout=config.connect_timeout_s,
            command_timeout=30,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {redact_url(config.url)}: {_reason(exc)}"
        ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def redact_url(url: str) -> str:
    """The URL without its password, fit for an error message."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
