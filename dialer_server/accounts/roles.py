"""Roles, and which roles may use an operation: pure code.

Five roles: ``admin`` (everything, users and tokens included), ``supervisor``
(campaigns, contacts, dictionaries, the supervisor view, agents' pauses),
``agent`` (the agent desk only: their own calls), ``integration`` (a CRM or
another system, over the API only: what the config tokens of scope ``write``
were) and ``read_only`` (reads, never a write). Every operation of the API
names the roles that may use it (``api/common.py``'s ``Operation.roles``);
anyone else is refused with 403, and the OpenAPI document lists them.
"""

from __future__ import annotations

import dataclasses

ADMIN = "admin"
SUPERVISOR = "supervisor"
AGENT = "agent"
INTEGRATION = "integration"
READ_ONLY = "read_only"
ROLES = (ADMIN, SUPERVISOR, AGENT, INTEGRATION, READ_ONLY)

# The sets operations are declared with.
ADMINS: tuple[str, ...] = (ADMIN,)
# Campaigns, contacts, strategies, do-not-call lists, status dictionaries.
WRITERS: tuple[str, ...] = (ADMIN, SUPERVISOR, INTEGRATION)
READERS: tuple[str, ...] = (ADMIN, SUPERVISOR, INTEGRATION, READ_ONLY)
SUPERVISORS: tuple[str, ...] = (ADMIN, SUPERVISOR)
SUPERVISOR_READERS: tuple[str, ...] = (ADMIN, SUPERVISOR, READ_ONLY)
AGENTS: tuple[str, ...] = (AGENT,)
EVERYONE: tuple[str, ...] = ROLES

# What the config tokens of [api] tokens are: integration users.
SCOPE_ROLES = {"write": INTEGRATION, "read": READ_ONLY}


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who makes a request: a user, or a config token acting as one.

    ``user_id`` is None for a config token. ``agent``: the PJSIP endpoint of an
    agent user. ``session``: logged in through the desk (a session token).
    """

    username: str
    role: str
    user_id: int | None = None
    agent: str | None = None
    session: bool = False
    token_id: int | None = None


def allowed(role: str, roles: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether ``role`` may use an operation open to ``roles``."""
    return role in roles


def writes(method: str) -> bool:
    return method not in ("GET", "HEAD", "OPTIONS")


def check_roles(roles: tuple[str, ...], method: str, *, own_session: bool = False) -> None:
    """An operation's declaration must make sense: known roles, no read-only writer
    (but anyone may end their own session: ``own_session``)."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown or no roles: {sorted(unknown)}")
    if writes(method) and READ_ONLY in roles and not own_session:
        raise ValueError("read_only may never write")
