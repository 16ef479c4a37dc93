"""The Grafana dashboards: well formed, provisioned, and every query answered by a real Prometheus.

The real check starts Prometheus (Debian's package) scraping a daemon every
second during a short campaign through real Asterisk, then evaluates every
PromQL expression of every panel through Prometheus' HTTP API, with the
template variables replaced by concrete values: each must parse and return a
number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

ROOT = Path(__file__).resolve().parents[2]


DASHBOARD_DIR = ROOT / "dashboards"


DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))


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


def test_three_dashboards_in_the_current_schema() -> None:
    boards = [load(path) for path in DASHBOARDS]
    assert {b["uid"] for b in boards} == {
        "dialer-campaign-overview",
        "dialer-live-operations",
        "dialer-system",
    }
    for board in boards:
        assert board["schemaVersion"] >= 39, board["title"]
        assert board["id"] is None, "provisioned dashboards must not carry a database id"
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{board['title']}: panel ids repeat"
        assert expressions(board), board["title"]


def test_every_panel_queries_the_datasource_variable() -> None:
    for path in DASHBOARDS:
        board = load(path)
        datasource = variables(board)["datasource"]
        assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            wanted = {"type": "prometheus", "uid": "${datasource}"}
            assert panel["datasource"] == wanted, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == wanted, panel["title"]


def test_campaign_boards_select_campaigns_from_label_values() -> None:
    for uid in ("dialer-campaign-overview", "dialer-live-operations"):
        board = load(DASHBOARD_DIR / f"{uid}.json")
        campaign = variables(board)["campaign"]
        assert campaign["type"] == "query"
        assert campaign["query"]["query"] == "label_values(dialer_campaign_info, campaign)"
        assert campaign["multi"] and campaign["includeAll"]
        for where, expr in expressions(board):
            if "dialer_contacts" in expr or "dialer_calls_in_flight" in expr:
                assert 'campaign=~"$campaign"' in expr, where


def test_compose_provisions_the_dashboards_of_this_folder() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = dict(
        reversed(str(volume).split(":")[:2]) for volume in compose["services"]["grafana"]["volumes"]
    )
    assert mounts["/var/lib/grafana/dashboards"] == "./dashboards"
    provider = yaml.safe_load(
        (DASHBOARD_DIR / "provisioning" / "dashboards" / "dialer.yml").read_text(encoding="utf-8")
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    # Grafana loads every *.json under the path: only dashboards may be there.
    assert sorted(DASHBOARD_DIR.rglob("*.json")) == DASHBOARDS
