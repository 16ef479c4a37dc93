"""A short real campaign for the metrics and dashboard tests, and /metrics parsing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from dialer_server.engine import store

from . import daemon_process as daemons
from .campaign_setup import add_campaign, wait_campaign_state
from .daemon_process import DaemonProcess, http_get

# Far-end numbers (scripts/sipp/farend.xml): the last three digits pick the behaviour.
ANSWER_1S = "12025550201"
BUSY = "12025550486"
NOT_FOUND = "12025550404"
CONGESTION = "12025550503"
DO_NOT_CALL = "12025550999"

# Every kind of result in a few seconds: answers, a busy number that falls back
# to SMS, a wrong number, a congested one retried once, a do-not-call contact.
STRATEGY = {
    "name": "observed",
    "version": 1,
    "description": "phone 1 twice at most, SMS when busy",
    "sms": {"text": "We tried to call you, {param1}.", "close_state": "sms_sent"},
    "on": {"congestion": {"action": "retry", "delay_s": 1}},
    "attempts": [
        {"phone": 1, "ring_timeout_s": 15, "max_tries": 2, "on": {"busy": {"action": "sms"}}}
    ],
}
CONTACTS: list[list[str | None]] = [
    [ANSWER_1S],
    ["12025551201"],
    ["12025552201"],
    [BUSY],
    [NOT_FOUND],
    [CONGESTION],
    [DO_NOT_CALL],
]
SMS_ENV = {
    "DIALER_SMS_PROVIDER": "ami",
    "DIALER_SMS_ENDPOINT": "carrier",
    "DIALER_SMS_FROM_URI": "15550001111",
    "DIALER_DIALING_RING_TIMEOUT_S": "15",
}


async def add_observed_campaign(url: str, *, start: bool = True) -> int:
    conn = await asyncpg.connect(url)
    try:
        await store.add_do_not_call(conn, DO_NOT_CALL)
        campaign_id, _ = await add_campaign(
            conn,
            "observed",
            STRATEGY,
            CONTACTS,
            start=start,
            max_concurrent_calls=4,
            max_calls_per_second=5,
        )
    finally:
        await conn.close()
    return campaign_id


def start_daemon(stack: Any, url: str, log: Path, **env: str) -> DaemonProcess:
    return daemons.start_daemon(stack, url, log, **SMS_ENV, **env)


async def run_to_completion(daemon: DaemonProcess, url: str, campaign_id: int) -> None:
    """Wait for the campaign to complete and the database gauges to show it."""
    await wait_campaign_state(url, campaign_id, "completed", timeout=60, alive=daemon.alive)
    labels = {"campaign": str(campaign_id), "state": "completed"}
    async with asyncio.timeout(15):
        while sample(scrape(daemon), "dialer_campaign_state", **labels) != 1:
            await asyncio.sleep(0.2)


def scrape(daemon: DaemonProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the daemon's /metrics: {sample name: [(labels, value)]}."""
    status, body = http_get(daemon.url("/metrics"))
    assert status == 200
    return parse(body)


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def sample(
    samples: dict[str, list[tuple[dict[str, str], float]]], metric: str, /, **labels: str
) -> float | None:
    """The value of the one sample of ``metric`` with these labels, None if absent."""
    found = [v for lbl, v in samples.get(metric, []) if labels.items() <= lbl.items()]
    assert len(found) <= 1, f"{metric}{labels} matches {len(found)} samples"
    return found[0] if found else None


def label_values(samples: Iterable[tuple[dict[str, str], float]], label: str) -> set[str]:
    return {lbl[label] for lbl, _ in samples if label in lbl}
