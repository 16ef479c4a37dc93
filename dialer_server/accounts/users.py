"""Users, their API tokens and their log-in sessions, in PostgreSQL.

A user has a role (``roles.py``); an agent user is tied to a PJSIP endpoint
(``agent``, the queue member name the desk joins queues with). Passwords are
Argon2id hashes (``passwords.py``), checked off the event loop. A token, API or
session, is stored as its SHA-256 only and shown once, when it is made.
Every function works in the caller's transaction.

Invariants: a user's agent endpoint is unique; the role ``agent`` and an
endpoint go together; the last active admin cannot be demoted, deactivated or
deleted (someone must be able to manage users).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..db.queries import queries_of
from ..errors import Conflict, InvalidInput, NotFound
from . import passwords
from .roles import ADMIN, AGENT, ROLES, Principal

query = queries_of(__name__)

USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
USERNAME_PATTERN = "^[A-Za-z0-9_.@-]{1,64}$"
AGENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
# What a user reads as over the API (never the hash).
USER_FIELDS = (
    "id",
    "username",
    "display_name",
    "role",
    "agent",
    "active",
    "created_at",
    "updated_at",
)


def user_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: row[key] for key in USER_FIELDS}
    out["has_password"] = row["password_hash"] is not None
    return out


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field} {message}", details=[{"field": field, "message": message}])


def _check_agent(role: str, agent: Any) -> str | None:
    if role == AGENT:
        if not isinstance(agent, str) or not AGENT_NAME.fullmatch(agent):
            raise _invalid("agent", "is required for role agent: a PJSIP endpoint name")
        return agent
    if agent is not None:
        raise _invalid("agent", "only an agent user has an endpoint")
    return None


async def _hash(password: Any) -> str | None:
    if password is None:
        return None
    if not isinstance(password, str):
        raise _invalid("password", "must be a string")
    problem = passwords.check_password_rules(password)
    if problem:
        raise _invalid("password", problem)
    return await asyncio.to_thread(passwords.hash_password, password)


async def create_user(conn: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """A new user from ``username``, ``role``, ``password``, ``agent``, ``display_name``,
    ``active``; Conflict when the name or the endpoint is taken."""
    username = values["username"]
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise _invalid("username", "must be 1-64 of A-Z a-z 0-9 _ . @ -")
    role = values["role"]
    if role not in ROLES:
        raise _invalid("role", f"must be one of {', '.join(ROLES)}")
    agent = _check_agent(role, values.get("agent"))
    if await conn.fetchval(query("username_taken"), username):
        raise Conflict(f"a user named {username!r} exists", code="name_taken")
    if agent is not None and await conn.fetchval(query("agent_taken"), agent, None):
        raise Conflict(f"endpoint {agent!r} belongs to another user", code="agent_taken")
    row = await conn.fetchrow(
        query("insert_user"),
        username,
        values.get("display_name"),
        role,
        await _hash(values.get("password")),
        agent,
        values.get("active", True),
    )
    return dict(row)


async def get_user(conn: Any, user_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(query("user_by_id"), user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return dict(row)


async def user_by_agent(conn: Any, agent: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("user_by_agent"), agent)
    return dict(row) if row is not None else None


async def list_users(
    conn: Any, *, role: str | None = None, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("list_users"), after, role, limit)]


async def update_user(
    conn: Any, user_id: int, changes: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Change a user; (before, after). Changing the password or deactivating ends
    their sessions."""
    before = await conn.fetchrow(query("lock_user"), user_id)
    if before is None:
        raise NotFound(f"user {user_id} not found")
    role = changes.get("role", before["role"])
    if role not in ROLES:
        raise _invalid("role", f"must be one of {', '.join(ROLES)}")
    agent = changes["agent"] if "agent" in changes else before["agent"]
    if role != AGENT and "agent" not in changes:
        agent = None
    agent = _check_agent(role, agent)
    if agent is not None and await conn.fetchval(query("agent_taken"), agent, user_id):
        raise Conflict(f"endpoint {agent!r} belongs to another user", code="agent_taken")
    active = changes.get("active", before["active"])
    if before["role"] == ADMIN and (role != ADMIN or not active):
        await _keep_an_admin(conn, user_id)
    password_hash = before["password_hash"]
    if "password" in changes:
        password_hash = await _hash(changes["password"])
    after = await conn.fetchrow(
        query("update_user"),
        user_id,
        changes.get("display_name", before["display_name"]),
        role,
        password_hash,
        agent,
        active,
    )
    if "password" in changes or not active:
        await conn.execute(query("delete_user_sessions"), user_id)
    return dict(before), dict(after)


async def delete_user(conn: Any, user_id: int) -> dict[str, Any]:
    before = await conn.fetchrow(query("lock_user"), user_id)
    if before is None:
        raise NotFound(f"user {user_id} not found")
    if before["role"] == ADMIN:
        await _keep_an_admin(conn, user_id)
    await conn.execute(query("delete_user"), user_id)
    return dict(before)


async def _keep_an_admin(conn: Any, user_id: int) -> None:
    if not await conn.fetchval(query("count_active_admins"), user_id):
        raise Conflict("the last active admin cannot be removed", code="last_admin")


async def authenticate(conn: Any, username: str, password: str) -> dict[str, Any] | None:
    """The active user with this name and password, else None (checked in constant-ish time)."""
    row = await conn.fetchrow(query("user_by_username"), username)
    encoded = row["password_hash"] if row is not None else None
    ok = await asyncio.to_thread(passwords.verify_password, encoded, password)
    if not ok or row is None or not row["active"]:
        return None
    return dict(row)


async def create_token(
    conn: Any, user_id: int, *, kind: str, name: str, expires_at: datetime | None
) -> tuple[str, dict[str, Any]]:
    """A new token of the user: (the token itself, shown once; its row)."""
    token = passwords.new_token()
    row = await conn.fetchrow(
        query("insert_token"), user_id, kind, name, passwords.token_digest(token), expires_at
    )
    return token, dict(row)


async def session_token(
    conn: Any, user: Mapping[str, Any], *, hours: float, now: datetime
) -> tuple[str, dict[str, Any]]:
    return await create_token(
        conn, user["id"], kind="session", name="desk", expires_at=now + timedelta(hours=hours)
    )


async def principal_of_token(conn: Any, token: str) -> Principal | None:
    """Who a user token belongs to (None: unknown, expired, or its user inactive)."""
    row = await conn.fetchrow(query("token_principal"), passwords.token_digest(token))
    if row is None:
        return None
    await conn.execute(query("touch_token"), row["token_id"])
    return Principal(
        username=row["username"],
        role=row["role"],
        user_id=row["user_id"],
        agent=row["agent"],
        session=row["kind"] == "session",
        token_id=row["token_id"],
    )


async def list_tokens(conn: Any, user_id: int) -> list[dict[str, Any]]:
    await get_user(conn, user_id)
    return [dict(r) for r in await conn.fetch(query("list_tokens"), user_id)]


async def delete_token(conn: Any, token_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(query("delete_token"), token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    return dict(row)


async def delete_expired_tokens(conn: Any) -> None:
    await conn.execute(query("delete_expired_tokens"))
