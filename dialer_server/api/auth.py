"""Who makes a request, and whether their role may use the operation.

Every path but the probes, the API document, the desk's pages and the log-in
needs ``Authorization: Bearer <token>``. A token is either one of ``[api]
tokens`` (config.py: scope ``write`` acts as an ``integration`` user, ``read`` as
a ``read_only`` one), or a user's token from the database (an API token an
admin made, or the session of a desk log-in; accounts/users.py). No token or an
unknown one: 401. Each operation names the roles that may use it
(``Operation.allowed_roles``); any other role: 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web

from ..accounts import users
from ..accounts.roles import SCOPE_ROLES, Principal
from ..config import ApiToken
from .common import CONTEXT, PRINCIPAL, Handler, Operation
from .errors import error_response

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
# The name of the token (or user) behind the request, for log lines.
TOKEN_NAME = web.RequestKey("api_token_name", str)
OPERATIONS_BY_ID = web.AppKey("operations_by_id", dict)
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


def operation_of(request: web.Request) -> Operation | None:
    route = request.match_info.route
    operations = request.app.get(OPERATIONS_BY_ID) or {}
    if route is None or not route.name:
        return None
    found: Operation | None = operations.get(route.name)
    return found


async def principal_of(request: web.Request, presented: str) -> Principal | None:
    context = request.app[CONTEXT]
    token = find_token(context.tokens, presented)
    if token is not None:
        return Principal(username=token.name, role=SCOPE_ROLES[token.scope])
    if context.pool is None or not presented.startswith("dlr_") or len(presented) > 200:
        return None
    async with context.pool.acquire() as conn:
        return await users.principal_of_token(conn, presented)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = operation_of(request)
    if request.path in PUBLIC_PATHS or (operation is not None and operation.public):
        return await handler(request)
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return error_response(
            401,
            "unauthorized",
            "an Authorization: Bearer <token> header is required",
            headers=_CHALLENGE,
        )
    principal = await principal_of(request, credentials.strip())
    if principal is None:
        return error_response(
            401,
            "unauthorized",
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="dialer", error="invalid_token"'},
        )
    if operation is not None and principal.role not in operation.allowed_roles:
        return error_response(
            403,
            "forbidden",
            f"{principal.username!r} (role {principal.role}) may not use "
            f"{operation.operation_id}: it is for {', '.join(operation.allowed_roles)}",
        )
    request[PRINCIPAL] = principal
    request[TOKEN_NAME] = principal.username
    return await handler(request)
