"""Users, tokens, log-in sessions, the audit log, the event stream, the desk and the
supervisor view: request bodies and responses."""

from __future__ import annotations

from ...accounts.passwords import MAX_PASSWORD, MIN_PASSWORD
from ...accounts.roles import ROLES
from ...accounts.users import USERNAME_PATTERN
from .common import DATETIME, ID, INT, TEXT, Schema, nullable, obj

AGENT = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,80}$"}
PASSWORD = {"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD}
_USER_FIELDS: dict[str, Schema] = {
    "username": {"type": "string", "pattern": USERNAME_PATTERN},
    "display_name": nullable({"type": "string", "maxLength": 200}),
    "role": {"type": "string", "enum": list(ROLES)},
    "password": nullable(PASSWORD),
    "agent": nullable({**AGENT, "description": "agent users: their PJSIP endpoint"}),
    "active": {"type": "boolean"},
}
USER_CREATE = obj(_USER_FIELDS, required=["username", "role"])
USER_UPDATE = obj({k: v for k, v in _USER_FIELDS.items() if k != "username"}, minProperties=1)
USER = obj(
    {
        "id": ID,
        "username": TEXT,
        "display_name": nullable(TEXT),
        "role": {"type": "string", "enum": list(ROLES)},
        "agent": nullable(TEXT),
        "active": {"type": "boolean"},
        "has_password": {"type": "boolean"},
        "created_at": DATETIME,
        "updated_at": DATETIME,
    },
    required=["id", "username", "role", "agent", "active", "has_password"],
)
LOGIN = obj(
    {
        "username": {"type": "string", "maxLength": 64},
        "password": {"type": "string", "maxLength": 200},
    },
    required=["username", "password"],
)
TOKEN_CREATE = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "expires_at": nullable(DATETIME),
    },
    required=["name"],
)
TOKEN = obj(
    {
        "id": ID,
        "user_id": ID,
        "kind": {"type": "string", "enum": ["api", "session"]},
        "name": TEXT,
        "created_at": DATETIME,
        "expires_at": nullable(DATETIME),
        "last_used_at": nullable(DATETIME),
        "token": {
            "type": "string",
            "description": "Only when created: keep it, it is not shown again",
        },
    },
    required=["id", "user_id", "kind", "name"],
)
SESSION = obj(
    {"token": TEXT, "expires_at": DATETIME, "user": {"$ref": "#/components/schemas/User"}},
    required=["token", "expires_at", "user"],
)
ME = obj(
    {
        "username": TEXT,
        "role": TEXT,
        "user_id": nullable(INT),
        "agent": nullable(TEXT),
        "session": {"type": "boolean"},
    },
    required=["username", "role", "user_id", "agent", "session"],
)
AUDIT_ENTRY = obj(
    {
        "id": ID,
        "at": DATETIME,
        "user_id": nullable(INT),
        "username": TEXT,
        "role": TEXT,
        "via": {"type": "string", "enum": ["api", "desk", "cli"]},
        "action": TEXT,
        "method": TEXT,
        "path": TEXT,
        "target_type": nullable(TEXT),
        "target_id": nullable(TEXT),
        "before": {},
        "after": {},
    },
    required=["id", "at", "username", "role", "via", "action", "method", "path"],
)
AUDIT_PAGE = obj(
    {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
        "next_before": nullable(INT),
    },
    required=["items", "next_before"],
)
# The desk's and the supervisor's answers are views for their pages: documented
# as objects, their fields in docs/agents.md.
VIEW: Schema = {"type": "object"}
JOIN = obj({"campaign_id": ID}, required=["campaign_id"])
PAUSE = obj(
    {"reason": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,39}$"}}, required=["reason"]
)
SKIP = obj({"reason": {"type": "string", "minLength": 1, "maxLength": 200}}, required=["reason"])
DESK_DISPOSITION = obj(
    {
        "status": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
        "note": nullable({"type": "string", "maxLength": 2000}),
        "callback_local": nullable(
            {
                "type": "string",
                "maxLength": 40,
                "description": "A callback's date and time in the contact's local time, "
                "without offset (2025-06-02T09:30)",
            }
        ),
    },
    required=["status"],
)

COMPONENTS: dict[str, Schema] = {
    "User": USER,
    "UserPage": obj(
        {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
            "next_after": nullable(INT),
        },
        required=["items", "next_after"],
    ),
    "Token": TOKEN,
    "Session": SESSION,
    "Me": ME,
    "AuditEntry": AUDIT_ENTRY,
    "AuditPage": AUDIT_PAGE,
    "View": VIEW,
}
