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


def schemathesis(
    daemon: DaemonProcess, tmp_path: Path, token: str, *selection: str
) -> subprocess.CompletedProcess[str]:
    seed = os.environ.get("SCHEMATHESIS_SEED", "20260101")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            daemon.url("/openapi.json"),
            # The event stream never ends by itself: test_events.py covers its
            # errors. Logging out and revoking tokens would end the run's own token.
            "--exclude-operation-id",
            "streamEvents",
            "--exclude-operation-id",
            "logout",
            "--exclude-operation-id",
            "deleteToken",
            *selection,
            "--header",
            f"Authorization: Bearer {token}",
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


def _check(proc: subprocess.CompletedProcess[str], daemon: DaemonProcess) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "generated" in output
    errors = [
        entry
        for entry in daemon.logs()
        if entry.get("level") == "error" and entry.get("logger", "").startswith("dialer_server")
    ]
    assert errors == [], errors[:3]


@pytest.mark.stack
@pytest.mark.timeout(180)
def test_schemathesis_finds_no_server_error_no_bad_response_and_no_bad_request_accepted(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    status, _ = http_get(daemon.url("/openapi.json"))
    assert status == 200
    _check(schemathesis(daemon, tmp_path, WRITE_TOKEN), daemon)


def _user_token(database_url: str, username: str, role: str, *extra: str) -> str:
    """A user made with the CLI, logged in: their session token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["DIALER_DATABASE_URL"] = database_url
    password = f"{username}-password-0001"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "dialer_server",
            "user",
            "add",
            username,
            "--role",
            role,
            "--password-stdin",
            *extra,
        ],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return password


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_schemathesis_covers_users_audit_supervisor_and_desk_as_their_roles(
    daemon: DaemonProcess, database_url: str, tmp_path: Path
) -> None:
    import json
    import urllib.request

    tokens = {}
    for username, role, extra in (
        ("root", "admin", ()),
        ("alice", "agent", ("--agent", "agent24")),
    ):
        password = _user_token(database_url, username, role, *extra)
        request = urllib.request.Request(
            daemon.url("/api/v1/session"),
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            login = json.loads(reply.read())
        tokens[username] = login["token"]
        if role == "admin":
            # An API token: a session would end when the fuzzer changes the password.
            request = urllib.request.Request(
                daemon.url(f"/api/v1/users/{login['user']['id']}/tokens"),
                data=json.dumps({"name": "schemathesis"}).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {login['token']}",
                },
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                tokens[username] = json.loads(reply.read())["token"]
    admin = schemathesis(
        daemon, tmp_path, tokens["root"], "--include-tag", "users", "--include-tag", "supervisor"
    )
    _check(admin, daemon)
    _check(schemathesis(daemon, tmp_path, tokens["alice"], "--include-tag", "desk"), daemon)
