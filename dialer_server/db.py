"""PostgreSQL access: the connection pool and the named queries of sql/queries.sql."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import asyncpg

from .config import DatabaseConfig
from .errors import DatabaseUnavailable

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name: x`` blocks into {name: sql}."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name} is defined twice")
        queries[name] = body.strip()
    return queries


@cache
def queries() -> dict[str, str]:
    return load_queries(resources.files("dialer_server.sql").joinpath("queries.sql").read_text())


def query(name: str) -> str:
    return queries()[name]


async def connect(config: DatabaseConfig) -> Any:
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
            f"cannot connect to PostgreSQL at {_redact(config.url)}: {_reason(exc)}"
        ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _redact(url: str) -> str:
    """The URL without its password, fit for an error message."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
