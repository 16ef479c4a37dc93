"""/api/v1/flows (task flows, as their YAML files) and a campaign's flow at work:
its Tasks overview, its task log, manual moves and its export files.

A stored flow version never changes: an update stores a new version, and
campaigns keep the version they were given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date
from typing import Any

from aiohttp import web

from ..campaigns import flows
from ..campaigns import operations as campaigns
from ..engine.strategy import NAME_PATTERN
from ..errors import InvalidInput, NotFound
from ..flows import exports, moves
from ..flows.selection import parse_filter
from .common import (
    PRINCIPAL,
    Operation,
    note,
    nothing_changed,
    page,
    paged,
    path_id,
    path_text,
    query_int,
    query_text,
    read_json,
    respond,
    transaction,
)
from .schemas import common as s
from .schemas import flows as schemas

_FIELDS = ("id", "name", "version", "created_at", "definition")


def flow_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _FIELDS}


def _name(request: web.Request, key: str = "name") -> str:
    name = path_text(request, key)
    if not NAME_PATTERN.fullmatch(name):
        raise web.HTTPNotFound()
    return name


async def create_flow(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.FLOW_DEFINITION)
    async with transaction(request) as conn:
        row = await flows.create_flow(conn, body)
    return respond(flow_json(row), status=201)


async def list_flows(request: web.Request) -> web.Response:
    async with transaction(request) as conn:
        rows = await flows.list_flows(conn)
    return respond({"items": rows})


async def get_flow(request: web.Request) -> web.Response:
    name = _name(request)
    async with transaction(request) as conn:
        row = await flows.get_flow(conn, name)
    return respond(flow_json(row))


async def get_flow_version(request: web.Request) -> web.Response:
    name = _name(request)
    version = int(request.match_info["version"])
    if not 1 <= version <= 2**31 - 1:
        raise web.HTTPNotFound()
    async with transaction(request) as conn:
        row = await flows.get_flow(conn, name, version)
    return respond(flow_json(row))


async def update_flow(request: web.Request) -> web.Response:
    name = _name(request)
    body = await read_json(request, schemas.FLOW_DEFINITION_UPDATE)
    async with transaction(request) as conn:
        row, created = await flows.update_flow(conn, name, body)
    return respond(flow_json(row), status=201 if created else 200)


async def campaign_tasks(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        return respond(await flows.overview(conn, campaign_id))


async def task_runs(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    contact_id: int | None = None
    if query_text(request, "contact_id", max_len=25) is not None:
        contact_id = query_int(request, "contact_id", 1, 1, 2**63 - 1)
    task = query_text(request, "task", pattern=s.STRATEGY_NAME)
    after, limit = page(request)
    async with transaction(request) as conn:
        rows = await flows.task_runs(
            conn, campaign_id, contact_id=contact_id, task=task, after=after, limit=limit
        )
    for row in rows:
        row["idempotency_key"] = str(row["idempotency_key"])
    return respond(paged(rows, limit))


async def move_contacts(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.MOVE)
    selection = parse_filter(body.get("filter"))
    principal = request[PRINCIPAL]
    async with transaction(request) as conn:
        result = await moves.move(
            conn,
            campaign_id,
            selection,
            to_task=body.get("to_task"),
            status=body.get("status"),
            status_detail=body.get("status_detail"),
            delay_s=body.get("delay_s", 0),
            dry_run=bool(body.get("dry_run", False)),
            who=principal.username,
        )
        if result.moved:
            note(
                request,
                "campaign",
                campaign_id,
                before={"filter": selection.to_json()},
                after={
                    **{k: body[k] for k in ("to_task", "status", "status_detail") if k in body},
                    **result.to_json(),
                },
            )
        else:
            nothing_changed(request)  # a dry run, or nothing to move: locks only
    return respond(result.to_json())


def _file_json(campaign_id: int, row: Mapping[str, Any]) -> dict[str, Any]:
    day = row["day"].isoformat()
    return {
        **dict(row),
        "day": day,
        "url": f"/api/v1/campaigns/{campaign_id}/exports/{row['task']}/{day}",
    }


async def list_exports(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        await campaigns.get(conn, campaign_id)
        rows = await exports.list_files(conn, campaign_id)
    return respond({"items": [_file_json(campaign_id, r) for r in rows]})


async def download_export(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    task = _name(request, "task")
    try:
        day = date.fromisoformat(request.match_info["day"])
    except ValueError:
        raise InvalidInput(
            "day must be a date (YYYY-MM-DD)", details=[{"field": "day", "message": "invalid"}]
        ) from None
    async with transaction(request) as conn:
        meta = await exports.get_file(conn, campaign_id, task, day)
        if meta is None:
            raise NotFound(f"campaign {campaign_id} has no export of task {task} on {day}")
        rows = await exports.file_rows(conn, campaign_id, task, day)
    data = await asyncio.to_thread(exports.render, rows, meta["format"])
    filename = f"campaign-{campaign_id}-{task}-{day.isoformat()}.{meta['format']}"
    return web.Response(
        body=data,
        headers={
            "Content-Type": exports.MEDIA_TYPES[meta["format"]],
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


_BASE = "/api/v1/flows"
_NAME = s.path_param("name", {"type": "string", "pattern": s.STRATEGY_NAME})
_CAMPAIGN = r"/api/v1/campaigns/{campaign_id:\d+}"
_ERRORS_WRITE = ("400", "401", "403", "413", "415", "422", "503")

OPERATIONS = [
    Operation(
        "POST",
        _BASE,
        create_flow,
        "createFlow",
        "Store a new task flow (version 1 unless the body says)",
        "flows",
        body=s.json_body(schemas.FLOW_DEFINITION),
        responses={"201": s.ok(s.ref("Flow"), "Created"), **s.errors(*_ERRORS_WRITE, "409")},
        description="422 invalid_flow names the bad place (`rules[2].to: 'x' is not a task "
        "of this flow`), as for a YAML file; 409 flow_exists when the name is taken (PUT "
        "stores a new version).",
    ),
    Operation(
        "GET",
        _BASE,
        list_flows,
        "listFlows",
        "Every flow name with its versions",
        "flows",
        responses={
            "200": s.ok(
                s.obj(
                    {"items": {"type": "array", "items": s.ref("FlowSummary")}},
                    required=["items"],
                )
            ),
            **s.errors("401", "503"),
        },
    ),
    Operation(
        "GET",
        _BASE + "/{name}",
        get_flow,
        "getFlow",
        "The latest version of a flow",
        "flows",
        parameters=(_NAME,),
        responses={"200": s.ok(s.ref("Flow")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "PUT",
        _BASE + "/{name}",
        update_flow,
        "updateFlow",
        "Store a new version of a flow",
        "flows",
        parameters=(_NAME,),
        body=s.json_body(schemas.FLOW_DEFINITION_UPDATE),
        responses={
            "200": s.ok(s.ref("Flow"), "Same as the latest version: nothing stored"),
            "201": s.ok(s.ref("Flow"), "A new version was stored"),
            **s.errors(*_ERRORS_WRITE, "404", "409"),
        },
        description="Without a version, the new version is the latest + 1; a body equal "
        "to the latest version stores nothing (200).",
    ),
    Operation(
        "GET",
        _BASE + r"/{name}/versions/{version:\d+}",
        get_flow_version,
        "getFlowVersion",
        "One version of a flow",
        "flows",
        parameters=(_NAME, s.path_param("version", {"type": "integer", "minimum": 1})),
        responses={"200": s.ok(s.ref("Flow")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "GET",
        _CAMPAIGN + "/tasks",
        campaign_tasks,
        "getCampaignTasks",
        "The campaign's tasks with their contacts by status and status detail",
        "flows",
        parameters=(s.CAMPAIGN_ID,),
        responses={"200": s.ok(s.ref("Tasks")), **s.errors("401", "404", "503")},
        description="The Tasks overview: every task of the campaign's flow (a campaign "
        "without one has its one task, call) with its contacts, those due now, and their "
        "counts by status and status detail.",
    ),
    Operation(
        "GET",
        _CAMPAIGN + "/task-runs",
        task_runs,
        "listTaskRuns",
        "The campaign's task log: every execution of a task, oldest first",
        "flows",
        parameters=(
            s.CAMPAIGN_ID,
            s.query_param("contact_id", {"type": "integer", "minimum": 1}),
            s.query_param("task", {"type": "string", "pattern": s.STRATEGY_NAME}),
            *s.PAGE_PARAMS,
        ),
        responses={"200": s.ok(s.page_of("TaskRun")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "POST",
        _CAMPAIGN + "/moves",
        move_contacts,
        "moveContacts",
        "Move the contacts a filter selects to a task, or set their status",
        "flows",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.MOVE),
        responses={
            "200": s.ok(s.ref("MoveResult")),
            **s.errors(*_ERRORS_WRITE, "404", "409"),
        },
        description="One transaction, audited. Contacts with a call or a task running "
        "are left out (busy). to_task: a new pass of that task (max_passes does not stop "
        "a manual move); status: the task ends with it and the flow's rules apply (open "
        "runs the task again). 409 no_flow for a campaign without a flow.",
    ),
    Operation(
        "GET",
        _CAMPAIGN + "/exports",
        list_exports,
        "listExports",
        "The files of the campaign's export tasks, one per task and day",
        "flows",
        parameters=(s.CAMPAIGN_ID,),
        responses={
            "200": s.ok(
                s.obj(
                    {"items": {"type": "array", "items": s.ref("ExportFile")}},
                    required=["items"],
                )
            ),
            **s.errors("401", "404", "503"),
        },
    ),
    Operation(
        "GET",
        _CAMPAIGN + r"/exports/{task}/{day:\d\d\d\d-\d\d-\d\d}",
        download_export,
        "downloadExport",
        "One export file (CSV or XLSX, as its task says)",
        "flows",
        parameters=(
            s.CAMPAIGN_ID,
            s.path_param("task", {"type": "string", "pattern": s.STRATEGY_NAME}),
            s.path_param("day", {"type": "string", "format": "date"}),
        ),
        responses={
            "200": {
                "description": "The file: the columns of the results export",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    exports.MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **s.errors("401", "404", "422", "503"),
        },
    ),
]
