"""Log-in (/api/v1/session), who am I (/api/v1/me), users and their tokens
(/api/v1/users, admins only) and the audit log (/api/v1/audit)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..accounts import audit, users
from ..accounts.roles import ADMINS, EVERYONE, ROLES, SUPERVISORS, Principal
from ..errors import InvalidInput
from .campaigns import query_time
from .common import (
    CONTEXT,
    PRINCIPAL,
    Operation,
    note,
    page,
    paged,
    path_id,
    query_int,
    query_text,
    read_json,
    respond,
    transaction,
)
from .schemas import common as s
from .schemas import users as schemas


def _principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.LOGIN)
    context = request.app[CONTEXT]
    async with transaction(request) as conn:
        user = await users.authenticate(conn, body["username"], body["password"])
        if user is None:
            raise web.HTTPUnauthorized(reason="unknown user or wrong password")
        token, row = await users.session_token(
            conn, user, hours=context.config.auth.session_hours, now=datetime.now(UTC)
        )
        # The log-in itself is in the audit log, as the user who logged in.
        request[PRINCIPAL] = Principal(
            user["username"], user["role"], user["id"], user["agent"], session=True
        )
        note(request, "user", user["id"], after={"session": row["id"]})
    return respond(
        {"token": token, "expires_at": row["expires_at"], "user": users.user_json(user)},
        status=201,
    )


async def logout(request: web.Request) -> web.Response:
    who = _principal(request)
    if who.token_id is not None and who.session:
        async with transaction(request) as conn:
            await users.delete_token(conn, who.token_id)
            note(request, "user", who.user_id)
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    who = _principal(request)
    return respond(
        {
            "username": who.username,
            "role": who.role,
            "user_id": who.user_id,
            "agent": who.agent,
            "session": who.session,
        }
    )


async def list_users(request: web.Request) -> web.Response:
    role = query_text(request, "role", choices=list(ROLES))
    after, limit = page(request)
    async with transaction(request) as conn:
        rows = await users.list_users(conn, role=role, after=after, limit=limit)
    return respond(paged([users.user_json(r) for r in rows], limit))


async def create_user(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.USER_CREATE)
    async with transaction(request) as conn:
        row = await users.create_user(conn, body)
        note(request, "user", row["id"], after=users.user_json(row))
    return respond(users.user_json(row), status=201)


async def get_user(request: web.Request) -> web.Response:
    async with transaction(request) as conn:
        row = await users.get_user(conn, path_id(request, "user_id"))
    return respond(users.user_json(row))


async def update_user(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    body = await read_json(request, schemas.USER_UPDATE)
    async with transaction(request) as conn:
        before, after = await users.update_user(conn, user_id, body)
        changed = {k: "***" if k == "password" else v for k, v in body.items()}
        note(
            request,
            "user",
            user_id,
            before=users.user_json(before),
            after={**users.user_json(after), "changed": changed},
        )
    return respond(users.user_json(after))


async def delete_user(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    async with transaction(request) as conn:
        before = await users.delete_user(conn, user_id)
        note(request, "user", user_id, before=users.user_json(before))
    return web.Response(status=204)


async def list_tokens(request: web.Request) -> web.Response:
    async with transaction(request) as conn:
        rows = await users.list_tokens(conn, path_id(request, "user_id"))
    return respond({"items": rows})


async def create_token(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    body = await read_json(request, schemas.TOKEN_CREATE)
    expires_at = _time(body.get("expires_at"), "expires_at")
    async with transaction(request) as conn:
        await users.get_user(conn, user_id)
        token, row = await users.create_token(
            conn, user_id, kind="api", name=body["name"], expires_at=expires_at
        )
        note(request, "token", row["id"], after={"user_id": user_id, "name": body["name"]})
    return respond({**row, "token": token}, status=201)


async def delete_token(request: web.Request) -> web.Response:
    token_id = path_id(request, "token_id")
    async with transaction(request) as conn:
        row = await users.delete_token(conn, token_id)
        note(request, "token", token_id, before=row)
    return web.Response(status=204)


def _time(text: Any, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidInput(
            f"{field} must be an RFC 3339 date and time with an offset",
            details=[{"field": field, "message": "invalid date-time"}],
        )
    return value.astimezone(UTC)


async def list_audit(request: web.Request) -> web.Response:
    before_id = query_int(request, "before", 0, 0, 2**63 - 1)
    limit = query_int(request, "limit", 100, 1, 1000)
    start, end = query_time(request, "from"), query_time(request, "to")
    async with transaction(request) as conn:
        rows = await audit.list_entries(
            conn,
            before_id=before_id,
            limit=limit,
            username=query_text(request, "user", max_len=64),
            action=query_text(request, "action", max_len=100),
            target_type=query_text(request, "target_type", max_len=40),
            target_id=query_text(request, "target_id", max_len=100),
            start=start,
            end=end,
        )
    return respond({"items": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None})


_USERS = "/api/v1/users"
_USER = _USERS + r"/{user_id:\d+}"
_USER_ID = s.path_param("user_id", s.ID)
_WRITE = ("400", "401", "403", "404", "409", "413", "415", "422", "503")

OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/session",
        login,
        "login",
        "Log in with a user name and password: a session token",
        "users",
        body=s.json_body(schemas.LOGIN),
        responses={
            "201": s.ok(s.ref("Session"), "Logged in"),
            **s.errors("400", "401", "413", "415", "422", "503"),
        },
        public=True,
        description="The token is sent as Authorization: Bearer <token> until it expires "
        "([auth] session_hours) or DELETE /api/v1/session. 401 for an unknown user, a wrong "
        "password or an inactive user alike.",
    ),
    Operation(
        "DELETE",
        "/api/v1/session",
        logout,
        "logout",
        "Log out: the session token stops working",
        "users",
        responses={"204": s.no_content("Logged out"), **s.errors("401", "503")},
        roles=EVERYONE,
        own_session=True,
    ),
    Operation(
        "GET",
        "/api/v1/me",
        me,
        "getMe",
        "Who the token belongs to, and their role",
        "users",
        responses={"200": s.ok(s.ref("Me")), **s.errors("401", "503")},
        roles=EVERYONE,
    ),
    Operation(
        "GET",
        _USERS,
        list_users,
        "listUsers",
        "List users",
        "users",
        parameters=(
            s.query_param("role", {"type": "string", "enum": list(ROLES)}),
            *s.PAGE_PARAMS,
        ),
        responses={"200": s.ok(s.ref("UserPage")), **s.errors("401", "403", "422", "503")},
        roles=ADMINS,
    ),
    Operation(
        "POST",
        _USERS,
        create_user,
        "createUser",
        "Create a user (an agent user names their PJSIP endpoint)",
        "users",
        body=s.json_body(schemas.USER_CREATE),
        responses={"201": s.ok(s.ref("User"), "Created"), **s.errors(*_WRITE)},
        roles=ADMINS,
        description="409 name_taken, agent_taken (the endpoint belongs to another user).",
    ),
    Operation(
        "GET",
        _USER,
        get_user,
        "getUser",
        "One user",
        "users",
        parameters=(_USER_ID,),
        responses={"200": s.ok(s.ref("User")), **s.errors("401", "403", "404", "503")},
        roles=ADMINS,
    ),
    Operation(
        "PATCH",
        _USER,
        update_user,
        "updateUser",
        "Change a user (role, password, endpoint, active)",
        "users",
        parameters=(_USER_ID,),
        body=s.json_body(schemas.USER_UPDATE),
        responses={"200": s.ok(s.ref("User")), **s.errors(*_WRITE)},
        roles=ADMINS,
        description="A new password or active false ends the user's sessions. 409 "
        "last_admin: the last active admin stays one.",
    ),
    Operation(
        "DELETE",
        _USER,
        delete_user,
        "deleteUser",
        "Delete a user and their tokens",
        "users",
        parameters=(_USER_ID,),
        responses={"204": s.no_content("Deleted"), **s.errors("401", "403", "404", "409", "503")},
        roles=ADMINS,
    ),
    Operation(
        "GET",
        _USER + "/tokens",
        list_tokens,
        "listTokens",
        "A user's API tokens and sessions (never the tokens themselves)",
        "users",
        parameters=(_USER_ID,),
        responses={"200": s.ok({"type": "object"}), **s.errors("401", "403", "404", "503")},
        roles=ADMINS,
    ),
    Operation(
        "POST",
        _USER + "/tokens",
        create_token,
        "createToken",
        "A new API token of the user: shown once",
        "users",
        parameters=(_USER_ID,),
        body=s.json_body(schemas.TOKEN_CREATE),
        responses={"201": s.ok(s.ref("Token"), "Created"), **s.errors(*_WRITE)},
        roles=ADMINS,
    ),
    Operation(
        "DELETE",
        r"/api/v1/tokens/{token_id:\d+}",
        delete_token,
        "deleteToken",
        "Revoke a token (API or session)",
        "users",
        parameters=(s.path_param("token_id", s.ID),),
        responses={"204": s.no_content("Revoked"), **s.errors("401", "403", "404", "503")},
        roles=ADMINS,
    ),
    Operation(
        "GET",
        "/api/v1/audit",
        list_audit,
        "listAudit",
        "The audit log, newest first: every write through the API or the desk",
        "users",
        parameters=(
            s.query_param("user", {"type": "string", "maxLength": 64}, "Who (user or token name)"),
            s.query_param("action", {"type": "string", "maxLength": 100}, "An operationId"),
            s.query_param("target_type", {"type": "string", "maxLength": 40}),
            s.query_param("target_id", {"type": "string", "maxLength": 100}),
            s.query_param("from", s.DATETIME),
            s.query_param("to", s.DATETIME),
            s.query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            s.query_param(
                "before",
                {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                "Only entries with an id below this (the next_before of the previous page)",
            ),
        ),
        responses={"200": s.ok(s.ref("AuditPage")), **s.errors("401", "403", "422", "503")},
        roles=SUPERVISORS,
    ),
]
