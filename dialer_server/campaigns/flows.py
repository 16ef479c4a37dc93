"""Task flows as data: stored versions, the flow files, and what a campaign's flow
shows (its tasks' counts, its task log). Shared by the API, the CLI and the daemon.

A stored flow version never changes (like a strategy): an update stores a new
version, and a campaign keeps the version it was given. The flow of a campaign can
change only before the engine acted on any of its contacts, as its strategy. Every
function works in the caller's transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg

from ..db.queries import queries_of
from ..engine.flow import Flow, FlowError, flow_to_dict, load_flows_dir, parse_flow
from ..engine.strategy import NAME_PATTERN
from ..errors import Conflict, DialerError, InvalidInput, NotFound

query = queries_of(__name__)

logger = logging.getLogger(__name__)


def _row(row: Any) -> dict[str, Any]:
    return {**dict(row), "definition": json.loads(row["definition"])}


def _parse(data: Mapping[str, Any]) -> Flow:
    try:
        return parse_flow(data)
    except FlowError as exc:
        raise InvalidInput(str(exc), code="invalid_flow") from None


async def load_flow_files(pool: Any, directory: Path) -> None:
    """Store the flow files' versions; a changed file must bump its version."""
    if not await asyncio.to_thread(directory.is_dir):
        logger.info(
            "no flow directory %s: only flows in the database are available",
            directory,
            extra={"action": "flows"},
        )
        return
    try:
        flows = await asyncio.to_thread(load_flows_dir, directory)
    except FlowError as exc:
        raise DialerError(str(exc)) from None
    async with pool.acquire() as conn:
        for flow in flows:
            definition = flow_to_dict(flow)
            row = await conn.fetchrow(
                query("insert_flow_version"), flow.name, flow.version, json.dumps(definition)
            )
            if json.loads(row["definition"]) != definition:
                raise DialerError(
                    f"flow {flow.name} version {flow.version} in {directory} differs from the "
                    "stored one: give the changed flow a new version"
                )


async def list_flows(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("list_flows"))]


async def get_flow(conn: Any, name: str, version: int | None = None) -> dict[str, Any]:
    """A stored flow version (the latest when ``version`` is None); NotFound if none."""
    if version is None:
        row = await conn.fetchrow(query("flow_latest_version"), name)
    else:
        row = await conn.fetchrow(query("flow_version"), name, version)
    if row is None:
        which = f"flow {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFound(f"{which} not found")
    return _row(row)


async def resolve(conn: Any, name: Any, version: Any) -> dict[str, Any]:
    """The flow a campaign names (InvalidInput naming the field when there is none)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"flow must be a flow name ({NAME_PATTERN.pattern})",
            details=[{"field": "flow", "message": "invalid"}],
        )
    if version is not None and not (
        isinstance(version, int) and not isinstance(version, bool) and 1 <= version < 2**31
    ):
        raise InvalidInput(
            "flow_version must be a positive integer",
            details=[{"field": "flow_version", "message": "invalid"}],
        )
    try:
        return await get_flow(conn, name, version)
    except NotFound as exc:
        raise InvalidInput(str(exc), details=[{"field": "flow", "message": "not found"}]) from None


async def create_flow(conn: Any, definition: Mapping[str, Any]) -> dict[str, Any]:
    """Store a flow under a new name (version 1 unless the definition says)."""
    flow = _parse({"version": 1, **definition})
    if await conn.fetchrow(query("flow_latest_version"), flow.name) is not None:
        raise Conflict(
            f"flow {flow.name!r} exists: PUT /api/v1/flows/{flow.name} stores a new version",
            code="flow_exists",
        )
    return await _insert(conn, flow_to_dict(flow))


async def update_flow(
    conn: Any, name: str, definition: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Store a new version of flow ``name``; (the stored version, whether it is new).

    Without a version it gets the latest + 1; a definition equal to the latest
    version's stores nothing (idempotent).
    """
    if "name" in definition and definition["name"] != name:
        raise InvalidInput(
            f"name {definition['name']!r} differs from the flow in the path ({name!r})",
            details=[{"field": "name", "message": "invalid"}],
        )
    latest = await conn.fetchrow(query("flow_latest_version"), name)
    if latest is None:
        raise NotFound(f"flow {name!r} not found: POST /api/v1/flows creates it")
    latest_row = _row(latest)
    version = definition.get("version", latest_row["version"] + 1)
    stored = flow_to_dict(_parse({**definition, "name": name, "version": version}))
    same = {**stored, "version": latest_row["version"]} == latest_row["definition"]
    if same and ("version" not in definition or version == latest_row["version"]):
        return latest_row, False
    if stored["version"] <= latest_row["version"]:
        raise Conflict(
            f"flow {name!r} is at version {latest_row['version']}: a new version must be "
            "higher (stored versions never change)",
            code="version_exists",
        )
    return await _insert(conn, stored), True


async def _insert(conn: Any, definition: dict[str, Any]) -> dict[str, Any]:
    try:
        async with conn.transaction():  # a savepoint: a racing insert is a 409, not a 500
            row = await conn.fetchrow(
                query("insert_flow"),
                definition["name"],
                definition["version"],
                json.dumps(definition),
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            f"flow {definition['name']!r} version {definition['version']} was just stored "
            "by another request",
            code="version_exists",
        ) from None
    logger.info(
        "flow stored",
        extra={"action": "flow", "flow": definition["name"], "version": definition["version"]},
    )
    return _row(row)


async def overview(conn: Any, campaign_id: int) -> dict[str, Any]:
    """The Tasks overview (seed 000): every task of the campaign's flow with its
    contacts by status and status detail. A campaign without a flow shows its one
    call task, ``call``."""
    row = await conn.fetchrow(query("campaign_flow"), campaign_id)
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    if row["definition"] is None:
        tasks: list[dict[str, Any]] = [{"name": "call", "type": "call", "max_passes": None}]
        start = "call"
        flow_info = None
    else:
        flow = parse_flow(json.loads(row["definition"]))
        start = flow.start.name
        tasks = [{"name": t.name, "type": t.type, "max_passes": t.max_passes} for t in flow.tasks]
        flow_info = {"id": row["flow_id"], "name": flow.name, "version": flow.version}
    by_task: dict[str, dict[str, Any]] = {
        t["name"]: {**t, "contacts": 0, "due": 0, "by_status": {}} for t in tasks
    }
    for r in await conn.fetch(query("contacts_by_task"), campaign_id):
        name = r["task"] or start
        entry = by_task.setdefault(
            name,
            {
                "name": name,
                "type": None,
                "max_passes": None,
                "contacts": 0,
                "due": 0,
                "by_status": {},
            },
        )
        entry["contacts"] += r["n"]
        entry["due"] += r["due"]
        entry["by_status"].setdefault(r["status"], {})[r["status_detail"]] = r["n"]
    return {"campaign_id": campaign_id, "flow": flow_info, "tasks": list(by_task.values())}


async def task_runs(
    conn: Any,
    campaign_id: int,
    *,
    contact_id: int | None = None,
    task: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The task log of a campaign (or one of its contacts), oldest first, keyset paged."""
    if await conn.fetchval(query("campaign_exists"), campaign_id) is None:
        raise NotFound(f"campaign {campaign_id} not found")
    rows = await conn.fetch(query("task_runs"), campaign_id, contact_id, task, after, limit)
    return [dict(r) for r in rows]
