"""The daemon as operators run it: a subprocess, its HTTP probes, its exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(stack: Any, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DIALER_") and k != "DATABASE_URL"
    }
    env.update(stack.env)
    env["DIALER_DATABASE_URL"] = database_url
    env["DIALER_AMI_RECONNECT_MAX_S"] = "1"
    env["DIALER_AMI_PING_INTERVAL_S"] = "1"
    env.update(extra)
    return env


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["DIALER_HTTP_PORT"])
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialer_server", "run"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> tuple[int, dict[str, Any]]:
        try:
            status, body = _get(self.url("/readyz"))
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def metric(self, name: str) -> float:
        _, body = _get(self.url("/metrics"))
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not exported")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


@pytest.fixture
def daemon(stack: Any, database_url: str, tmp_path: Path) -> Iterator[Daemon]:
    env = _env(stack, database_url, DIALER_HTTP_PORT=str(_free_port()))
    d = Daemon(env, tmp_path / "daemon.log")
    yield d
    d.close()


def test_ready_when_database_and_ami_are_up(daemon: Daemon) -> None:
    _wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
    status, body = _get(daemon.url("/healthz"))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert daemon.ready()[1]["checks"]["ami"]["state"] == "connected"
    assert daemon.metric("dialer_ami_up") == 1


def test_asterisk_killed_reports_ami_down_and_restart_reconnects_without_daemon_restart(
    daemon: Daemon, stack: Any
) -> None:
    _wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
    try:
        stack.run("asterisk-kill")
        _wait_for(lambda: daemon.ready()[0] == 503, 10, "/readyz 503 after Asterisk died")
        body = daemon.ready()[1]
        assert body["checks"]["ami"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        assert daemon.metric("dialer_ami_up") == 0
        # /healthz is about the process, which is fine.
        assert _get(daemon.url("/healthz"))[0] == 200
    finally:
        stack.run("asterisk-start")
    _wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200 after Asterisk restarted")
    assert daemon.proc.poll() is None
    assert daemon.metric("dialer_ami_reconnects_total") >= 1
    logs = [json.loads(line) for line in daemon.log.read_text().splitlines()]
    messages = [entry["msg"] for entry in logs]
    assert "AMI connection lost" in messages
    assert any(m.startswith("AMI reconnected") for m in messages)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_cleanly_within_seconds(daemon: Daemon, signum: int) -> None:
    _wait_for(lambda: daemon.ready()[0] == 200, 20, "/readyz 200")
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


def test_wrong_ami_secret_is_one_clear_error(stack: Any, database_url: str) -> None:
    proc = _run_to_exit(
        _env(stack, database_url, DIALER_AMI_SECRET="wrong", DIALER_HTTP_PORT=str(_free_port()))
    )
    assert proc.returncode == 1
    assert "AMI login refused for user 'dialer'" in _single_error_line(proc)


def test_unreachable_database_is_one_clear_error(stack: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/dialer"
    proc = _run_to_exit(_env(stack, url, DIALER_HTTP_PORT=str(_free_port())))
    assert proc.returncode == 1
    assert "cannot connect to PostgreSQL at" in _single_error_line(proc)


def test_unknown_config_key_is_one_clear_error(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "dialer.toml"
    config.write_text('[ami]\nsecert = "typo"\n')
    proc = _run_to_exit(_env(stack, database_url), "--config", str(config))
    assert proc.returncode == 2
    assert "unknown config key ami.secert" in _single_error_line(proc)


def test_busy_http_port_is_one_clear_error(stack: Any, database_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _run_to_exit(_env(stack, database_url, DIALER_HTTP_PORT=str(port)))
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in _single_error_line(proc)
