"""The daemon as operators run it: a subprocess, its HTTP probes, its exit codes."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support.daemon_process import DaemonProcess, daemon_env, free_port, http_get, wait_for


@pytest.fixture
def daemon(stack: Any, database_url: str, tmp_path: Path) -> Iterator[DaemonProcess]:
    env = daemon_env(stack, database_url, DIALER_HTTP_PORT=str(free_port()))
    d = DaemonProcess(env, tmp_path / "daemon.log")
    yield d
    d.close()


def test_ready_when_database_and_ami_are_up(daemon: DaemonProcess) -> None:
    wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
    status, body = http_get(daemon.url("/healthz"))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert daemon.ready()[1]["checks"]["ami"]["state"] == "connected"
    assert daemon.metric("dialer_ami_up") == 1


def test_asterisk_killed_reports_ami_down_and_restart_reconnects_without_daemon_restart(
    daemon: DaemonProcess, stack: Any
) -> None:
    wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
    try:
        stack.run("asterisk-kill")
        wait_for(lambda: daemon.ready()[0] == 503, 10, "/readyz 503 after Asterisk died")
        body = daemon.ready()[1]
        assert body["checks"]["ami"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        assert daemon.metric("dialer_ami_up") == 0
        # /healthz is about the process, which is fine.
        assert http_get(daemon.url("/healthz"))[0] == 200
    finally:
        stack.run("asterisk-start")
    wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200 after Asterisk restarted")
    assert daemon.proc.poll() is None
    assert daemon.metric("dialer_ami_reconnects_total") >= 1
    logs = [json.loads(line) for line in daemon.log.read_text().splitlines()]
    messages = [entry["msg"] for entry in logs]
    assert "AMI connection lost" in messages
    assert any(m.startswith("AMI reconnected") for m in messages)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_cleanly_within_seconds(daemon: DaemonProcess, signum: int) -> None:
    wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
    started = time.monotonic()
    daemon.proc.send_signal(signum)
    assert daemon.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert json.loads(daemon.log.read_text().splitlines()[-1])["msg"] == "dialer stopped"


def _run_to_exit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialer_server", *args, "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _single_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout
    plain = [line for line in proc.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1, proc.stderr
    assert plain[0].startswith("dialer-server: error: ")
    return plain[0]


def test_wrong_ami_secret_is_one_clear_error_and_an_exit_systemd_does_not_restart(
    stack: Any, database_url: str
) -> None:
    proc = _run_to_exit(
        daemon_env(
            stack, database_url, DIALER_AMI_SECRET="wrong", DIALER_HTTP_PORT=str(free_port())
        )
    )
    # 2: packaging/dialer-server.service's RestartPreventExitStatus (status 1 was
    # restarted every few seconds, forever).
    assert proc.returncode == 2
    line = _single_error_line(proc)
    assert "AMI login refused for user 'dialer'" in line
    assert "exit status 2: not restarted" in line


def test_unreachable_database_is_one_clear_error(stack: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/dialer"
    proc = _run_to_exit(daemon_env(stack, url, DIALER_HTTP_PORT=str(free_port())))
    assert proc.returncode == 1
    assert "cannot connect to PostgreSQL at" in _single_error_line(proc)


def test_unknown_config_key_is_one_clear_error(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "dialer.toml"
    config.write_text('[ami]\nsecert = "typo"\n')
    proc = _run_to_exit(daemon_env(stack, database_url), "--config", str(config))
    assert proc.returncode == 2
    assert "unknown config key ami.secert" in _single_error_line(proc)


def test_busy_http_port_is_one_clear_error(stack: Any, database_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _run_to_exit(daemon_env(stack, database_url, DIALER_HTTP_PORT=str(port)))
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in _single_error_line(proc)


MALFORMED_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    b"GET /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
]


def _send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_malformed_http_from_an_unauthenticated_client_is_one_warning_line_each(
    daemon: DaemonProcess,
) -> None:
    wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
    before = len(daemon.logs())
    for request in MALFORMED_REQUESTS:
        reply = _send_raw(daemon.port, request)
        assert re.match(rb"HTTP/1\.[01] 400 ", reply), (request[:60], reply[:200])
    # The daemon still serves.
    assert http_get(daemon.url("/healthz"))[0] == 200
    time.sleep(0.3)
    lines = daemon.logs()[before:]
    assert not [e for e in lines if e.get("level") in ("error", "critical")], lines
    assert not [e for e in lines if "exc" in e or "Traceback" in str(e)], lines
    warnings = [e for e in lines if e.get("level") == "warning"]
    assert len(warnings) == len(MALFORMED_REQUESTS), warnings
    for entry in warnings:
        assert entry["msg"].startswith("malformed HTTP request from 127.0.0.1"), entry
        # One line: no multi-line message either.
        assert "\n" not in entry["msg"]
