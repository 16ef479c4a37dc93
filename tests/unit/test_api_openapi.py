"""/openapi.json matches the routes, and schemathesis finds nothing wrong on a running daemon."""

from __future__ import annotations

import json
from typing import Any

from dialer_server.api.app import OPERATIONS, Services, create_app
from dialer_server.api.openapi import DOCUMENT
from dialer_server.config import ApiConfig, Config
from dialer_server.observability.metrics import Metrics
from dialer_server.telephony.pbx_pool import PbxPool

from ..support.api_client import WRITE_TOKEN

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


def _app_and_document() -> tuple[Any, dict[str, Any]]:
    config = Config(api=ApiConfig(tokens=f"crm:{WRITE_TOKEN}"))
    app = create_app(Services(pool=None, pbxs=PbxPool(config), metrics=Metrics(), config=config))
    return app, app[DOCUMENT]


def test_every_route_is_documented_and_every_documented_operation_is_routed() -> None:
    app, document = _app_and_document()
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        # aiohttp adds HEAD beside each GET of web.py's probes on its own.
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routed == documented
    assert len(routed) > 30


def test_the_document_is_openapi_3_1_with_unique_operation_ids_and_declared_refs() -> None:
    _, document = _app_and_document()
    assert document["openapi"] == "3.1.0"
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    text = json.dumps(document)
    for kind in ("schemas", "responses"):
        prefix = f'"#/components/{kind}/'
        for chunk in text.split(prefix)[1:]:
            assert chunk.split('"')[0] in document["components"][kind]
    # Everything but the probes, the document, the desk's pages and the log-in needs
    # the bearer token, and names the roles that may use it.
    for path, item in document["paths"].items():
        for op in item.values():
            public = op.get("security") == []
            assert public == (not path.startswith("/api/") or op["operationId"] == "login"), path
            if not public:
                assert "401" in op["responses"], (path, op["operationId"])
                assert op["x-roles"], op["operationId"]
                assert "403" in op["responses"] or set(op["x-roles"]) >= {
                    "admin",
                    "read_only",
                }, op["operationId"]
    # Links name operations that exist.
    for item in document["paths"].values():
        for op in item.values():
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in ids


def test_request_bodies_are_checked_with_the_schemas_the_document_publishes() -> None:
    _, document = _app_and_document()
    for op in OPERATIONS:
        if op.body is None:
            continue
        published = document["paths"][op.path][op.method.lower()]["requestBody"]
        assert published == op.body
    assert len([op for op in OPERATIONS if op.body]) >= 10


def test_the_documented_defaults_are_those_a_new_campaign_gets() -> None:
    from decimal import Decimal

    from dialer_server.api.schemas.campaigns import CAMPAIGN_CREATE
    from dialer_server.engine.store import CAMPAIGN_DEFAULTS

    properties = CAMPAIGN_CREATE["properties"]
    settable = [key for key in CAMPAIGN_DEFAULTS if key in properties]
    assert len(settable) == len(CAMPAIGN_DEFAULTS) - 1  # all but ring_timeout_s, not an API setting
    for key in settable:
        value = CAMPAIGN_DEFAULTS[key]
        if value is None:
            assert "default" not in properties[key], key
        else:
            expected = float(value) if isinstance(value, Decimal) else value
            assert properties[key]["default"] == expected, key


def test_every_operation_names_its_roles_and_no_read_only_user_writes() -> None:
    _, document = _app_and_document()
    for path, item in document["paths"].items():
        for method, op in item.items():
            if op.get("security") == []:
                continue
            roles = set(op["x-roles"])
            assert roles <= {"admin", "supervisor", "agent", "integration", "read_only"}
            assert f"Roles: {', '.join(op['x-roles'])}." in op["description"]
            if method != "get" and op["operationId"] != "logout":
                assert "read_only" not in roles, op["operationId"]
            if path.startswith("/api/v1/users") or path.startswith("/api/v1/tokens"):
                assert roles == {"admin"}, op["operationId"]
            if path.startswith("/api/v1/desk"):
                assert roles == {"agent"}, op["operationId"]
            elif op["operationId"] not in ("streamEvents", "getMe", "logout"):
                assert "agent" not in roles, op["operationId"]
