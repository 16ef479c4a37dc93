"""The HTTP control API, /api/v1, and its OpenAPI document at /openapi.json.

Each module holds the handlers of one resource and their ``OPERATIONS``: the
routes are registered from that table and the document is built from it, so
the two cannot disagree.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ..config import Config, parse_api_tokens
from . import campaigns, contacts, dispositions, dnc, strategies
from .auth import auth_middleware
from .common import CONTEXT, ApiContext, Operation
from .errors import error_middleware
from .openapi import DOCUMENT, build_document, openapi

if TYPE_CHECKING:
    from ..web import Services

logger = logging.getLogger(__name__)

OPERATIONS: list[Operation] = [
    *campaigns.OPERATIONS,
    *strategies.OPERATIONS,
    *contacts.OPERATIONS,
    *dnc.OPERATIONS,
    *dispositions.OPERATIONS,
]


def add_routes(app: web.Application, services: Services) -> None:
    """Serve /api/v1 and /openapi.json on ``app``, with auth and JSON errors everywhere."""
    config = services.config if services.config is not None else Config()
    tokens = parse_api_tokens(config.api.tokens)
    if not tokens:
        logger.warning(
            "no API tokens configured (api.tokens): every /api/v1 request is refused",
            extra={"action": "api"},
        )
    app[CONTEXT] = ApiContext(pool=services.pool, tokens=tokens, config=config)
    app[DOCUMENT] = build_document(OPERATIONS)
    # The error middleware is outermost: it turns whatever the rest raise into JSON.
    app.middlewares.extend([error_middleware, auth_middleware])
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    for op in OPERATIONS:
        app.router.add_route(op.method, op.route, op.handler, name=op.operation_id)
