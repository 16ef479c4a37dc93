"""/openapi.json: the OpenAPI 3.1 document, built from the same operation table
the routes are registered from, and the same schemas requests are checked with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .. import __version__
from .common import Operation
from .schemas import COMPONENTS
from .schemas import common as s

# The probes are served by web.py; they are documented here with the rest.
_PROBES: dict[str, Any] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "The process is up",
            "tags": ["probes"],
            "security": [],
            "responses": {"200": s.ok(s.obj({"status": {"type": "string"}}, required=["status"]))},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Ready to dial: PostgreSQL answers and AMI is logged in",
            "tags": ["probes"],
            "security": [],
            "responses": {
                "200": s.ok(s.ref("Readiness"), "Ready"),
                "503": s.ok(s.ref("Readiness"), "Not ready: each check says why"),
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "tags": ["probes"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}
_READINESS = s.obj(
    {
        "status": {"type": "string", "enum": ["ready", "not_ready"]},
        "checks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
            },
        },
    },
    required=["status", "checks"],
)


def build_document(operations: Sequence[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {path: dict(item) for path, item in _PROBES.items()}
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["probes"],
            "security": [],
            "responses": {"200": s.ok({"type": "object"})},
        }
    }
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": dict(op.responses),
        }
        description = op.description
        if not op.public:
            roles = ", ".join(op.allowed_roles)
            item["x-roles"] = list(op.allowed_roles)
            description = f"{description}\n\nRoles: {roles}.".strip()
        if description:
            item["description"] = description
        if op.parameters:
            item["parameters"] = [dict(p) for p in op.parameters]
        if op.body is not None:
            item["requestBody"] = dict(op.body)
        if op.public:
            item["security"] = []
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialer-server API",
            "version": __version__,
            "description": "Control an outbound campaign dialer for Asterisk: campaigns, "
            "call strategies, contacts, do-not-call lists, status dictionaries, agents' "
            "dispositions and results, users and roles, the audit log, live events, the "
            "agent desk and the supervisor view. Every error is "
            '`{"error": {"code", "message", "details"}}`. Every operation lists the roles '
            "that may use it (x-roles; 403 for the others): config tokens of scope `write` "
            "act as role integration, `read` as read_only.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": name}
            for name in (
                "campaigns",
                "strategies",
                "contacts",
                "dnc",
                "dispositions",
                "users",
                "events",
                "desk",
                "supervisor",
                "pages",
                "probes",
            )
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**COMPONENTS, "Readiness": _READINESS},
            "responses": s.error_components(),
        },
    }


DOCUMENT = web.AppKey("openapi_document", dict)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])
