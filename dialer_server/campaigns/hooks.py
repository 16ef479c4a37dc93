"""A campaign's own webhook: its URL, its secret (and its rotation), the events it wants.

A campaign with a hook of its own gets its events there, signed with its secret; the
others use the daemon's ``[webhooks] url`` (``webhooks.py`` sends both). The URL is set
over the API, so it is checked (``webhooks.check_url``): http(s) only, and not to a
loopback, link-local or cloud-metadata address unless ``[webhooks] allowed_hosts``
allows it. A secret is never shown again once set: only when it is made here (a hook
created or rotated without one). A rotation keeps the previous secret for a grace
period, during which every delivery is signed with both.
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..config import AllowedHosts
from ..db.queries import queries_of
from ..errors import Conflict, InvalidInput, NotFound
from ..events import WEBHOOK_TYPES
from ..webhooks import check_url
from . import operations as campaigns

query = queries_of(__name__)

MIN_SECRET = 16
MAX_SECRET = 200
MAX_URL = 2000
# A rotation's grace period: a day by default, at most 30.
DEFAULT_GRACE_S = 86400
MAX_GRACE_S = 30 * 86400


def new_secret() -> str:
    """A secret of 256 random bits, as text a CRM can paste anywhere."""
    return random_secrets.token_hex(32)


def hook_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A hook as the API shows it: never its secrets."""
    rotating = row["previous_secret_until"]
    return {
        "campaign_id": row["campaign_id"],
        "url": row["url"],
        "events": list(row["events"]) if row["events"] is not None else None,
        "previous_secret_valid_until": rotating if row["rotating"] else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def check_secret(value: Any, field: str = "secret") -> str:
    if (
        not isinstance(value, str)
        or not MIN_SECRET <= len(value) <= MAX_SECRET
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        raise InvalidInput(
            f"{field} must be {MIN_SECRET}-{MAX_SECRET} printable characters without spaces",
            details=[{"field": field, "message": "invalid secret"}],
        )
    return value


def check_events(value: Any) -> list[str] | None:
    """The event types a hook wants; None: every type."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(
            "events must be a non-empty list of event types, or null for every type",
            details=[{"field": "events", "message": "invalid"}],
        )
    unknown = sorted(set(value) - set(WEBHOOK_TYPES))
    if unknown:
        raise InvalidInput(
            f"events: unknown event types {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(WEBHOOK_TYPES)})",
            details=[{"field": "events", "message": "unknown event type"}],
        )
    return list(dict.fromkeys(value))


async def check_hook_url(value: Any, allowed: AllowedHosts) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_URL:
        raise InvalidInput(
            f"url must be a URL of at most {MAX_URL} characters",
            details=[{"field": "url", "message": "invalid"}],
        )
    problem = await check_url(value, allowed)
    if problem is not None:
        raise InvalidInput(
            f"url {problem}"
            + (
                " ([webhooks] allowed_hosts may allow it)"
                if "address" in problem or "metadata" in problem
                else ""
            ),
            code="webhook_url_refused",
            details=[{"field": "url", "message": problem}],
        )
    return value


async def get(conn: Any, campaign_id: int) -> dict[str, Any]:
    """The campaign's own hook; NotFound when it has none (it uses the daemon's)."""
    await campaigns.get(conn, campaign_id)
    row = await conn.fetchrow(query("get_campaign_hook"), campaign_id)
    if row is None:
        raise NotFound(
            f"campaign {campaign_id} has no webhook of its own: its events go to the "
            "daemon's [webhooks] url, if it has one"
        )
    return dict(row)


async def put(
    conn: Any,
    campaign_id: int,
    body: Mapping[str, Any],
    *,
    allowed: AllowedHosts,
) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """Set the campaign's hook (its URL, events, and secret if given).

    (the hook, the hook before or None, the secret when it was made here).
    """
    await campaigns.get(conn, campaign_id)
    url = await check_hook_url(body.get("url"), allowed)
    events = check_events(body.get("events"))
    before = await conn.fetchrow(query("get_campaign_hook"), campaign_id)
    made: str | None = None
    if body.get("secret") is not None:
        secret = check_secret(body["secret"])
    elif before is not None:
        secret = before["secret"]
    else:
        secret = made = new_secret()
    row = await conn.fetchrow(query("put_campaign_hook"), campaign_id, url, secret, events)
    return dict(row), dict(before) if before is not None else None, made


async def rotate(
    conn: Any, campaign_id: int, *, secret: str | None, grace_s: int
) -> tuple[dict[str, Any], str]:
    """A new secret for the hook; the current one stays valid ``grace_s`` seconds.

    (the hook, the new secret). Conflict when the campaign has no hook of its own.
    """
    current = await get(conn, campaign_id)
    if secret is None:
        secret = new_secret()
    check_secret(secret)
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise InvalidInput(
            f"grace_s must be from 0 to {MAX_GRACE_S}",
            details=[{"field": "grace_s", "message": "out of range"}],
        )
    if secret == current["secret"]:
        raise Conflict("the new secret is the current one", code="same_secret")
    row = await conn.fetchrow(
        query("rotate_campaign_hook"), campaign_id, secret, timedelta(seconds=grace_s)
    )
    return dict(row), secret


async def delete(conn: Any, campaign_id: int) -> dict[str, Any] | None:
    """Remove the campaign's hook (its events go to the daemon's from now on; those
    written for its own hook and not yet delivered are dropped); the hook it had."""
    await campaigns.get(conn, campaign_id)
    row = await conn.fetchrow(query("delete_campaign_hook"), campaign_id)
    return dict(row) if row is not None else None


def shown(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A hook for the audit log: what the API shows."""
    return hook_json(row) if row is not None else None
