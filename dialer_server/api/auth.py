"""Bearer tokens: every path but the probes and the API document needs one.

Tokens come from ``api.tokens`` (config.py). A token's scope is ``read`` (GET
only) or ``write`` (everything). No token or an unknown one: 401; a read token
on a request that changes something: 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web

from ..config import ApiToken
from .common import CONTEXT, Handler
from .errors import error_response

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_NAME = web.RequestKey("api_token_name", str)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dialer"'}


def find_token(tokens: Sequence[ApiToken], presented: str) -> ApiToken | None:
    """The configured token equal to ``presented`` (compared in constant time)."""
    found = None
    given = presented.encode()
    for token in tokens:
        # Every token is compared: the time taken says nothing about which matched.
        if hmac.compare_digest(token.token.encode(), given):
            found = token
    return found


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return error_response(
            401,
            "unauthorized",
            "an Authorization: Bearer <token> header is required",
            headers=_CHALLENGE,
        )
    token = find_token(request.app[CONTEXT].tokens, credentials.strip())
    if token is None:
        return error_response(
            401,
            "unauthorized",
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="dialer", error="invalid_token"'},
        )
    if request.method not in READ_METHODS and token.scope != "write":
        return error_response(
            403,
            "forbidden",
            f"token {token.name!r} has scope {token.scope}: this request needs scope write",
        )
    request[TOKEN_NAME] = token.name
    return await handler(request)
