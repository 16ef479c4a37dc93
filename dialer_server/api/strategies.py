"""/api/v1/strategies: call strategies, in the same schema as the YAML files.

A stored version never changes: an update stores a new version, and campaigns
keep the version they were created with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..campaigns import operations as campaigns
from ..engine.strategy import NAME_PATTERN
from .common import Operation, note, nothing_changed, path_text, read_json, respond, transaction
from .schemas import common as s
from .schemas import strategies as schemas

_FIELDS = ("id", "name", "version", "created_at", "definition")


def strategy_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _FIELDS}


def _name(request: web.Request) -> str:
    name = path_text(request, "name")
    if not NAME_PATTERN.fullmatch(name):
        raise web.HTTPNotFound()
    return name


def _version(request: web.Request) -> int:
    version = int(request.match_info["version"])
    if not 1 <= version <= 2**31 - 1:
        raise web.HTTPNotFound()
    return version


async def create_strategy(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.STRATEGY_DEFINITION)
    async with transaction(request) as conn:
        stored = await campaigns.create_strategy(conn, body)
        note(request, "strategy", f"{stored['name']}/{stored['version']}", after=body)
    return respond(strategy_json(stored), status=201)


async def list_strategies(request: web.Request) -> web.Response:
    async with transaction(request) as conn:
        rows = await campaigns.list_strategies(conn)
    return respond({"items": rows})


async def get_strategy(request: web.Request) -> web.Response:
    name = _name(request)
    async with transaction(request) as conn:
        row = await campaigns.get_strategy(conn, name)
    return respond(strategy_json(row))


async def get_strategy_version(request: web.Request) -> web.Response:
    name, version = _name(request), _version(request)
    async with transaction(request) as conn:
        row = await campaigns.get_strategy(conn, name, version)
    return respond(strategy_json(row))


async def update_strategy(request: web.Request) -> web.Response:
    name = _name(request)
    body = await read_json(request, schemas.STRATEGY_DEFINITION_UPDATE)
    async with transaction(request) as conn:
        row, created = await campaigns.update_strategy(conn, name, body)
        if created:
            note(request, "strategy", f"{row['name']}/{row['version']}", after=body)
        else:
            nothing_changed(request)
    return respond(strategy_json(row), status=201 if created else 200)


_BASE = "/api/v1/strategies"
_NAME = s.path_param("name", {"type": "string", "pattern": s.STRATEGY_NAME})
_ERRORS_WRITE = ("400", "401", "403", "413", "415", "422", "503")

_LINKS = {
    "getStrategy": {"name": "$response.body#/name"},
    "updateStrategy": {"name": "$response.body#/name"},
    "getStrategyVersion": {
        "name": "$response.body#/name",
        "version": "$response.body#/version",
    },
}

OPERATIONS = [
    Operation(
        "POST",
        _BASE,
        create_strategy,
        "createStrategy",
        "Store a new strategy (version 1 unless the body says)",
        "strategies",
        body=s.json_body(schemas.STRATEGY_DEFINITION),
        responses={
            "201": s.linked(s.ok(s.ref("Strategy"), "Created"), _LINKS),
            **s.errors(*_ERRORS_WRITE, "409"),
        },
        description="422 invalid_strategy names the bad field by its path, as for a YAML "
        "file; 409 strategy_exists when the name is taken (PUT stores a new version).",
    ),
    Operation(
        "GET",
        _BASE,
        list_strategies,
        "listStrategies",
        "Every strategy name with its versions",
        "strategies",
        responses={
            "200": s.ok(
                s.obj(
                    {"items": {"type": "array", "items": s.ref("StrategySummary")}},
                    required=["items"],
                )
            ),
            **s.errors("401", "503"),
        },
    ),
    Operation(
        "GET",
        _BASE + "/{name}",
        get_strategy,
        "getStrategy",
        "The latest version of a strategy",
        "strategies",
        parameters=(_NAME,),
        responses={"200": s.ok(s.ref("Strategy")), **s.errors("401", "404", "422", "503")},
    ),
    Operation(
        "PUT",
        _BASE + "/{name}",
        update_strategy,
        "updateStrategy",
        "Store a new version of a strategy",
        "strategies",
        parameters=(_NAME,),
        body=s.json_body(schemas.STRATEGY_DEFINITION_UPDATE),
        responses={
            "200": s.ok(s.ref("Strategy"), "Same as the latest version: nothing stored"),
            "201": s.ok(s.ref("Strategy"), "A new version was stored"),
            **s.errors(*_ERRORS_WRITE, "404", "409"),
        },
        description="Without a version, the new version is the latest + 1; a body equal "
        "to the latest version stores nothing (200). 409 version_exists for a version "
        "not above the latest.",
    ),
    Operation(
        "GET",
        _BASE + r"/{name}/versions/{version:\d+}",
        get_strategy_version,
        "getStrategyVersion",
        "One version of a strategy",
        "strategies",
        parameters=(_NAME, s.path_param("version", {"type": "integer", "minimum": 1})),
        responses={"200": s.ok(s.ref("Strategy")), **s.errors("401", "404", "422", "503")},
    ),
]
