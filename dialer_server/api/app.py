"""The HTTP side of the daemon: health, readiness, metrics, and the API (/api/v1, /openapi.json)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from ..config import Config, parse_api_tokens
from ..db.outage import Outage
from ..events import EventBroker
from ..observability.metrics import Metrics
from ..telephony.pbx_pool import PbxPool
from . import (
    attempts,
    bulk,
    caller_ids,
    campaigns,
    contacts,
    desk,
    dispositions,
    dnc,
    events,
    flows,
    hooks,
    imports,
    pages,
    persons,
    recordings,
    strategies,
    supervisor,
    users,
)
from .auth import OPERATIONS_BY_ID, auth_middleware
from .common import CONTEXT, ApiContext, Operation
from .errors import error_middleware
from .openapi import DOCUMENT, build_document, openapi

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Services:
    pool: Any
    # The PBXs of the daemon (their AMI connections).
    pbxs: PbxPool
    metrics: Metrics
    # The daemon's settings (the API's tokens among them); None: the defaults.
    config: Config | None = None
    # The daemon's view of PostgreSQL's availability (db/outage.py).
    outage: Outage = dataclasses.field(default_factory=Outage)
    # The agent roster (telephony/roster.py): the desk's and supervisor's agent states.
    roster: Any = None
    # The event stream's broker (events.py); None: /api/v1/events answers 503.
    broker: EventBroker | None = None


SERVICES = web.AppKey("services", Services)


class _ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log: a request it cannot parse is one warning line.

    aiohttp logs such a request (broken headers, a bad request line...) at ERROR with a
    traceback, before any handler or auth runs: anyone who can reach the port could fill
    the logs with tracebacks. It is the client's fault, so one line at WARNING; anything
    else aiohttp reports stays an error with its traceback (a bug).
    """

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            # aiohttp's message may show the offending bytes on following lines.
            reason = (exc_info.message or type(exc_info).__name__).strip().splitlines()[0]
            reason = reason.rstrip(": ") or type(exc_info).__name__
            remote = args[0] if args else "?"
            self.warning(
                "malformed HTTP request from %s: %s",
                remote,
                reason[:200],
                extra={"action": "http", "status": exc_info.code},
            )
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs  # keep the call's own extra (the default replaces it)


def server_options() -> dict[str, Any]:
    """The settings of the HTTP server that serves the app (the daemon's, and the tests').

    Bodies are handed over as sent: the API decodes their Content-Encoding itself
    (api/common.py), so that a body that is not what its header says is a JSON 400 and
    an unknown coding a JSON 415, where aiohttp's own decoding gave a 500 or a text page.
    """
    return {
        "logger": _ServerLog(logging.getLogger("aiohttp.server"), {}),
        "auto_decompress": False,
    }


# A readiness probe that hangs is worse than one that says no.
_DB_CHECK_TIMEOUT_S = 2.0


def create_app(services: Services) -> web.Application:
    app = web.Application()
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_routes(app, services)
    return app


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to dial: PostgreSQL answers and the AMI connection of a PBX is logged in.

    ``checks.ami`` is ok while any PBX of the pool is up (calls go to those), and
    lists each one under ``pbxs``; with one PBX, its state and error are also
    ``checks.ami``'s own.
    """
    services = request.app[SERVICES]
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(_DB_CHECK_TIMEOUT_S):
            await services.pool.fetchval("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # any failure means "not ready", with the reason shown
        checks["database"] = {"ok": False, "error": str(exc) or type(exc).__name__}
    pbxs: dict[str, Any] = {}
    for pbx in services.pbxs:
        pbxs[pbx.name] = {"ok": pbx.up, "state": pbx.ami.state.value}
        if not pbx.up and pbx.ami.last_error:
            pbxs[pbx.name]["error"] = pbx.ami.last_error
    checks["ami"] = {"ok": services.pbxs.any_up}
    if len(pbxs) == 1:
        checks["ami"].update(next(iter(pbxs.values())))
    checks["ami"]["pbxs"] = pbxs
    ready = all(c["ok"] for c in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICES].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


OPERATIONS: list[Operation] = [
    *campaigns.OPERATIONS,
    *hooks.OPERATIONS,
    *caller_ids.OPERATIONS,
    *attempts.OPERATIONS,
    *strategies.OPERATIONS,
    *flows.OPERATIONS,
    *contacts.OPERATIONS,
    *bulk.OPERATIONS,
    *imports.OPERATIONS,
    *dnc.OPERATIONS,
    *persons.OPERATIONS,
    *recordings.OPERATIONS,
    *dispositions.OPERATIONS,
    *users.OPERATIONS,
    *events.OPERATIONS,
    *desk.OPERATIONS,
    *supervisor.OPERATIONS,
    *pages.OPERATIONS,
]


def add_routes(app: web.Application, services: Services) -> None:
    """Serve /api/v1 and /openapi.json on ``app``, with auth and JSON errors everywhere."""
    config = services.config if services.config is not None else Config()
    tokens = parse_api_tokens(config.api.tokens)
    if not tokens:
        logger.warning(
            "no API tokens configured (api.tokens): only users' tokens and log-ins are accepted",
            extra={"action": "api"},
        )
    app[CONTEXT] = ApiContext(
        pool=services.pool, tokens=tokens, config=config, outage=services.outage
    )
    app[DOCUMENT] = build_document(OPERATIONS)
    app[OPERATIONS_BY_ID] = {op.operation_id: op for op in OPERATIONS}
    app[desk.PBXS] = services.pbxs
    app[desk.ROSTER] = services.roster
    if services.broker is not None:
        app[events.BROKER] = services.broker
    # The error middleware is outermost: it turns whatever the rest raise into JSON.
    app.middlewares.extend([error_middleware, auth_middleware])
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    for op in OPERATIONS:
        app.router.add_route(op.method, op.route, op.handler, name=op.operation_id)
