"""The event stream of /api/v1/events: the webhook events and the live ones, to SSE clients.

Events live in the ``events`` table, written by the same triggers that fill the
webhook outbox (whether or not webhooks are on, while ``[events] enabled``) and
by ``publish`` for live events the outbox never carries (``agent.state``), while
someone may read them: from the moment a stream client connects (``want``, before
its stream starts) until the retention time after the last moment one was
connected (each broker moves that time on while it has clients), which is as long
as a client that left may resume. With nobody to read it, the log costs nothing.
Each daemon runs one ``EventBroker``:

- a LISTEN session on ``dialer_events`` wakes it (it polls every second too);
- it *sequences* new rows: under an advisory transaction lock, every row
  visible and without a ``seq`` gets the next ones. So seqs follow commit
  order: a client that resumes after seq N (``Last-Event-ID``) is never past an
  event that committed later with a smaller number;
- it reads the rows past the last seq it sent and gives each to the
  subscribers whose filter matches (campaigns, types, an agent's own events).

Subscribers have bounded queues: a client too slow to keep up is dropped (it
resumes with Last-Event-ID), never allowed to grow the daemon's memory. A
subscriber is removed when its stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .config import DatabaseConfig, EventsConfig
from .db.listen import Listener
from .db.outage import TRANSIENT_ERRORS, Outage
from .db.queries import queries_of

query = queries_of(__name__)

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "dialer_events"
WEBHOOK_TYPES = (
    "contact.final_state",
    "attempt.result",
    "campaign.state_changed",
    "attempt.disposition",
    "attempt.connected",
    "campaign.trunk_errors",
)
# Live events: in the stream only, never sent as webhooks.
LIVE_TYPES = ("agent.state",)
EVENT_TYPES = WEBHOOK_TYPES + LIVE_TYPES
QUEUE_SIZE = 1000
POLL_S = 1.0
BATCH = 500
CLEANUP_INTERVAL_S = 600.0
CLEANUP_BATCH = 10_000
# While a broker has clients, it moves the log's "wanted until" on this often (far
# less than any retention time).
WANT_REFRESH_S = 60.0
DB_RETRY_MAX_S = 5.0


@dataclasses.dataclass(frozen=True)
class StreamEvent:
    seq: int
    type: str
    campaign_id: int | None
    agent: str | None
    data: str

    def sse(self) -> bytes:
        """The event as an SSE message (its JSON holds no line break)."""
        return f"id: {self.seq}\nevent: {self.type}\ndata: {self.data}\n\n".encode()


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Which events a client gets: None means any."""

    campaigns: frozenset[int] | None = None
    types: frozenset[str] | None = None
    # An agent user sees the events about them and campaigns' state changes only.
    agent: str | None = None

    def matches(self, event: StreamEvent) -> bool:
        if self.campaigns is not None and event.campaign_id not in self.campaigns:
            return False
        if self.types is not None and event.type not in self.types:
            return False
        return (
            self.agent is None
            or event.agent == self.agent
            or event.type == "campaign.state_changed"
        )

    def sql_args(self) -> tuple[list[int] | None, list[str] | None, str | None]:
        return (
            sorted(self.campaigns) if self.campaigns is not None else None,
            sorted(self.types) if self.types is not None else None,
            self.agent,
        )


class Subscriber:
    """One stream's mailbox: a bounded queue; ``dropped`` once it overflowed."""

    def __init__(self, event_filter: EventFilter, size: int = QUEUE_SIZE) -> None:
        self.filter = event_filter
        self.queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, event: StreamEvent) -> None:
        if self.dropped or not self.filter.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.close()

    def close(self) -> None:
        # A None wakes the stream so that it ends; room is made for it.
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()

    async def next(self, timeout: float) -> StreamEvent | None:
        """The next event; None when there was none within ``timeout`` or the stream ends."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


def event_of(row: Mapping[str, Any]) -> StreamEvent:
    return StreamEvent(row["seq"], row["event_type"], row["campaign_id"], row["agent"], row["data"])


async def record_events(pool: Any, config: EventsConfig) -> None:
    """Tell the triggers whether to record events for the stream (each daemon, at start)."""
    async with pool.acquire() as conn:
        await conn.execute(query("set_events_recording"), config.enabled)


async def publish(
    conn: Any,
    event_type: str,
    data: Mapping[str, Any],
    *,
    campaign_id: int | None,
    agent: str | None,
) -> None:
    """Record a live event (in the caller's transaction): sent once it commits."""
    assert event_type in LIVE_TYPES, event_type
    await conn.execute(
        query("publish_live_event"), event_type, campaign_id, agent, json.dumps(data, default=str)
    )


class EventBroker:
    """Sequences the event log and fans new events out to this daemon's streams."""

    def __init__(
        self,
        pool: Any,
        config: EventsConfig,
        database: DatabaseConfig | None = None,
        *,
        outage: Outage | None = None,
        on_clients: Any = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.outage = outage if outage is not None else Outage()
        self._subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._listener = (
            Listener(
                database.url,
                NOTIFY_CHANNEL,
                self._wake.set,
                connect_timeout_s=database.connect_timeout_s,
                retry_s=DB_RETRY_MAX_S,
            )
            if database is not None
            else None
        )
        self.last_seq = 0
        self.started = asyncio.Event()
        self.stopping = False
        self._next_cleanup = 0.0
        self._next_want = 0.0
        # Told the number of open streams (the dialer_sse_clients gauge).
        self._on_clients = on_clients

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def subscribe(self, event_filter: EventFilter) -> Subscriber:
        subscriber = Subscriber(event_filter)
        self._subscribers.add(subscriber)
        self._count()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self._count()

    def _count(self) -> None:
        if self._on_clients is not None:
            self._on_clients(len(self._subscribers))

    async def want(self) -> None:
        """A client is about to stream: the log records events from now on, and for the
        retention time after the last client (a client may resume that long)."""
        async with self.pool.acquire() as conn:
            await conn.execute(query("want_events"), self.config.retention_hours * 3600.0)
        self._next_want = time.monotonic() + WANT_REFRESH_S

    async def backlog(self, after: int, event_filter: EventFilter, limit: int) -> list[StreamEvent]:
        """Events past seq ``after`` that match, oldest first (a resuming client's)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query("events_after"), after, *event_filter.sql_args(), limit)
        return [event_of(r) for r in rows]

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        try:
            while not stop.is_set():
                try:
                    if not self.started.is_set():
                        async with self.pool.acquire() as conn:
                            self.last_seq = await conn.fetchval(query("last_event_seq"))
                        self.started.set()
                    await self._listen()
                    self._wake.clear()
                    await self._step()
                    if self._subscribers and time.monotonic() >= self._next_want:
                        await self.want()
                    await self._cleanup()
                    self.outage.back()
                    delay = 0.2
                    wait = POLL_S
                except TRANSIENT_ERRORS as exc:
                    self.outage.down(exc, component="events")
                    wait, delay = delay, min(delay * 2, DB_RETRY_MAX_S)
                except Exception:
                    # A bug or a bad row must not stop the daemon: log it, go on.
                    logger.exception("event stream step failed", extra={"action": "events"})
                    wait = 1.0
                await self._sleep(stop, wait)
        finally:
            self.stopping = True
            for subscriber in list(self._subscribers):
                subscriber.close()
            await self._unlisten()

    async def _step(self) -> None:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(query("lock_sequencer"))
                await conn.execute(query("sequence_events"))
            while True:
                rows = await conn.fetch(
                    query("events_after"), self.last_seq, None, None, None, BATCH
                )
                for row in rows:
                    event = event_of(row)
                    self.last_seq = event.seq
                    for subscriber in list(self._subscribers):
                        subscriber.offer(event)
                if len(rows) < BATCH:
                    break

    async def _cleanup(self) -> None:
        if time.monotonic() < self._next_cleanup:
            return
        self._next_cleanup = time.monotonic() + CLEANUP_INTERVAL_S
        async with self.pool.acquire() as conn:
            await conn.execute(
                query("delete_old_events"), self.config.retention_hours * 3600.0, CLEANUP_BATCH
            )

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        if stop.is_set() or self._wake.is_set():
            return
        waiters = [
            asyncio.create_task(stop.wait(), name="events-stop"),
            asyncio.create_task(self._wake.wait(), name="events-wake"),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _listen(self) -> None:
        """Keep a LISTEN session; while it is down, the one-second poll finds events."""
        if self._listener is not None:
            await self._listener.keep()

    async def _unlisten(self) -> None:
        if self._listener is not None:
            await self._listener.close()


def parse_types(text: str | None) -> frozenset[str] | None:
    """``type=a,b``: the event types asked for; ValueError naming an unknown one."""
    if text is None:
        return None
    types = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = types - set(EVENT_TYPES)
    if unknown or not types:
        raise ValueError(f"unknown event types {sorted(unknown)} (known: {', '.join(EVENT_TYPES)})")
    return types


def parse_campaigns(values: Sequence[str]) -> frozenset[int] | None:
    """``campaign=1&campaign=2`` or ``campaign=1,2``; ValueError on a non-id."""
    ids: set[int] = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or not 1 <= int(part) <= 2**63 - 1:
                raise ValueError(f"campaign must be campaign ids, got {part!r}")
            ids.add(int(part))
    return frozenset(ids) if values else None
