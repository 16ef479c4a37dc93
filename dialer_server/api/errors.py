"""The one error middleware: every error leaves as JSON.

``{"error": {"code": ..., "message": ..., "details": ...}}`` with the right 4xx
for anything the request got wrong; a bug is a 500 with code ``internal`` (and
a log line with the traceback), never a bare page.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from ..db.outage import TRANSIENT_ERRORS
from ..engine.strategy import StrategyError
from ..errors import Conflict, InvalidInput, NotFound, RequestError
from .common import (
    ACCEPTED_CODINGS,
    CONTEXT,
    BadEncoding,
    BadRequest,
    Handler,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedEncoding,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[RequestError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (BadRequest, 400),
    (BadEncoding, 400),
    (UnsupportedEncoding, 415),
    (ServiceUnavailable, 503),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Any = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and successes raised as exceptions pass through
        headers = {
            k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")
        }
        message = exc.reason
        if exc.status == 404:
            message = f"not found: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "http_error"), message, headers=headers or None
        )
    except RequestError as exc:
        status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
        # RFC 7694: a 415 for a content coding names the codings that are read.
        accept = {"Accept-Encoding": ACCEPTED_CODINGS}
        return error_response(
            status,
            exc.code,
            str(exc),
            exc.details,
            accept if isinstance(exc, UnsupportedEncoding) else None,
        )
    except StrategyError as exc:
        return error_response(422, "invalid_strategy", str(exc))
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
        # Validation should have caught it: the database did. Still the
        # request's fault, so a 4xx, and logged so the gap gets closed.
        logger.warning(
            "request refused by the database: %s",
            exc,
            extra={"action": "api", "path": request.path},
        )
        status = 409 if isinstance(exc, asyncpg.UniqueViolationError) else 422
        code = "conflict" if status == 409 else "invalid_data"
        return error_response(status, code, f"the database refused the data: {exc}")
    except TRANSIENT_ERRORS as exc:
        # PostgreSQL is away: the request may work again later.
        request.app[CONTEXT].outage.down(exc, component="api")
        return error_response(
            503, "unavailable", "the database is unavailable, try again", None, {"Retry-After": "5"}
        )
    except Exception:
        logger.exception(
            "request failed",
            extra={"action": "api", "method": request.method, "path": request.path},
        )
        return error_response(500, "internal", "internal error: the request failed (see logs)")
