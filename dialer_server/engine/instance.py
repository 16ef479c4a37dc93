"""This daemon's identity in the database, and the proof that it is alive.

Each start registers a new instance row and holds a session advisory lock on
its id for as long as the process lives. PostgreSQL drops the lock the moment
the session ends, whatever killed it, so another daemon (or this one, after a
restart) can tell at once which open attempts nobody follows any more, with no
heartbeat timeout to wait out.

The lock session also ends when PostgreSQL restarts or fails over to a replica,
with every daemon still alive: each takes its lock again on a new session
within a check interval of PostgreSQL answering. Until ``ADOPT_GRACE_S`` after
taking it again, a daemon adopts nobody's attempts (``may_adopt``): the others,
alive, are taking their own locks back meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..db.outage import SESSION_ERRORS
from ..db.queries import queries_of

query = queries_of(__name__)


logger = logging.getLogger(__name__)

# First key of our advisory locks (the second is the instance id).
LOCK_NAMESPACE = 1684
CHECK_INTERVAL_S = 2.0
# Twice the others' check interval, and a connect: long enough for every live
# daemon to have its lock again after PostgreSQL came back.
ADOPT_GRACE_S = 2 * CHECK_INTERVAL_S + 5.0


class Instance:
    def __init__(self, database_url: str, connect_timeout_s: float = 5.0) -> None:
        self._url = database_url
        self._timeout = connect_timeout_s
        self.id: int | None = None
        self._conn: Any = None
        self.locked = asyncio.Event()
        # When the lock was taken again after a lost session (monotonic); None
        # while this daemon holds the lock it took at start.
        self._retaken_at: float | None = None

    async def register(self, pool: Any, pbxs: Sequence[str] = ()) -> int:
        """A new instance row naming the PBXs this daemon dials through, and its lock."""
        async with pool.acquire() as conn:
            self.id = int(
                await conn.fetchval(
                    query("register_instance"), _hostname(), os.getpid(), list(pbxs)
                )
            )
        await self._lock()
        return self.id

    async def _lock(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=self._timeout)
        try:
            await conn.execute(query("take_instance_lock"), LOCK_NAMESPACE, self.id)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self.locked.set()

    async def hold(self, stop: asyncio.Event) -> None:
        """Keep the lock, taking it again on a new session after a database restart."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL_S)
            if stop.is_set():
                break
            try:
                if self._conn is None or self._conn.is_closed():
                    raise ConnectionError("lock session lost")
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), self._timeout)
            except SESSION_ERRORS as exc:
                if self.locked.is_set():
                    logger.warning(
                        "instance lock lost (%s), taking it again",
                        exc,
                        extra={"action": "instance_lock", "instance_id": self.id},
                    )
                self.locked.clear()
                await self._drop()
                with contextlib.suppress(*SESSION_ERRORS):
                    await self._lock()
                    self._retaken_at = time.monotonic()
                    logger.info(
                        "instance lock taken again",
                        extra={"action": "instance_lock", "instance_id": self.id},
                    )
        await self._drop()

    async def alone(self, conn: Any) -> bool:
        """Whether no other daemon is alive on this database now."""
        assert self.id is not None
        return int(await conn.fetchval(query("other_live_instances"), self.id)) == 0

    def may_adopt(self) -> bool:
        """Whether the open attempts of daemons without a lock are theirs to take over.

        False for a while after this daemon took its lock again: a daemon that
        has not yet is alive, not dead.
        """
        return self._retaken_at is None or time.monotonic() - self._retaken_at >= ADOPT_GRACE_S

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._timeout)


def _hostname() -> str:
    return socket.gethostname()[:200]
