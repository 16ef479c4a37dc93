"""Webhooks to the CRM: events from the outbox, signed, delivered at least once.

Events are written by PostgreSQL triggers (migration 0003) into
``webhook_outbox`` in the same transaction as the state change they report, so
an event exists exactly when its change committed, whichever path made it (the
engine, the API, the CLI). This module only drains the outbox:

- due events are leased with one statement (``FOR UPDATE SKIP LOCKED``, the
  lease being a pushed-back due time), so daemons sharing a database never send
  the same event at once; a daemon that dies mid-send leaves the event due again
  when its lease ends: delivery is at least once, never at most once;
- each event is POSTed as the exact body stored in the outbox to its hook: the
  daemon's ``[webhooks] url``, or its campaign's own (``campaign_webhooks``, fixed
  when the event was written: an event meant for one campaign's CRM never goes to
  another's). It is signed with HMAC-SHA256 (``sign``) under that hook's secret,
  and while a campaign's secret is being rotated, under the previous one too (two
  signatures in one header). A 2xx answer delivers it, anything else (an error
  status, a timeout, a refused connection) schedules a retry with capped
  exponential backoff and jitter (``backoff_s``), forever; an event whose
  campaign's hook was removed since is dropped (delivered_at set, last_error says
  why), never sent elsewhere;
- a campaign's URL was set over the API: it may not lead to a loopback,
  link-local or cloud-metadata address unless ``[webhooks] allowed_hosts`` lists
  it (``url_problem``, ``address_problem``), checked when it is set and again at
  every connection (a name may resolve elsewhere later);
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
import errno
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiohttp.abc
import asyncpg

from . import __version__
from .config import AllowedHosts, DatabaseConfig, WebhooksConfig
from .db.outage import SESSION_ERRORS, TRANSIENT_ERRORS, Outage
from .db.queries import queries_of
from .observability.metrics import Metrics

query = queries_of(__name__)

logger = logging.getLogger(__name__)

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
    *,
    event_id: str,
    event_type: str,
    body: bytes,
    secret: str,
    timestamp: int,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """Every header of one delivery of an event.

    With ``previous_secret`` (a rotation's grace period) the signature header lists
    two signatures, the current secret's first: ``sha256=<new>, sha256=<old>``. A
    receiver accepts the event when one of them is right, so it may switch to the
    new secret at any moment of the grace period.
    """
    signature = sign(secret, timestamp, body)
    if previous_secret:
        signature += ", " + sign(previous_secret, timestamp, body)
    return {
        "Content-Type": "application/json",
        "User-Agent": f"dialer-server/{__version__}",
        IDEMPOTENCY_HEADER: event_id,
        EVENT_HEADER: event_type,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature,
    }


# --- where a campaign's hook may lead ----------------------------------------------------

# Never reachable through a URL set over the API unless allowed: the host itself
# (loopback), its link (link-local, where clouds serve instance metadata and
# credentials), "any address", and the metadata services that live elsewhere.
_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack...
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ipaddress.ip_network("168.63.129.16/32"),  # Azure's platform endpoint
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def address_problem(text: str, allowed: AllowedHosts) -> str | None:
    """Why a campaign's hook may not connect to the address ``text``, or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return f"{text!r} is not an address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allowed.allows_address(address):
        return None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_unspecified:
        return f"{address} is not a destination"
    if any(address in network for network in _METADATA if network.version == address.version):
        return f"{address} is a cloud metadata address"
    if address.is_link_local:
        return f"{address} is a link-local address (where clouds serve instance metadata)"
    return None


def url_problem(url: str, allowed: AllowedHosts) -> str | None:
    """Why ``url`` cannot be a campaign's hook as written (scheme, host, an address
    literal that is not allowed), or None. Names are resolved by :func:`check_url`."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    host = parts.hostname
    if not host:
        return "has no host"
    if parts.fragment:
        return "may not have a #fragment (it is never sent)"
    if allowed.allows_name(host):
        return None
    if host.rstrip(".").lower() in _METADATA_NAMES:
        return f"{host} is a cloud metadata service"
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: its addresses are checked once resolved
    return address_problem(host, allowed)


# Resolving a hook's host name at set time: a slow resolver must not hold the request.
RESOLVE_TIMEOUT_S = 5.0


async def check_url(url: str, allowed: AllowedHosts) -> str | None:
    """:func:`url_problem`, then every address the host name resolves to."""
    problem = url_problem(url, allowed)
    if problem is not None:
        return problem
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if allowed.allows_name(host):
        return None
    with contextlib.suppress(ValueError):  # a name: resolved below
        ipaddress.ip_address(host.split("%", 1)[0])
        return None  # an address literal, checked by url_problem
    loop = asyncio.get_running_loop()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError, UnicodeError, ValueError) as exc:
        # (a name IDNA cannot encode is a UnicodeError: no such host either)
        return f"its host {host!r} does not resolve ({exc or 'timed out'})"
    return _addresses_problem(host, (str(info[4][0]) for info in infos), allowed)


def _addresses_problem(host: str, addresses: Iterable[str], allowed: AllowedHosts) -> str | None:
    for address in addresses:
        problem = address_problem(address, allowed)
        if problem is not None:
            return f"its host {host!r} resolves to {problem}"
    return None


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """The resolver of the connections to campaigns' hooks: refuses a name that
    resolves to an address those may not reach, at every connection (a name that
    was fine when the URL was set may lead elsewhere later)."""

    def __init__(self, allowed: AllowedHosts) -> None:
        self._allowed = allowed
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        if not self._allowed.allows_name(host):
            problem = _addresses_problem(host, (r["host"] for r in found), self._allowed)
            if problem is not None:
                # (aiohttp shows an OSError's strerror only)
                raise OSError(errno.EACCES, f"not connecting: {problem}")
        return found

    async def close(self) -> None:
        await self._resolver.close()


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
    """What one POST of an event gave. ``dropped``: not sent, never will be."""

    event_id: str
    delivered: bool
    error: str = ""
    retry_in_s: float = 0.0
    dropped: bool = False


@dataclasses.dataclass(frozen=True)
class Hook:
    """Where one event goes and the secrets it is signed with; ``guarded``: a URL set
    over the API (a campaign's), whose connections are checked."""

    url: str
    secret: str
    previous_secret: str | None = None
    guarded: bool = False


async def record_events(pool: Any, config: WebhooksConfig) -> None:
    """Tell the database triggers whether to record events (webhooks configured or not).

    Every daemon does this at start; the last one started decides for all the
    daemons of a database, so they should share their [webhooks] settings.
    """
    async with pool.acquire() as conn:
        await conn.execute(query("set_webhooks_recording"), config.active)
    if config.active:
        logger.info(
            "webhooks on: events are recorded and sent to %s, or to their campaign's own hook",
            _origin(config.url),
            extra={"action": "webhooks"},
        )
    elif config.enabled:
        logger.info(
            "no webhooks.url: only campaigns with a hook of their own get events",
            extra={"action": "webhooks"},
        )
    else:
        logger.info(
            "webhooks off (webhooks.enabled = false): no event is sent; campaigns' own "
            "hooks still record theirs, sent once webhooks are on again",
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
        self._allowed = AllowedHosts.parse(config.allowed_hosts)
        # The origins whose deliveries fail now (one log line when it starts and ends).
        self._failing: set[str] = set()
        # (the daemon's hook's session, the campaigns' hooks' guarded one), while running.
        self._sessions: tuple[aiohttp.ClientSession, ...] = ()
        self._random = random.Random()
        # Events this sender delivered, and deliveries that failed (for metrics).
        self.delivered = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        if not self.config.enabled:
            await stop.wait()
            return
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        guarded = aiohttp.TCPConnector(resolver=GuardedResolver(self._allowed))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            aiohttp.ClientSession(timeout=timeout, connector=guarded) as campaigns_session,
        ):
            self._sessions = (session, campaigns_session)
            try:
                await self._loop(stop)
            finally:
                await self._unlisten()

    async def _loop(self, stop: asyncio.Event) -> None:
        db_delay = 0.2
        while not stop.is_set():
            idle_s: float
            try:
                await self._listen()
                if await self._step():
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

    async def _step(self) -> int:
        """Lease the due events, POST them, record the results; how many were leased."""
        await self._flush()
        # Cleared before looking: a NOTIFY from now on means "look again".
        self._wake.clear()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                query("claim_webhooks"),
                self.config.batch_size,
                self.config.timeout_s + LEASE_MARGIN_S,
                self.config.active,
            )
        if not rows:
            return 0
        rows = sorted(rows, key=lambda r: r["seq"])
        self._unsaved += await asyncio.gather(*(self._deliver(row) for row in rows))
        await self._flush()
        return len(rows)

    def hook_of(self, row: Any) -> Hook | None:
        """Where a leased event goes: its campaign's hook, or the daemon's; None when
        its campaign's hook is gone."""
        if row["hook_campaign_id"] is None:
            return Hook(self.config.url, self.config.secret)
        if row["hook_url"] is None:
            return None
        previous = row["hook_previous_secret"] if row["hook_rotating"] else None
        return Hook(row["hook_url"], row["hook_secret"], previous, guarded=True)

    async def _deliver(self, row: Any) -> Delivery:
        hook = self.hook_of(row)
        if hook is None:
            logger.warning(
                "webhook %s not sent: campaign %s's own hook was removed (or the campaign "
                "deleted) since the event was written",
                row["id"],
                row["hook_campaign_id"],
                extra={"action": "webhook", "event_id": str(row["id"])},
            )
            return Delivery(
                str(row["id"]),
                False,
                "not sent: the campaign's own webhook was removed after the event was written",
                dropped=True,
            )
        return await self._post(hook, row)

    async def _post(self, hook: Hook, row: Any) -> Delivery:
        event_id = str(row["id"])
        body = row["body"].encode()
        headers = request_headers(
            event_id=event_id,
            event_type=row["event_type"],
            body=body,
            secret=hook.secret,
            timestamp=int(time.time()),
            previous_secret=hook.previous_secret,
        )
        session = self._sessions[1] if hook.guarded else self._sessions[0]
        origin = _origin(hook.url)
        retry_after: float | None = None
        try:
            if hook.guarded and (problem := url_problem(hook.url, self._allowed)):
                raise OSError(f"not connecting: {problem}")
            # ClientTimeout bounds the request; this bounds everything around it too.
            async with asyncio.timeout(self.config.timeout_s + 1):
                async with session.post(
                    hook.url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    if 200 <= resp.status < 300:
                        self._crm_ok(origin)
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
        self._crm_failed(origin, error)
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
                elif done.dropped:
                    await conn.execute(query("webhook_dropped"), done.event_id, done.error)
                    if self.metrics is not None:
                        self.metrics.webhook_events_dropped.inc()
                else:
                    await conn.execute(
                        query("webhook_failed"), done.event_id, done.retry_in_s, done.error
                    )
                self._unsaved.pop(0)

    async def _idle_s(self) -> float:
        """How long to wait for the next due event (a NOTIFY may cut it short)."""
        async with self.pool.acquire() as conn:
            due_in = await conn.fetchval(query("next_webhook_due_in"), self.config.active)
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
    def _crm_failed(self, origin: str, error: str) -> None:
        if origin not in self._failing:
            self._failing.add(origin)
            logger.warning(
                "webhook deliveries to %s failing, retrying with backoff: %s",
                origin,
                error,
                extra={"action": "webhook"},
            )

    def _crm_ok(self, origin: str) -> None:
        if origin in self._failing:
            self._failing.discard(origin)
            logger.info(
                "webhook deliveries to %s succeed again", origin, extra={"action": "webhook"}
            )


def _origin(url: str) -> str:
    """The scheme, host and port of a URL: its path or query may hold a token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
