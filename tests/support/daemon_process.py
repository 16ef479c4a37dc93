"""A daemon as operators run it: a subprocess with settings in its environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_env(stack: Any, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DIALER_") and k != "DATABASE_URL"
    }
    env.update(stack.env)
    env["DIALER_DATABASE_URL"] = database_url
    env["DIALER_AMI_RECONNECT_MAX_S"] = "1"
    env["DIALER_AMI_PING_INTERVAL_S"] = "1"
    env["DIALER_DIALING_STRATEGIES_DIR"] = str(ROOT / "strategies")
    # The stack's env names the demo daemon's port; each test daemon gets its own.
    env["DIALER_HTTP_PORT"] = str(free_port())
    env.update(extra)
    return env


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class DaemonProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["DIALER_HTTP_PORT"])
        self.log = log
        self._log_file = log.open("a")
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
            status, body = http_get(self.url("/readyz"))
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def metric(self, name: str) -> float:
        _, body = http_get(self.url("/metrics"))
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not exported")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"msg": line})
        return entries

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


def start_daemon(stack: Any, url: str, log: Path, **env: str) -> DaemonProcess:
    """A daemon subprocess on the stack, returned once /readyz says 200."""
    daemon = DaemonProcess(daemon_env(stack, url, **env), log)
    try:
        wait_for(lambda: daemon.ready()[0] == 200 or not daemon.alive(), 20, "/readyz 200")
    except BaseException:
        daemon.close()
        raise
    assert daemon.alive(), daemon.log.read_text()
    return daemon
