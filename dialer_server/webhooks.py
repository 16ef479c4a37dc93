"""Webhooks to the CRM: events from the outbox, signed, delivered at least once.

Events are written by PostgreSQL triggers (migration 0003) into
``webhook_outbox`` in the same transaction as the state change they report, so
an event exists exactly when its change committed, whichever path made it (the
engine, the API, the CLI). This module only drains the outbox:

- due events are leased with one statement (``FOR UPDATE SKIP LOCKED``, the
  lease being a pushed-back due time), so daemons sharing a database never send
  the same event at once; a daemon that dies mid-send leaves the event due again
  when its lease ends: delivery is at least once, never at most once;
- each event is POSTed as the exact body stored in the outbox, signed with
  HMAC-SHA256 (``sign``); a 2xx answer delivers it, anything else (an error
  status, a timeout, a refused connection) schedules a retry with capped
  exponential backoff and jitter (``backoff_s``), forever;
- the events of one contact (or one campaign) go out one after the other, in
  the order they were written;
- NOTIFY on ``dialer_webhooks`` wakes the sender; polling is the fallback, and
  a PostgreSQL restart or a dead CRM only delays delivery, never stops the daemon.
  The LISTEN session's end wakes the sender too, so it listens again as soon as
  PostgreSQL (or, after a failover, the promoted replica) answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import hashlib
import hmac
import logging
import random
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from . import __version__
from .config import DatabaseConfig, WebhooksConfig
from .db.outage import SESSION_ERRORS, TRANSIENT_ERRORS, Outage
from .db.queries import queries_of
from .observability.metrics import Metrics

query = queries_of(__name__)

logger = logging.getLogger(__name__)

EVENT_TYPES = ("contact.final_state", "attempt.result", "campaign.state_changed")
NOTIFY_CHANNEL = "dialer_webhooks"
TIMESTAMP_HEADER = "X-Dialer-Timestamp"
SIGNATURE_HEADER = "X-Dialer-Signature"
EVENT_HEADER = "X-Dialer-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"

# A lease outlives the POST it covers by this much: only a dead sender loses it.
LEASE_MARGIN_S = 15.0
# Never poll faster than this while an event is due but held (another daemon's lease).
MIN_IDLE_S = 0.1
# How much of a CRM's error answer is kept in last_error.
MAX_ERROR_CHARS = 300
CLEANUP_INTERVAL_S = 600.0
# How often the LISTEN session is asked whether it is still there.
LISTEN_CHECK_S = 10.0
LISTEN_CHECK_TIMEOUT_S = 5.0
CLEANUP_BATCH = 10_000
DB_RETRY_MAX_S = 5.0


# --- the pure core -------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_headers(
    *, event_id: str, event_type: str, body: bytes, secret: str, timestamp: int
) -> dict[str, str]:
    """Every header of one delivery of an event."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"dialer-server/{__version__}",
        IDEMPOTENCY_HEADER: event_id,
        EVENT_HEADER: event_type,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def backoff_s(failures: int, *, min_s: float, max_s: float, jitter: float) -> float:
    """The delay before the next try of an event that failed ``failures`` times.

    Doubles from ``min_s`` and is capped at ``max_s``, then scaled into its
    upper half by ``jitter`` (in [0, 1)), so that events failing together do
    not all come back together.
    """
    exponent = min(max(failures - 1, 0), 60)
    base = min(max_s, min_s * 2.0**exponent)
    return base * (0.5 + jitter / 2)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def retry_delay_s(
    failures: int, retry_after: float | None, config: WebhooksConfig, jitter: float
) -> float:
    """Our backoff, or the CRM's Retry-After when longer; never past max_backoff_s."""
    delay = backoff_s(
        failures, min_s=config.min_backoff_s, max_s=config.max_backoff_s, jitter=jitter
    )
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, config.max_backoff_s)


# --- the shell -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What one POST of an event gave."""

    event_id: str
    delivered: bool
    error: str = ""
    retry_in_s: float = 0.0


async def record_events(pool: Any, config: WebhooksConfig) -> None:
    """Tell the database triggers whether to record events (webhooks configured or not).

    Every daemon does this at start; the last one started decides for all the
    daemons of a database, so they should share their [webhooks] settings.
    """
    async with pool.acquire() as conn:
        await conn.execute(query("set_webhooks_recording"), config.active)
    if config.active:
        logger.info(
            "webhooks on: events are recorded and sent to %s",
            _origin(config.url),
            extra={"action": "webhooks"},
        )
    else:
        logger.info(
            "webhooks off (no webhooks.url): no events are recorded",
            extra={"action": "webhooks"},
        )


async def set_attempt_events(conn: Any, campaign_id: int, enabled: bool) -> bool:
    """Whether a campaign sends a webhook per attempt result; False: no such campaign."""
    return (
        await conn.fetchval(query("set_campaign_webhook_attempts"), campaign_id, enabled)
        is not None
    )


class WebhookSender:
    """Drains the outbox until stopped; never raises for a CRM or database failure."""

    def __init__(
        self,
        pool: Any,
        config: WebhooksConfig,
        database: DatabaseConfig | None = None,
        metrics: Metrics | None = None,
        outage: Outage | None = None,
    ) -> None:
        """``database``: where to LISTEN (None: poll only)."""
        self.pool = pool
        self.config = config
        self.metrics = metrics
        self._database = database
        self._wake = asyncio.Event()
        self._listener: Any = None
        self._listen_retry_at = 0.0
        self._listen_delay = 0.5
        self._listen_checked_at = 0.0
        # Results whose write failed (PostgreSQL away): written before new work.
        self._unsaved: list[Delivery] = []
        self._next_cleanup = 0.0
        self.outage = outage if outage is not None else Outage()
        self._crm_failing = False
        self._random = random.Random()
        # Events this sender delivered, and deliveries that failed (for metrics).
        self.delivered = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        if not self.config.active:
            await stop.wait()
            return
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                await self._loop(session, stop)
            finally:
                await self._unlisten()

    async def _loop(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        db_delay = 0.2
        while not stop.is_set():
            idle_s: float
            try:
                await self._listen()
                if await self._step(session):
                    db_delay = 0.2
                    self.outage.back()
                    continue  # something was due: look again at once
                await self._cleanup()
                idle_s = await self._idle_s()
                db_delay = 0.2
                self.outage.back()
            except TRANSIENT_ERRORS as exc:
                self.outage.down(exc, component="webhooks")
                idle_s, db_delay = db_delay, min(db_delay * 2, DB_RETRY_MAX_S)
            except Exception:
                # A bug or a bad row must not stop the daemon: log it loudly, go on.
                logger.exception("webhook delivery failed", extra={"action": "webhook"})
                idle_s = 1.0
            await self._sleep(stop, idle_s)

    async def _step(self, session: aiohttp.ClientSession) -> int:
        """Lease the due events, POST them, record the results; how many were leased."""
        await self._flush()
        # Cleared before looking: a NOTIFY from now on means "look again".
        self._wake.clear()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                query("claim_webhooks"),
                self.config.batch_size,
                self.config.timeout_s + LEASE_MARGIN_S,
            )
        if not rows:
            return 0
        rows = sorted(rows, key=lambda r: r["seq"])
        self._unsaved += await asyncio.gather(*(self._post(session, row) for row in rows))
        await self._flush()
        return len(rows)

    async def _post(self, session: aiohttp.ClientSession, row: Any) -> Delivery:
        event_id = str(row["id"])
        body = row["body"].encode()
        headers = request_headers(
            event_id=event_id,
            event_type=row["event_type"],
            body=body,
            secret=self.config.secret,
            timestamp=int(time.time()),
        )
        retry_after: float | None = None
        try:
            # ClientTimeout bounds the request; this bounds everything around it too.
            async with asyncio.timeout(self.config.timeout_s + 1):
                async with session.post(
                    self.config.url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    if 200 <= resp.status < 300:
                        self._crm_ok()
                        self.delivered += 1
                        if self.metrics is not None:
                            self.metrics.webhook_deliveries.inc()
                        return Delivery(event_id, True)
                    answer = await resp.content.read(MAX_ERROR_CHARS)
                    error = f"HTTP {resp.status}"
                    if text := answer.decode(errors="replace").strip():
                        error += f": {text}"
                    retry_after = retry_after_s(resp.headers.get("Retry-After"), datetime.now(UTC))
        except TimeoutError:
            error = f"no answer within {self.config.timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # Whatever went wrong, this event is retried like any other failure.
            logger.exception("webhook %s: unexpected error", event_id, extra={"action": "webhook"})
            error = f"{type(exc).__name__}: {exc}"
        delay = retry_delay_s(row["attempts"], retry_after, self.config, self._random.random())
        self._crm_failed(error)
        self.failed += 1
        if self.metrics is not None:
            self.metrics.webhook_delivery_failures.inc()
        logger.debug(
            "webhook %s not delivered (try %d), next in %.1f s: %s",
            event_id,
            row["attempts"],
            delay,
            error,
            extra={"action": "webhook", "event_id": event_id},
        )
        return Delivery(event_id, False, error[:MAX_ERROR_CHARS], delay)

    async def _flush(self) -> None:
        if not self._unsaved:
            return
        async with self.pool.acquire() as conn:
            while self._unsaved:
                done = self._unsaved[0]
                if done.delivered:
                    await conn.execute(query("webhook_delivered"), done.event_id)
                else:
                    await conn.execute(
                        query("webhook_failed"), done.event_id, done.retry_in_s, done.error
                    )
                self._unsaved.pop(0)

    async def _idle_s(self) -> float:
        """How long to wait for the next due event (a NOTIFY may cut it short)."""
        async with self.pool.acquire() as conn:
            due_in = await conn.fetchval(query("next_webhook_due_in"))
        if due_in is None:
            return self.config.poll_interval_s
        return min(max(float(due_in), MIN_IDLE_S), self.config.poll_interval_s)

    async def _cleanup(self) -> None:
        if self.config.retention_days <= 0 or time.monotonic() < self._next_cleanup:
            return
        self._next_cleanup = time.monotonic() + CLEANUP_INTERVAL_S
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                query("delete_delivered_webhooks"),
                self.config.retention_days * 86400.0,
                CLEANUP_BATCH,
            )
        deleted = int(status.split()[-1])
        if deleted == CLEANUP_BATCH:
            self._next_cleanup = 0.0  # more to delete: again on the next idle turn
        if deleted:
            logger.info(
                "deleted %d delivered webhook events older than %g days",
                deleted,
                self.config.retention_days,
                extra={"action": "webhook_cleanup"},
            )

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        if stop.is_set() or self._wake.is_set():
            return
        waiters = [
            asyncio.create_task(stop.wait(), name="webhooks-stop"),
            asyncio.create_task(self._wake.wait(), name="webhooks-wake"),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    # --- LISTEN: wakes the loop, never required --------------------------------------
    async def _listen(self) -> None:
        """Keep a LISTEN session open; while it is down, polling alone finds events."""
        if self._database is None:
            return
        conn = self._listener
        if conn is not None and not conn.is_closed():
            if time.monotonic() < self._listen_checked_at + LISTEN_CHECK_S:
                return
            # A session the network dropped silently looks open: ask it.
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), LISTEN_CHECK_TIMEOUT_S)
                self._listen_checked_at = time.monotonic()
                return
            except SESSION_ERRORS as exc:
                logger.debug("webhook LISTEN session lost: %s", exc, extra={"action": "webhook"})
        await self._unlisten()
        if time.monotonic() < self._listen_retry_at:
            return
        try:
            conn = await asyncpg.connect(
                self._database.url, timeout=self._database.connect_timeout_s
            )
            try:
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                # A session cut while the loop sleeps (the primary lost, a failover)
                # wakes it, to listen again at once rather than at the next poll.
                conn.add_termination_listener(self._notified)
            except BaseException:
                await conn.close()
                raise
        except SESSION_ERRORS as exc:
            self._listen_retry_at = time.monotonic() + self._listen_delay
            self._listen_delay = min(self._listen_delay * 2, DB_RETRY_MAX_S)
            logger.debug("webhook LISTEN unavailable: %s", exc, extra={"action": "webhook"})
            return
        self._listener = conn
        self._listen_delay = 0.5
        self._listen_checked_at = time.monotonic()
        # Events may have been written while nobody listened.
        self._wake.set()

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    # --- health, for the logs ---------------------------------------------------------
    def _crm_failed(self, error: str) -> None:
        if not self._crm_failing:
            self._crm_failing = True
            logger.warning(
                "webhook deliveries to %s failing, retrying with backoff: %s",
                _origin(self.config.url),
                error,
                extra={"action": "webhook"},
            )

    def _crm_ok(self) -> None:
        if self._crm_failing:
            self._crm_failing = False
            logger.info(
                "webhook deliveries to %s succeed again",
                _origin(self.config.url),
                extra={"action": "webhook"},
            )


def _origin(url: str) -> str:
    """The scheme, host and port of a URL: its path or query may hold a token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
