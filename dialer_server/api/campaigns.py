"""/api/v1/campaigns: create, list, read, change, delete, and start/pause/resume/stop."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..campaigns import operations as campaigns
from ..campaigns.agent_stats import agent_stats
from ..errors import InvalidInput
from ..states import CAMPAIGN_STATES
from .auth import TOKEN_NAME
from .common import (
    CONTEXT,
    Operation,
    check_text,
    note,
    nothing_changed,
    page,
    paged,
    path_id,
    query_int,
    query_text,
    read_json,
    respond,
    transaction,
)
from .schemas import campaigns as schemas
from .schemas import common as s

logger = logging.getLogger(__name__)


def campaign_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in schemas.CAMPAIGN_FIELDS:
        if key == "strategy":
            out[key] = (
                {
                    "id": row["strategy_id"],
                    "name": row["strategy_name"],
                    "version": row["strategy_version"],
                }
                if row["strategy_id"] is not None
                else None
            )
        elif key == "flow":
            out[key] = (
                {"id": row["flow_id"], "name": row["flow_name"], "version": row["flow_version"]}
                if row["flow_id"] is not None
                else None
            )
        elif key in ("calling_window", "param_names"):
            window = row[key]  # jsonb comes back as its text
            out[key] = json.loads(window) if isinstance(window, str) else window
        else:
            out[key] = row[key]
    return out


async def create_campaign(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.CAMPAIGN_CREATE)
    async with transaction(request) as conn:
        campaign = await campaigns.create(conn, body, known_pbxs=_pool(request))
        note(request, "campaign", campaign["id"], after=campaign_json(campaign))
    return respond(campaign_json(campaign), status=201)


async def list_campaigns(request: web.Request) -> web.Response:
    state = query_text(request, "state", choices=CAMPAIGN_STATES)
    after, limit = page(request)
    async with transaction(request) as conn:
        rows = await campaigns.list_campaigns(conn, state=state, after=after, limit=limit)
    return respond(paged([campaign_json(r) for r in rows], limit))


async def get_campaign(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        campaign = campaign_json(await campaigns.get(conn, campaign_id))
        campaign["contacts"] = await campaigns.counts(conn, campaign_id)
    return respond(campaign)


async def update_campaign(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.CAMPAIGN_UPDATE)
    async with transaction(request) as conn:
        before = campaign_json(await campaigns.get(conn, campaign_id))
        campaign = await campaigns.update(conn, campaign_id, body, known_pbxs=_pool(request))
        note(request, "campaign", campaign_id, before=before, after=campaign_json(campaign))
    return respond(campaign_json(campaign))


async def delete_campaign(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        before = campaign_json(await campaigns.get(conn, campaign_id))
        await campaigns.delete(conn, campaign_id)
        note(request, "campaign", campaign_id, before=before)
    return web.Response(status=204)


async def get_agent_stats(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    start = query_time(request, "from")
    end = query_time(request, "to")
    if start is not None and end is not None and end < start:
        raise InvalidInput(
            "query parameter to must not be before from", details=[_field("to", "before from")]
        )
    agents = query_int(request, "agents", 0, 1, 100_000) or None
    async with transaction(request) as conn:
        await campaigns.get(conn, campaign_id)  # 404 for an unknown campaign
        stats = await agent_stats(conn, campaign_id, start=start, end=end, agents=agents)
    return respond(stats.to_json())


def query_time(request: web.Request, name: str) -> datetime | None:
    """A date-time query parameter (with a time zone), in UTC; None when absent."""
    text = query_text(request, name, max_len=40)
    if text is None:
        return None
    check_text(text, name)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidInput(
            f"query parameter {name} must be an ISO 8601 date and time with a time zone",
            details=[_field(name, "invalid date-time")],
        )
    return value.astimezone(UTC)


def _pool(request: web.Request) -> list[str]:
    """The names of the serving daemon's PBXs: what a campaign's pbxs may name."""
    return [pbx.name for pbx in request.app[CONTEXT].config.pool]


def _field(name: str, message: str) -> dict[str, str]:
    return {"field": name, "message": message}


def _transition(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        campaign_id = path_id(request, "campaign_id")
        async with transaction(request) as conn:
            campaign, previous = await campaigns.transition(conn, campaign_id, action)
            if campaign["state"] != previous:
                note(
                    request,
                    "campaign",
                    campaign_id,
                    before={"state": previous},
                    after={"state": campaign["state"]},
                )
            else:
                nothing_changed(request)
        changed = campaign["state"] != previous
        if changed:
            logger.info(
                "campaign %s by token %s",
                action,
                request.get(TOKEN_NAME),
                extra={"action": "api", "campaign_id": campaign_id, "state": campaign["state"]},
            )
        return respond(
            {
                "campaign": campaign_json(campaign),
                "changed": changed,
                "previous_state": previous,
                "action": action,
            }
        )

    handler.__name__ = f"{action}_campaign"
    return handler


_BASE = "/api/v1/campaigns"
_ONE = _BASE + r"/{campaign_id:\d+}"
_TRANSITION_DOC = {
    "start": "Start dialling (stopped, or completed with open contacts → running).",
    "pause": "Pause: no new call starts from now on; calls in progress end normally.",
    "resume": "Resume a paused campaign.",
    "stop": "Stop: like pause, and the campaign may then be deleted or started again.",
}


def _campaign_links(expression: str) -> dict[str, dict[str, str]]:
    ops = (
        "getCampaign",
        "updateCampaign",
        "deleteCampaign",
        *(f"{action}Campaign" for action in campaigns.ACTIONS),
        "getAgentStats",
        "uploadContacts",
        "listContacts",
        "exportResults",
        "addCampaignDnc",
        "listCampaignDnc",
    )
    return {op: {"campaign_id": expression} for op in ops}


OPERATIONS = [
    Operation(
        "POST",
        _BASE,
        create_campaign,
        "createCampaign",
        "Create a campaign (stopped)",
        "campaigns",
        body=s.json_body(schemas.CAMPAIGN_CREATE),
        responses={
            "201": s.linked(
                s.ok(s.ref("Campaign"), "Created"), _campaign_links("$response.body#/id")
            ),
            **s.errors("400", "401", "403", "409", "413", "415", "422", "503"),
        },
        description="The strategy is named (default: `default`) at its latest version "
        "unless strategy_version says otherwise. A name already used is 409 name_taken.",
    ),
    Operation(
        "GET",
        _BASE,
        list_campaigns,
        "listCampaigns",
        "List campaigns",
        "campaigns",
        parameters=(
            s.query_param("state", {"type": "string", "enum": list(CAMPAIGN_STATES)}),
            *s.PAGE_PARAMS,
        ),
        responses={"200": s.ok(s.ref("CampaignPage")), **s.errors("401", "422", "503")},
    ),
    Operation(
        "GET",
        _ONE,
        get_campaign,
        "getCampaign",
        "A campaign, with its contacts counted by state and by status/status_detail",
        "campaigns",
        parameters=(s.CAMPAIGN_ID,),
        responses={"200": s.ok(s.ref("Campaign")), **s.errors("401", "404", "503")},
    ),
    Operation(
        "PATCH",
        _ONE,
        update_campaign,
        "updateCampaign",
        "Change a campaign's settings",
        "campaigns",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.CAMPAIGN_UPDATE),
        responses={
            "200": s.ok(s.ref("Campaign")),
            **s.errors("400", "401", "403", "404", "409", "413", "415", "422", "503"),
        },
        description="Line and rate limits apply from the engine's next tick. The strategy "
        "can change only while the campaign is stopped and before any contact was dialled "
        "(409 strategy_locked).",
    ),
    Operation(
        "DELETE",
        _ONE,
        delete_campaign,
        "deleteCampaign",
        "Delete a stopped or completed campaign with its contacts and attempts",
        "campaigns",
        parameters=(s.CAMPAIGN_ID,),
        responses={
            "204": s.no_content("Deleted"),
            **s.errors("401", "403", "404", "409", "503"),
        },
        description="409 campaign_active while it is running or paused, 409 "
        "calls_in_progress while attempts are still open.",
    ),
    Operation(
        "GET",
        f"{_ONE}/agent-stats",
        get_agent_stats,
        "getAgentStats",
        "Agent modes: talk minutes per agent-hour, abandon rate and calls per agent-hour",
        "campaigns",
        parameters=(
            s.CAMPAIGN_ID,
            s.query_param(
                "from",
                s.DATETIME,
                "Calls created from this time on (default: the first call's start)",
            ),
            s.query_param(
                "to", s.DATETIME, "Calls created before this time (default: the last call's end)"
            ),
            s.query_param(
                "agents",
                {"type": "integer", "minimum": 1, "maximum": 100000},
                "Agents logged in over the range (default: the distinct agents who took a call)",
            ),
        ),
        responses={"200": s.ok(s.ref("AgentStats")), **s.errors("401", "404", "422", "503")},
        description="Over the calls created in [from, to): talk time is from an agent taking "
        "a call to its hangup; abandon_rate is abandoned / answered by a person; agent-hours "
        "are agents x (to - from).",
    ),
    *(
        Operation(
            "POST",
            f"{_ONE}/{action}",
            _transition(action),
            f"{action}Campaign",
            _TRANSITION_DOC[action],
            "campaigns",
            parameters=(s.CAMPAIGN_ID,),
            responses={
                "200": s.linked(
                    s.ok(s.ref("Transition"), "Done, or nothing to do (changed: false)"),
                    _campaign_links("$response.body#/campaign/id"),
                ),
                **s.errors("401", "403", "404", "409", "503"),
            },
            description="Idempotent: repeating it changes nothing. 409 invalid_transition "
            "when the campaign's state does not allow it.",
        )
        for action in campaigns.ACTIONS
    ),
]
