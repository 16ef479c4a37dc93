"""The supervisor view's API (/api/v1/supervisor): agents and their states live,
each campaign's live counts, and pausing or resuming an agent (audited).

Campaigns are paused and resumed with the campaign routes
(/api/v1/campaigns/{id}/pause, /resume), which the audit log records like
every write.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..accounts.roles import SUPERVISOR_READERS, SUPERVISORS
from ..campaigns import desk
from . import desk as desk_api
from .common import CONTEXT, Operation, read_json, respond, transaction
from .schemas import common as s
from .schemas import users as schemas


async def overview(request: web.Request) -> web.Response:
    roster = desk_api._roster(request)
    async with transaction(request) as conn:
        campaigns = await desk.live_counts(conn)
        users = await desk.agent_users(conn)
    agents: dict[str, dict[str, Any]] = {}
    if roster is not None and roster.ready:
        for queue in roster.queues():
            for member in roster.members(queue):
                agent = agents.setdefault(
                    member.name,
                    {
                        "agent": member.name,
                        "user": users.get(member.name, {}).get("username"),
                        "display_name": users.get(member.name, {}).get("display_name"),
                        "queues": [],
                    },
                )
                agent["queues"].append(queue)
        for name, agent in agents.items():
            state, reason = desk_api.desk_state(roster.agent(name))
            agent["state"], agent["pause_reason"] = state, reason
    return respond(
        {
            "roster_ready": roster is not None and roster.ready,
            "pause_reasons": list(request.app[CONTEXT].config.desk.reasons),
            "agents": sorted(agents.values(), key=lambda a: a["agent"]),
            "campaigns": campaigns,
        }
    )


async def pause_agent(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.PAUSE)
    agent = request.match_info["agent"]
    return respond(await desk_api.set_pause(request, agent, True, body["reason"]))


async def resume_agent(request: web.Request) -> web.Response:
    agent = request.match_info["agent"]
    return respond(await desk_api.set_pause(request, agent, False, ""))


_AGENT = r"/api/v1/supervisor/agents/{agent:[A-Za-z0-9_.-]+}"
_AGENT_PARAM = s.path_param("agent", schemas.AGENT, "The agent's endpoint (queue member name)")

OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/supervisor",
        overview,
        "getSupervisor",
        "Agents and their states; each campaign's dialling, ringing, connected and "
        "abandoned-today counts",
        "supervisor",
        responses={"200": s.ok(s.ref("View")), **s.errors("401", "403", "503")},
        roles=SUPERVISOR_READERS,
    ),
    Operation(
        "POST",
        _AGENT + "/pause",
        pause_agent,
        "pauseAgent",
        "Pause an agent with a reason code (AMI QueuePause), audited",
        "supervisor",
        parameters=(_AGENT_PARAM,),
        body=s.json_body(schemas.PAUSE),
        responses={
            "200": s.ok(s.ref("View")),
            **s.errors("400", "401", "403", "404", "409", "413", "415", "422", "503"),
        },
        roles=SUPERVISORS,
    ),
    Operation(
        "POST",
        _AGENT + "/resume",
        resume_agent,
        "resumeAgent",
        "Resume a paused agent, audited",
        "supervisor",
        parameters=(_AGENT_PARAM,),
        responses={"200": s.ok(s.ref("View")), **s.errors("401", "403", "404", "409", "503")},
        roles=SUPERVISORS,
    ),
]
