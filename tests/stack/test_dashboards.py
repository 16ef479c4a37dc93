"""The Grafana dashboards: well formed, provisioned, and every query answered by a real Prometheus.

The real check starts Prometheus (Debian's package) scraping a daemon every
second during a short campaign through real Asterisk, then evaluates every
PromQL expression of every panel through Prometheus' HTTP API, with the
template variables replaced by concrete values: each must parse and return a
number.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from dialer_server.engine import store
from dialer_server.observability.stats import REFRESH_INTERVAL_S

from ..support.daemon_process import DaemonProcess, free_port, wait_for
from ..support.observed_campaigns import add_observed_campaign, run_to_completion, start_daemon

ROOT = Path(__file__).resolve().parents[2]


DASHBOARD_DIR = ROOT / "dashboards"


DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))


PROMETHEUS = "/usr/bin/prometheus"


# What Grafana puts in place of its own variables, for a short run scraped every second.
GRAFANA_VARIABLES = {"__rate_interval": "30s", "__interval": "2s", "__range": "5m"}


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"{board['title']} / {panel['title']} / {target['refId']}", target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unknown variable left in {expr}"
    return expr


class Prometheus:
    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.process = process
        self.log = log

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        assert body["status"] == "success", f"{params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), expr
        result: list[dict[str, Any]] = (
            data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]
        )
        return result

    def scraped(self, metric: str, **labels: str) -> bool:
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return bool(self.query(f"{metric}{{{selector}}}"))


@pytest.fixture
def prometheus_and_daemon(
    stack: Any, database_url: str, tmp_path: Path
) -> Iterator[tuple[Prometheus, DaemonProcess]]:
    """Prometheus scraping a daemon (not yet started) every second."""
    daemon_port = free_port()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "dialer",
                        "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
                    }
                ],
            }
        )
    )
    log = tmp_path / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(port, process, log)
    daemon: DaemonProcess | None = None
    try:
        wait_for(lambda: _ready(port) or process.poll() is not None, 30, "Prometheus ready")
        assert process.poll() is None, log.read_text()
        daemon = start_daemon(
            stack, database_url, tmp_path / "daemon.log", DIALER_HTTP_PORT=str(daemon_port)
        )
        yield prometheus, daemon
    finally:
        if daemon is not None:
            daemon.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def test_every_panel_query_returns_data_from_a_real_prometheus(
    prometheus_and_daemon: tuple[Prometheus, DaemonProcess], database_url: str
) -> None:
    prometheus, daemon = prometheus_and_daemon
    started = time.monotonic()
    # As operators do: create the campaign, then start it. The daemon exports
    # its series at zero meanwhile, so rates count the very first calls.
    campaign_id = await add_observed_campaign(database_url, start=False)
    campaign = str(campaign_id)
    wait_for(
        lambda: (
            prometheus.query(
                f'count_over_time(dialer_attempt_outcomes_total{{campaign="{campaign}"}}[1m]) >= 2'
            )
            != []
        ),
        15,
        "Prometheus to scrape the new campaign's series",
    )
    conn = await asyncpg.connect(database_url)
    try:
        await store.set_campaign_state(conn, campaign_id, "running")
    finally:
        await conn.close()
    await run_to_completion(daemon, database_url, campaign_id)
    wait_for(
        lambda: prometheus.scraped("dialer_campaign_state", campaign=campaign, state="completed"),
        10,
        "Prometheus to scrape the completed campaign",
    )
    instance = f"127.0.0.1:{daemon.port}"
    values = {**GRAFANA_VARIABLES, "campaign": campaign, "instance": instance}

    queries: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        board = load(path)
        for name, variable in variables(board).items():
            if variable["type"] != "query":
                continue
            metric, label = re.fullmatch(
                r"label_values\((\w+), (\w+)\)", variable["query"]["query"]
            ).groups()  # type: ignore[union-attr]
            found = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
            assert values[name] in found, f"{board['title']}: ${name} offers {found}"
        queries += [(where, substitute(expr, values)) for where, expr in expressions(board)]
    assert len(queries) >= 60
    # A rate over a histogram is NaN while no observation falls inside its window
    # (the stats refresher observes once every 5 s): a query that has no number
    # yet is asked again until the next observations are scraped, never longer
    # than a few refresh intervals.
    deadline = time.monotonic() + 3 * REFRESH_INTERVAL_S + 5
    failing = _without_numbers(prometheus, queries)
    while failing and time.monotonic() < deadline:
        await asyncio.sleep(1)
        failing = _without_numbers(prometheus, [(w, e) for w, e, _ in failing])
    empty = [f"{where}: {expr}" for where, expr, result in failing if not result]
    no_number = [f"{where}: {expr} -> {result}" for where, expr, result in failing if result]
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert not no_number, "queries with no number (NaN only):\n" + "\n".join(no_number)
    assert time.monotonic() - started < 60


def _without_numbers(
    prometheus: Prometheus, queries: list[tuple[str, str]]
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The queries whose result has no finite number, with what they returned."""
    failing = []
    for where, expr in queries:
        result = prometheus.query(expr)
        if not any(math.isfinite(float(r["value"][1])) for r in result):
            failing.append((where, expr, result))
    return failing
