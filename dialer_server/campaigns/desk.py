"""What the agent desk and the supervisor view read and do in the database.

- The screen pop (``call_card``, ``contact_card``): the contact, its
  parameters under the campaign's names, its attempts with their dispositions
  and notes, the campaign's script with its placeholders filled in
  (``render_script``, pure), and the dispositions the agent may set.
- Dispositions from the desk (``set_call_disposition``): only for a call the
  agent took; a callback's time is given in the *contact's* local time.
- Preview mode: a due contact is shown to one agent (``offer_preview``:
  the engine's lease, ``FOR UPDATE SKIP LOCKED``, so two agents never get the
  same contact); Call makes it due for that agent, and the engine dials it with
  every check it applies to any call (line and rate limits, the calling window,
  do-not-call lists; the attempt row before the Originate); Skip, with a reason,
  puts it back at the step its strategy planned, due after the campaign's skip
  delay. A contact shown and never dialled goes back after ``PREVIEW_LEASE_S``
  (looked for whenever a contact is offered).
- The supervisor's live counts per campaign (``live_counts``).

Every function works in the caller's transaction.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..db.queries import queries_of
from ..engine.calling_window import zones_for_contact
from ..errors import Conflict, InvalidInput, NotFound
from . import dispositions

query = queries_of(__name__)

PARAMS = tuple(f"param{i}" for i in range(1, 13))
PHONES = tuple(f"phone{i}" for i in range(1, 6))
# A contact shown in preview and never called is given back after this long.
PREVIEW_LEASE_S = 1800.0
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,39})\}")
MAX_REASON = 200


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def render_script(
    script: str | None, contact: Mapping[str, Any], param_names: Mapping[str, str] | None
) -> str:
    """The script with ``{param1}``, ``{external_id}`` and the campaign's parameter
    names (``{first_name}``) replaced by the contact's values; an empty value
    becomes empty text, an unknown placeholder stays as written."""
    if not script:
        return ""
    values: dict[str, str] = {"external_id": contact.get("external_id") or ""}
    for param in PARAMS:
        values[param] = contact.get(param) or ""
    for param, name in (param_names or {}).items():
        if param in PARAMS:
            values[name] = contact.get(param) or ""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return values[key] if key in values else match.group(0)

    return _PLACEHOLDER.sub(fill, script)


def contact_zone(contact: Mapping[str, Any], campaign: Mapping[str, Any]) -> str:
    """The contact's time zone: its own, else its number's, else the campaign's."""
    window = _loads(campaign.get("calling_window")) or {}
    default = window.get("timezone") or campaign.get("timezone") or "UTC"
    zones = zones_for_contact(contact.get("timezone"), [contact.get("phone1")], default)
    return zones[0] if zones else default


def local_to_utc(text: str, zone: str) -> datetime:
    """``2025-06-02T09:30`` in ``zone`` as a UTC time; InvalidInput if it is not one."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        naive = None
    if naive is None or naive.tzinfo is not None:
        raise InvalidInput(
            "callback_local must be a local date and time without offset (2025-06-02T09:30)",
            details=[{"field": "callback_local", "message": "invalid date-time"}],
        )
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(UTC)


async def _campaign(conn: Any, campaign_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(query("desk_campaign"), campaign_id)
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return dict(row)


async def contact_card(conn: Any, contact_id: int) -> dict[str, Any]:
    """What the desk shows of a contact (the screen pop without the call)."""
    contact = await conn.fetchrow(query("desk_contact"), contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    contact = dict(contact)
    campaign = await _campaign(conn, contact["campaign_id"])
    names = _loads(campaign["param_names"]) or {}
    zone = contact_zone(contact, campaign)
    history = []
    for row in await conn.fetch(query("desk_history"), contact_id):
        history.append({**dict(row), "id": str(row["id"])})
    return {
        "contact": {
            "id": contact["id"],
            "external_id": contact["external_id"],
            "phones": [contact[p] for p in PHONES if contact[p]],
            "state": contact["state"],
            "status": contact["status"],
            "status_detail": contact["status_detail"],
            "timezone": zone,
            "local_time": datetime.now(UTC).astimezone(zoneinfo.ZoneInfo(zone)).isoformat(),
            "params": [
                {"param": p, "name": names.get(p, p), "value": contact[p]}
                for p in PARAMS
                if contact[p] is not None or p in names
            ],
        },
        "campaign": {
            "id": campaign["id"],
            "name": campaign["name"],
            "mode": campaign["mode"],
            "param_names": names,
        },
        "script": render_script(campaign["script"], contact, names),
        "history": history,
        "dispositions": [
            dict(r) for r in await conn.fetch(query("desk_dispositions"), campaign["id"])
        ],
    }


async def _agents_attempt(conn: Any, attempt_id: str, agent: str) -> dict[str, Any]:
    attempt = await conn.fetchrow(query("desk_attempt"), attempt_id)
    if attempt is None or attempt["agent"] != agent:
        # Another agent's call is none of this agent's business: it does not exist.
        raise NotFound(f"no call {attempt_id} of agent {agent}")
    return dict(attempt)


async def call_card(conn: Any, attempt_id: str, agent: str) -> dict[str, Any]:
    """The screen pop of a call the agent took."""
    attempt = await _agents_attempt(conn, attempt_id, agent)
    card = await contact_card(conn, attempt["contact_id"])
    card["attempt"] = {**attempt, "id": str(attempt["id"])}
    return card


async def current_call(conn: Any, agent: str) -> dict[str, Any] | None:
    """The agent's latest call without a disposition (the desk's open screen pop)."""
    row = await conn.fetchrow(query("desk_current_call"), agent)
    return None if row is None else {**dict(row), "id": str(row["id"])}


async def set_call_disposition(
    conn: Any,
    attempt_id: str,
    agent: str,
    *,
    status: str,
    note: str | None,
    callback_local: str | None,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The disposition of a call the agent took; a callback at ``callback_local`` in
    the contact's time zone. (disposition, contact) as dispositions.set_disposition."""
    attempt = await _agents_attempt(conn, attempt_id, agent)
    callback_at = None
    if callback_local is not None:
        contact = await conn.fetchrow(query("desk_contact"), attempt["contact_id"])
        campaign = await _campaign(conn, attempt["campaign_id"])
        callback_at = local_to_utc(callback_local, contact_zone(dict(contact), campaign))
    return await dispositions.set_disposition(
        conn,
        attempt_id,
        status=status,
        agent=agent,
        callback_at=callback_at,
        note=note,
        now=now,
    )


async def callbacks_due(
    conn: Any, agent: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("desk_callbacks"), agent, start, end)]


async def joinable_campaigns(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("desk_campaigns"))]


async def campaign_queue(conn: Any, campaign_id: int) -> dict[str, Any]:
    """A campaign an agent may join (agent modes, preview); Conflict for the others."""
    campaign = await _campaign(conn, campaign_id)
    if campaign["mode"] not in ("progressive", "power", "predictive", "preview"):
        raise Conflict(
            f"campaign {campaign_id} is {campaign['mode']}: agents join agent and preview "
            "campaigns only",
            code="not_an_agent_campaign",
        )
    return campaign


# --- preview --------------------------------------------------------------------


async def current_preview(conn: Any, agent: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(query("agent_preview"), agent)
    return dict(row) if row is not None else None


async def release_previews(conn: Any, agent: str) -> list[int]:
    """Give the agent's shown contacts back (leaving, logging out, asking for the next)."""
    return [r["id"] for r in await conn.fetch(query("release_agent_previews"), agent)]


async def offer_preview(
    conn: Any, campaign_id: int, agent: str, now: datetime
) -> dict[str, Any] | None:
    """Show the agent the next due contact of a preview campaign; None when none is due."""
    campaign = await _campaign(conn, campaign_id)
    if campaign["mode"] != "preview":
        raise Conflict(f"campaign {campaign_id} is not a preview campaign", code="not_preview")
    if campaign["state"] != "running":
        raise Conflict(f"campaign {campaign_id} is {campaign['state']}", code="not_running")
    await conn.execute(query("release_stale_previews"), PREVIEW_LEASE_S)
    await release_previews(conn, agent)
    timeout = campaign["preview_timeout_s"]
    auto_at = now + timedelta(seconds=timeout) if timeout else None
    row = await conn.fetchrow(query("offer_preview"), campaign_id, agent, auto_at)
    return dict(row) if row is not None else None


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidInput(
            f"reason is required: 1-{MAX_REASON} characters",
            details=[{"field": "reason", "message": "required"}],
        )
    return reason.strip()


async def skip_preview(conn: Any, agent: str, reason: str) -> dict[str, Any]:
    """Skip the agent's shown contact: back at its planned step after the skip delay."""
    current = await current_preview(conn, agent)
    if current is None:
        raise Conflict("no contact is shown to you", code="no_preview")
    if current["next_attempt_at"] is not None and current["next_attempt_at"] <= datetime.now(UTC):
        raise Conflict("the contact is being dialled", code="preview_dialling")
    row = await conn.fetchrow(query("skip_preview"), current["id"], agent)
    assert row is not None  # locked by the update's own row lock, shown to this agent
    return {"contact_id": row["id"], "due_at": row["next_attempt_at"], "reason": reason}


async def call_preview(conn: Any, agent: str) -> dict[str, Any]:
    """Dial the agent's shown contact: due now, to this agent."""
    current = await current_preview(conn, agent)
    if current is None:
        raise Conflict("no contact is shown to you", code="no_preview")
    await conn.execute(query("call_preview"), current["id"], agent)
    return {"contact_id": current["id"]}


# --- supervisor ---------------------------------------------------------------------


async def live_counts(conn: Any) -> list[dict[str, Any]]:
    out = []
    for row in await conn.fetch(query("live_counts")):
        item = dict(row)
        answered = item["answered_today"]
        item["abandon_rate_today"] = item["abandoned_today"] / answered if answered else 0.0
        out.append(item)
    return out


async def agent_users(conn: Any) -> dict[str, dict[str, Any]]:
    """Agent endpoint -> its user's name and display name."""
    return {r["agent"]: dict(r) for r in await conn.fetch(query("agent_users"))}
