"""A LISTEN session: what wakes a component when another transaction's commit concerns it.

Invariants:

- a notification only wakes; the woken component reads what changed itself, and polls
  at its own pace besides: a notification lost while the session was down (PostgreSQL
  away, restarted) delays the work by one poll, never loses it;
- the session has a connection of its own (a pool connection would be lost to the
  pool for the daemon's life, and a LISTEN does not survive the pool's reset);
- ``keep()`` reconnects a lost session at most every ``retry_s``, never raises: who
  calls it goes on polling while PostgreSQL is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from .outage import RETRY_MAX_S, SESSION_ERRORS

logger = logging.getLogger(__name__)


class Listener:
    """LISTEN on ``channel``; ``on_notify()`` for every notification."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        connect_timeout_s: float,
        retry_s: float = RETRY_MAX_S,
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_notify = on_notify
        self._connect_timeout_s = connect_timeout_s
        self._retry_s = retry_s
        self._conn: Any = None
        self._retry_at = 0.0

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def keep(self) -> None:
        """Open the session if it is not (or no longer) open."""
        if self.listening:
            return
        await self.close()
        if time.monotonic() < self._retry_at:
            return
        try:
            conn = await asyncpg.connect(self._url, timeout=self._connect_timeout_s)
            try:
                await conn.add_listener(self._channel, self._notified)
            except BaseException:
                await conn.close()
                raise
        except SESSION_ERRORS as exc:
            self._retry_at = time.monotonic() + self._retry_s
            logger.debug(
                "LISTEN %s unavailable: %s", self._channel, exc, extra={"action": "listen"}
            )
            return
        self._conn = conn

    def _notified(self, *_: Any) -> None:
        self._on_notify()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)
