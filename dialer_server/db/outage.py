"""Whether PostgreSQL is away: one classification of its errors, one tracker of outages.

A failed statement means either "PostgreSQL is away for now" (``TRANSIENT_ERRORS``:
the connection refused or cut, a timeout, the server shutting down or restarting, no
primary among the hosts of a multi-host URL while a replica is being promoted),
and the work waits and tries again, or "this statement is wrong" (anything else: a
bug, a bad row), which no retry mends. Every part of the daemon decides with
these tuples, never a list of its own. On a session of its own (an advisory lock,
a LISTEN) any PostgreSQL error leaves the session unusable: ``SESSION_ERRORS``
says when to drop it and open another.

One ``Outage`` per daemon, shared by every component (the engine, webhooks, the
stats refresher, the API, the drop folder): the first failure of an outage logs
one WARNING, the first success after it one INFO with how long it lasted, and
the ``dialer_db_up`` gauge follows both. ``with_db`` is the retry loop of work that
must not be dropped while PostgreSQL is away (a call's result, a task's outcome).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The longest wait between two tries while PostgreSQL is away.
RETRY_MAX_S = 5.0

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    # A multi-host URL (target_session_attrs=read-write) found no primary: the
    # old one is gone and the replica is not promoted yet, a failover under way.
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)
SESSION_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)


class Gauge(Protocol):
    def set(self, value: float) -> None: ...


class Outage:
    """PostgreSQL's availability as the daemon sees it: one log line each way."""

    def __init__(
        self, gauge: Gauge | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gauge = gauge
        self._clock = clock
        self._since: float | None = None

    @property
    def up(self) -> bool:
        return self._since is None

    def down(self, exc: BaseException, *, component: str) -> None:
        """A statement of ``component`` failed because PostgreSQL is away."""
        if self._gauge is not None:
            self._gauge.set(0)
        if self._since is None:
            self._since = self._clock()
            logger.warning(
                "database unavailable (%s), retrying: %s",
                component,
                str(exc) or type(exc).__name__,
                extra={"action": "database", "component": component},
            )

    def back(self) -> None:
        """A statement succeeded."""
        if self._gauge is not None:
            self._gauge.set(1)
        if self._since is not None:
            logger.info(
                "database available again after %.1f s",
                self._clock() - self._since,
                extra={"action": "database"},
            )
            self._since = None


async def with_db(
    pool: Any,
    work: Callable[[Any], Awaitable[T]],
    *,
    outage: Outage,
    stop: asyncio.Event,
    component: str,
) -> T | None:
    """Run ``work`` on a pooled connection, tried again while PostgreSQL is away (0.2 s,
    doubling up to ``RETRY_MAX_S``); None only once ``stop`` is set. Any other error
    (a wrong statement) is raised: no retry mends it."""
    delay = 0.2
    while True:
        try:
            async with pool.acquire() as conn:
                value = await work(conn)
            outage.back()
            return value
        except TRANSIENT_ERRORS as exc:
            outage.down(exc, component=component)
        if stop.is_set():
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, RETRY_MAX_S)
