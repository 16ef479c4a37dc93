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
    """Every named query: sql/queries.sql plus one file per feature in sql/queries/."""
    sql = resources.files("dialer_server.sql")
    texts = [sql.joinpath("queries.sql").read_text()]
    feature_dir = sql.joinpath("queries")
    if feature_dir.is_dir():
        texts += [
            f.read_text()
            for f in sorted(feature_dir.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".sql")
        ]
    return load_queries("\n".join(texts))


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
