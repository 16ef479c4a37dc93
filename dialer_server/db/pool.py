"""The connection pool: how the daemon and the CLI reach PostgreSQL.

``database.url`` may name several hosts, a primary and its replicas
(``postgresql://u@db1:5432,db2:5432/dialer?target_session_attrs=read-write``):
asyncpg then connects to the first one that takes writes, so every new
connection after a failover finds the promoted replica. What a failover keeps
is PostgreSQL's to decide: only a commit a synchronous standby has confirmed
survives the primary's loss, and ``warn_if_failover_loses_commits`` says so at
start when the URL names several hosts and the server does not wait for one.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import asyncpg

from ..config import DatabaseConfig
from ..errors import DatabaseUnavailable
from .queries import queries_of

query = queries_of(__name__)

logger = logging.getLogger(__name__)

# synchronous_commit values that wait for the synchronous standbys (when named).
_WAITS_FOR_STANDBY = {"on", "remote_apply", "remote_write"}


async def create_pool(config: DatabaseConfig) -> Any:
    """A connection pool; DatabaseUnavailable with the reason when PostgreSQL can't be reached."""
    try:
        return await asyncpg.create_pool(
            config.url,
            min_size=config.min_connections,
            max_size=config.max_connections,
            timeout=config.connect_timeout_s,
            command_timeout=30,
            reset=_keep_session,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {redact_url(config.url)}: {_reason(exc)}"
        ) from None


async def _keep_session(_conn: Any) -> None:
    """What a connection goes back to the pool with: its session as it is.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release, a round trip per use (a few per call). Pooled
    connections hold no session state to reset: every lock they take is a
    transaction lock (``pg_advisory_xact_lock``), every setting ``set_config(...,
    true)`` (transaction-local), no cursor outlives its transaction, and what holds a
    session lock or LISTENs (the instance lock, pacing locks, the webhook and event
    listeners) has a connection of its own (tests/unit/test_queries.py keeps it so).
    An open transaction is still rolled back by asyncpg before this runs.
    """


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
    base, question_mark, params = base.partition("?")
    if question_mark:
        items = (
            f"{name}=***" if equals else "***"
            for name, equals, _ in (item.partition("=") for item in params.split("&"))
        )
        base = f"{base}?{'&'.join(items)}"
    return base + ("#***" if hash_mark else "")


def several_hosts(url: str) -> bool:
    """Whether the URL names more than one host (a primary and its replicas)."""
    netloc = urllib.parse.urlsplit(url).netloc
    return "," in netloc.rpartition("@")[2]


async def warn_if_failover_loses_commits(conn: Any, url: str) -> bool:
    """Log a warning, and True, when a failover could lose commits the daemon acknowledged.

    Only with a multi-host URL: there a failover is expected, and a commit no
    synchronous standby confirmed (none named, or synchronous_commit off/local)
    may be missing on the promoted replica.
    """
    if not several_hosts(url):
        return False
    row = await conn.fetchrow(query("commit_durability"))
    if row["synchronous_standby_names"] and row["synchronous_commit"] in _WAITS_FOR_STANDBY:
        return False
    logger.warning(
        "database.url names several hosts, but a commit does not wait for a synchronous "
        "standby (synchronous_commit = %s, synchronous_standby_names = %r): a failover may "
        "lose results, claims and API changes already acknowledged (docs/operations.md)",
        row["synchronous_commit"],
        row["synchronous_standby_names"],
        extra={"action": "database"},
    )
    return True
