"""/api/v1/events: Server-Sent Events, the webhook events and the live ones.

Filters: ``campaign`` (ids, repeated or comma-separated) and ``type`` (event
types, comma-separated). ``Last-Event-ID`` (or ``?last_event_id=``) resumes
after that event: every matching event since is sent first, then the live
ones. Without it the stream starts with the events from now on. An agent user
gets the events about themselves only (and campaigns' state changes). A comment
line every ``[events] keepalive_s`` keeps the connection open; a client whose
connection is gone is dropped within a second of its next write or check.
"""

from __future__ import annotations

import time

from aiohttp import web

from ..accounts.roles import AGENT, EVERYONE
from ..errors import InvalidInput
from ..events import EVENT_TYPES, EventBroker, EventFilter, parse_campaigns, parse_types
from .common import CONTEXT, PRINCIPAL, Operation, ServiceUnavailable, query_text
from .schemas import common as s

BROKER = web.AppKey("event_broker", EventBroker)
CHECK_S = 1.0


class Unavailable(ServiceUnavailable):
    """The event stream is not available."""


def _filter(request: web.Request) -> EventFilter:
    principal = request[PRINCIPAL]
    try:
        campaigns = parse_campaigns(request.query.getall("campaign", []))
        types = parse_types(query_text(request, "type", max_len=500))
    except ValueError as exc:
        raise InvalidInput(str(exc), details=[{"field": "query", "message": str(exc)}]) from None
    agent = principal.agent or "-" if principal.role == AGENT else None
    return EventFilter(campaigns, types, agent)


def _last_event_id(request: web.Request) -> int | None:
    text = request.headers.get("Last-Event-ID") or query_text(request, "last_event_id", max_len=20)
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 19:
        raise InvalidInput(
            "Last-Event-ID must be the id of an event (a number)",
            details=[{"field": "Last-Event-ID", "message": "invalid"}],
        )
    return int(text)


async def stream_events(request: web.Request) -> web.StreamResponse:
    event_filter = _filter(request)
    after = _last_event_id(request)
    broker = request.app.get(BROKER)
    config = request.app[CONTEXT].config.events
    if broker is None or not config.enabled or broker.stopping:
        raise Unavailable("the event stream is off ([events] enabled = false)")
    if broker.clients >= config.max_clients:
        raise Unavailable(f"too many event streams open ({config.max_clients})")
    # Recorded from now on (nobody wanted events, they may not have been): before the
    # stream starts, so that it misses nothing that commits after its start.
    await broker.want()
    subscriber = broker.subscribe(event_filter)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        last = broker.last_seq if after is None else after
        while True:
            backlog = await broker.backlog(last, event_filter, 500)
            for old in backlog:
                await response.write(old.sse())
                last = old.seq
            if len(backlog) < 500:
                break
        quiet_since = time.monotonic()
        while not broker.stopping and not subscriber.dropped:
            event = await subscriber.next(CHECK_S)
            if event is None:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away
                if time.monotonic() - quiet_since >= config.keepalive_s:
                    await response.write(b": keepalive\n\n")
                    quiet_since = time.monotonic()
                continue
            if event.seq <= last:
                continue  # sent with the backlog already
            await response.write(event.sse())
            last = event.seq
            quiet_since = time.monotonic()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away while we wrote
    finally:
        broker.unsubscribe(subscriber)
    return response


OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/events",
        stream_events,
        "streamEvents",
        "Server-Sent Events: the webhook events and live ones (agent.state), resumable",
        "events",
        parameters=(
            s.query_param(
                "campaign",
                {"type": "string", "pattern": "^[0-9]{1,19}(,[0-9]{1,19})*$"},
                "Only these campaigns' events (ids, comma-separated)",
            ),
            s.query_param(
                "type",
                {"type": "string", "pattern": "^[a-z_.]+(,[a-z_.]+)*$", "maxLength": 500},
                f"Only these event types, comma-separated: {', '.join(EVENT_TYPES)}",
            ),
            s.query_param(
                "last_event_id",
                {"type": "string", "pattern": "^[0-9]{0,19}$"},
                "Resume after this event (as the Last-Event-ID header does)",
            ),
        ),
        responses={
            "200": {
                "description": "text/event-stream: id (the event's sequence number), event "
                "(its type) and data (the webhook body) per event",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **s.errors("401", "403", "422", "503"),
        },
        roles=EVERYONE,
        description="Each event: `id: <seq>`, `event: <type>`, `data: <the JSON body a "
        "webhook of the same event has>`. Reconnect with Last-Event-ID to miss nothing that "
        "is still kept ([events] retention_hours). An agent gets only their own events.",
    ),
]
