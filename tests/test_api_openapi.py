"""/openapi.json matches the routes, and schemathesis finds nothing wrong on a running daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialer_server.ami import AmiClient
from dialer_server.api import OPERATIONS
from dialer_server.api.openapi import DOCUMENT
from dialer_server.config import AmiConfig, ApiConfig, Config
from dialer_server.metrics import Metrics
from dialer_server.web import Services, create_app

from .api import WRITE_TOKEN
from .daemons import DaemonProcess, daemon_env, http_get, wait_for

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


def _app_and_document() -> tuple[Any, dict[str, Any]]:
    config = Config(api=ApiConfig(tokens=f"crm:{WRITE_TOKEN}"))
    app = create_app(
        Services(pool=None, ami=AmiClient(AmiConfig()), metrics=Metrics(), config=config)
    )
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
    # Everything but the probes and the document needs the bearer token.
    for path, item in document["paths"].items():
        for op in item.values():
            public = op.get("security") == []
            assert public == (not path.startswith("/api/")), path
            if not public:
                assert "401" in op["responses"], (path, op["operationId"])
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


@pytest.fixture
def daemon(stack: Any, database_url: str, tmp_path: Path) -> Iterator[DaemonProcess]:
    env = daemon_env(stack, database_url, DIALER_API_TOKENS=f"crm:{WRITE_TOKEN}")
    process = DaemonProcess(env, tmp_path / "daemon.log")
    try:
        wait_for(lambda: process.ready()[0] == 200, 30, "/readyz 200")
        yield process
    finally:
        process.close()


@pytest.mark.stack
@pytest.mark.timeout(180)
def test_schemathesis_finds_no_server_error_and_no_response_breaking_the_schema(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    status, _ = http_get(daemon.url("/openapi.json"))
    assert status == 200
    seed = os.environ.get("SCHEMATHESIS_SEED", "20260101")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            daemon.url("/openapi.json"),
            "--header",
            f"Authorization: Bearer {WRITE_TOKEN}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--phases",
            "coverage,fuzzing,stateful",
            "--max-examples",
            "10",
            "--seed",
            seed,
            "--request-timeout",
            "10",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "generated" in output
    errors = [
        entry
        for entry in daemon.logs()
        if entry.get("level") == "error" and entry.get("logger", "").startswith("dialer_server")
    ]
    assert errors == [], errors[:3]
