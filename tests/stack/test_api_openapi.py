"""/openapi.json matches the routes, and schemathesis finds nothing wrong on a running daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support.api_client import WRITE_TOKEN
from ..support.daemon_process import DaemonProcess, daemon_env, http_get, wait_for


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
def test_schemathesis_finds_no_server_error_no_bad_response_and_no_bad_request_accepted(
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
            "response_schema_conformance,negative_data_rejection",
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
