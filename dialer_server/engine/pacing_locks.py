"""Which daemon paces the agents of a queue: one at a time, by advisory lock.

Pacing counts the calls ringing for a queue's free agents; two daemons pacing
the same agents would each count only their own calls and dial twice as many.
So a daemon paces the agent-mode campaigns of a queue only while it holds a
session advisory lock on the queue's name, on a connection of its own:
PostgreSQL drops the lock the moment that session ends (the daemon died, the
link broke), and another daemon takes the queue over at its next tick.
Automated and IVR campaigns need no lock: their line limit is counted in the
database (scheduler._claim).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from ..db.outage import SESSION_ERRORS
from ..db.queries import queries_of

query = queries_of(__name__)


logger = logging.getLogger(__name__)

# First key of the campaign pacing locks (instance locks use 1684).
LOCK_NAMESPACE = 1685
# How often the lock session is checked to be alive.
CHECK_INTERVAL_S = 2.0
# A campaign another daemon paces is asked for again this often.
RETRY_INTERVAL_S = 1.0


class PacingLocks:
    def __init__(self, database_url: str, timeout_s: float = 5.0) -> None:
        self._url = database_url
        self._timeout = timeout_s
        self._conn: Any = None
        self._held: set[str] = set()
        self._checked = 0.0
        # Queues another daemon paces: when to ask again (monotonic).
        self._retry_at: dict[str, float] = {}

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def hold(self, queue: str) -> bool:
        """Whether this daemon paces the queue's agents (taking its lock if it is free)."""
        now = time.monotonic()
        if not await self._alive(now):
            return False
        if queue in self._held:
            return True
        if self._retry_at.get(queue, 0.0) > now:
            return False
        try:
            got = await asyncio.wait_for(
                self._conn.fetchval(query("try_pacing_lock"), LOCK_NAMESPACE, queue),
                self._timeout,
            )
        except SESSION_ERRORS as exc:
            await self._lost(exc)
            return False
        if got:
            self._held.add(queue)
            self._retry_at.pop(queue, None)
            logger.info(
                "pacing the agents of queue %s",
                queue,
                extra={"action": "pacing_lock", "queue": queue},
            )
            return True
        self._retry_at[queue] = now + RETRY_INTERVAL_S
        return False

    async def keep_only(self, queues: set[str]) -> None:
        """Release the locks of queues no running agent campaign of ours uses any more."""
        for queue in sorted(self._held - queues):
            self._held.discard(queue)
            try:
                await asyncio.wait_for(
                    self._conn.fetchval(query("release_pacing_lock"), LOCK_NAMESPACE, queue),
                    self._timeout,
                )
            except SESSION_ERRORS as exc:
                await self._lost(exc)
                return
        for queue in set(self._retry_at) - queues:
            del self._retry_at[queue]

    async def close(self) -> None:
        self._held.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._timeout)

    async def _alive(self, now: float) -> bool:
        if self._conn is None or self._conn.is_closed():
            self._held.clear()
            try:
                self._conn = await asyncpg.connect(self._url, timeout=self._timeout)
            except SESSION_ERRORS as exc:
                self._conn = None
                logger.warning(
                    "no pacing lock session: %s",
                    str(exc) or type(exc).__name__,
                    extra={"action": "pacing_lock"},
                )
                return False
            self._checked = now
            return True
        if now - self._checked >= CHECK_INTERVAL_S:
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), self._timeout)
            except SESSION_ERRORS as exc:
                await self._lost(exc)
                return False
            self._checked = now
        return True

    async def _lost(self, exc: BaseException) -> None:
        if self._held:
            logger.warning(
                "pacing locks lost (%s): no agent-mode calls until they are taken again",
                str(exc) or type(exc).__name__,
                extra={"action": "pacing_lock", "queues": sorted(self._held)},
            )
        await self.close()
