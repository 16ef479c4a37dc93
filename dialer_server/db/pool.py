"""The connection pool: how the daemon and the CLI reach PostgreSQL."""

from __future__ import annotations

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
    """The URL without its secrets, fit for a message: the password of its user, every
    value of its query (``?token=...``: a query often carries a key) and its fragment."""
    scheme, separator, rest = url.partition("://")
    if separator:
        # The user's part ends at the last @ before the query: a password may hold
        # characters a URL should have escaped (/, @), and a masked path is harmless.
        end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, end)
        user, colon, _ = rest[:at].partition(":")
        if at >= 0 and colon:
            url = f"{scheme}://{user}:***{rest[at:]}"
    base, hash_mark, _ = url.partition("#")
    base, question_mark, query = base.partition("?")
    if question_mark:
        items = (
            f"{name}=***" if equals else "***"
            for name, equals, _ in (item.partition("=") for item in query.split("&"))
        )
        base = f"{base}?{'&'.join(items)}"
    return base + ("#***" if hash_mark else "")
