"""/metrics of a real daemon after a real campaign: promtool-clean, and true to the database."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.observability.metrics import CONTACT_STATES, CampaignInfo, Metrics
from dialer_server.observability.stats import StatsRefresher

from ..support.daemon_process import DaemonProcess, http_get
from ..support.observed_campaigns import (
    add_observed_campaign,
    label_values,
    parse,
    run_to_completion,
    sample,
    scrape,
    start_daemon,
)
from .conftest import _admin, _with_db

pytestmark = pytest.mark.stack

Samples = dict[str, list[tuple[dict[str, str], float]]]


class Observed:
    def __init__(self, url: str, campaign_id: int, text: str, daemon: DaemonProcess) -> None:
        self.url = url
        self.campaign_id = campaign_id
        self.campaign = str(campaign_id)
        self.text = text
        self.samples: Samples = parse(text)
        self.daemon = daemon

    def value(self, metric: str, /, **labels: str) -> float | None:
        return sample(self.samples, metric, **labels)

    async def fetch(self, sql: str) -> list[Any]:
        conn = await asyncpg.connect(self.url)
        try:
            return list(await conn.fetch(sql, self.campaign_id))
        finally:
            await conn.close()


@pytest.fixture(scope="module")
async def observed(
    stack: Any, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    """One short campaign through real Asterisk, and the daemon's /metrics after it."""
    name = f"dialer_test_{uuid.uuid4().hex[:12]}"
    await _admin(stack, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = _with_db(stack.database_url, name)
    campaign_id = await add_observed_campaign(url)
    daemon = start_daemon(stack, url, tmp_path_factory.mktemp("metrics") / "daemon.log")
    try:
        await run_to_completion(daemon, url, campaign_id)
        _, text = http_get(daemon.url("/metrics"))
        yield Observed(url, campaign_id, text, daemon)
    finally:
        daemon.close()
        await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_metrics_of_a_real_campaign_pass_promtool(observed: Observed) -> None:
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=observed.text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


async def test_call_and_attempt_counters_equal_the_attempts_in_the_database(
    observed: Observed,
) -> None:
    rows = await observed.fetch(
        "SELECT channel, outcome, count(*) AS n FROM attempts WHERE campaign_id = $1 "
        "GROUP BY channel, outcome"
    )
    in_db = {(r["channel"], r["outcome"]): r["n"] for r in rows}
    assert in_db == {
        ("call", "answered"): 3,
        ("call", "busy"): 1,
        ("call", "invalid_number"): 1,
        ("call", "congestion"): 2,
        ("sms", "sent"): 1,
    }
    exported = {
        (lbl["channel"], lbl["outcome"]): int(v)
        for lbl, v in observed.samples["dialer_attempt_outcomes_total"]
        if lbl["campaign"] == observed.campaign and v
    }
    assert exported == in_db
    calls = sum(n for (channel, _), n in in_db.items() if channel == "call")
    c = observed.campaign
    assert observed.value("dialer_calls_originated_total", campaign=c, trunk="carrier") == calls
    assert observed.value("dialer_sms_total", campaign=c, result="sent") == 1
    assert observed.value("dialer_sms_total", campaign=c, result="failed") == 0
    assert observed.value("dialer_calls_in_flight", campaign=c) == 0
    # Answered calls: a time to answer each, and a talk time of about 1 s (sipp holds 1 s).
    assert observed.value("dialer_call_answer_delay_seconds_count", campaign=c) == 3
    assert observed.value("dialer_call_talk_duration_seconds_count", campaign=c) == 3
    talk = observed.value("dialer_call_talk_duration_seconds_sum", campaign=c)
    assert talk is not None and 2.4 <= talk < 9
    # Retried: congestion once, busy once (to SMS).
    assert observed.value("dialer_retries_scheduled_total", campaign=c) == 2
    # Defined for agent modes, zero until they exist.
    assert observed.value("dialer_calls_abandoned_total", campaign=c) == 0
    # Every call's result seen live by its own daemon; no refused trunk, no pause.
    learned = {
        source: observed.value("dialer_call_results_learned_total", campaign=c, source=source)
        for source in ("live", "pbx", "lost")
    }
    assert learned == {"live": calls, "pbx": 0, "lost": 0}
    assert observed.value("dialer_trunk_errors_total", campaign=c, trunk="carrier") == 0
    reason = "trunk_errors"
    assert observed.value("dialer_campaign_auto_pauses_total", campaign=c, reason=reason) == 0


async def test_contact_gauges_and_closed_counters_equal_the_contacts_in_the_database(
    observed: Observed,
) -> None:
    rows = await observed.fetch(
        "SELECT state, count(*) AS n FROM contacts WHERE campaign_id = $1 GROUP BY state"
    )
    in_db = {r["state"]: r["n"] for r in rows}
    assert in_db == {
        "connected": 3,
        "sms_sent": 1,
        "retries_completed": 2,
        "dnc_listed": 1,
    }
    c = observed.campaign
    for state in CONTACT_STATES:
        assert observed.value("dialer_contacts", campaign=c, state=state) == in_db.get(state, 0)
        if state not in ("pending", "sent_to_dialer"):
            closed = observed.value("dialer_contacts_closed_total", campaign=c, state=state)
            assert closed == in_db.get(state, 0), state
    assert observed.value("dialer_contacts_due", campaign=c) == 0
    assert observed.value("dialer_contacts_due_age_seconds", campaign=c) == 0
    assert observed.value("dialer_campaign_info", campaign=c, name="observed") == 1
    assert observed.value("dialer_campaign_max_concurrent_calls", campaign=c) == 4
    assert observed.value("dialer_campaign_max_calls_per_second", campaign=c) == 5


def test_ami_engine_and_database_health_are_exported(observed: Observed) -> None:
    v = observed.value
    assert v("dialer_ami_up") == 1
    assert v("dialer_ami_reconnects_total") == 0
    assert v("dialer_ami_action_duration_seconds_count", action="Originate") == 7
    assert v("dialer_ami_action_duration_seconds_count", action="MessageSend") == 1
    assert (v("dialer_ami_action_duration_seconds_count", action="Login") or 0) >= 1
    assert label_values(observed.samples["dialer_ami_action_duration_seconds_count"], "action") == {
        "Login",
        "Ping",
        "Originate",
        "CoreShowChannels",
        "MessageSend",
        "DBGetTree",
        "DBGet",
        "DBDel",
        "ShowDialPlan",
        "ModuleCheck",
        "other",
    }
    assert (v("dialer_scheduler_tick_lag_seconds_count") or 0) > 10
    assert (v("dialer_scheduler_tick_duration_seconds_count") or 0) > 10
    last_tick = v("dialer_scheduler_last_tick_timestamp_seconds")
    assert last_tick is not None and time.time() - last_tick < 30
    assert v("dialer_db_up") == 1
    assert v("dialer_db_pool_max_connections") == 10
    assert (v("dialer_stats_refresh_duration_seconds_count") or 0) >= 1
    assert v("dialer_webhook_outbox_depth") == 0
    assert v("dialer_webhook_delivery_failures_total") == 0
    assert (v("process_resident_memory_bytes") or 0) > 0


def test_campaign_series_go_when_the_campaign_is_gone_but_not_while_calls_are_in_flight() -> None:
    metrics = Metrics()
    info = CampaignInfo(7, "spring", "running", "carrier", 10, 5.0)
    metrics.track_campaigns([info, CampaignInfo(8, "autumn", "running", "carrier", 10, 5.0)])
    metrics.attempt_closed(7, "call", "busy")
    metrics.set_in_flight(8, 1)
    assert metrics.campaigns() == {"7", "8"}

    metrics.track_campaigns([])
    # Campaign 8 still has a call in flight: its series stay until it ends.
    assert metrics.campaigns() == {"8"}
    text = metrics.render().decode()
    assert 'campaign="7"' not in text
    metrics.set_in_flight(8, 0)
    metrics.track_campaigns([])
    assert metrics.campaigns() == set()
    assert "campaign=" not in metrics.render().decode()


def test_a_renamed_campaign_keeps_one_info_series() -> None:
    metrics = Metrics()
    metrics.track_campaigns([CampaignInfo(7, "spring", "running", "carrier", 10, 5.0)])
    metrics.track_campaigns([CampaignInfo(7, "summer", "paused", "carrier", 10, 5.0)])
    samples = parse(metrics.render().decode())
    assert [lbl["name"] for lbl, _ in samples["dialer_campaign_info"]] == ["summer"]
    assert sample(samples, "dialer_campaign_state", campaign="7", state="paused") == 1
    assert sample(samples, "dialer_campaign_state", campaign="7", state="running") == 0


def test_ami_action_names_are_a_bounded_label_set() -> None:
    metrics = Metrics()
    metrics.action_replied("originate", 0.01)
    metrics.action_replied("SIPnotify", 0.01)
    metrics.action_failed("QueueStatus", "timeout")
    samples = parse(metrics.render().decode())
    assert sample(samples, "dialer_ami_action_duration_seconds_count", action="Originate") == 1
    assert sample(samples, "dialer_ami_action_duration_seconds_count", action="other") == 1
    assert (
        sample(samples, "dialer_ami_action_failures_total", action="other", reason="timeout") == 1
    )


async def test_stats_refresh_is_bounded_when_the_database_hangs(
    pool: Any, database_url: str
) -> None:
    metrics = Metrics()
    refresher = StatsRefresher(pool, metrics, "carrier", timeout_s=0.5)
    assert await refresher.refresh()
    assert sample(parse(metrics.render().decode()), "dialer_db_up") == 1
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            assert not await refresher.refresh()
            assert time.monotonic() - started < 2
    finally:
        await locker.close()
    samples = parse(metrics.render().decode())
    assert sample(samples, "dialer_db_up") == 0
    assert sample(samples, "dialer_stats_refresh_failures_total") == 1
    assert await refresher.refresh()


async def test_outbox_depth_counts_undelivered_webhook_events(pool: Any) -> None:
    metrics = Metrics()
    refresher = StatsRefresher(pool, metrics, "carrier")
    insert = (
        "INSERT INTO webhook_outbox (id, event_type, campaign_id, ordering_key, payload, "
        "created_at, delivered_at) VALUES (gen_random_uuid(), 'campaign.state_changed', 1, "
        "'campaign:1', '{}', now() - $1::interval, $2)"
    )
    await pool.execute(insert, timedelta(seconds=40), datetime.now(UTC))  # delivered
    await pool.execute(insert, timedelta(seconds=30), None)
    await pool.execute(insert, timedelta(seconds=5), None)
    assert await refresher.refresh()
    samples = parse(metrics.render().decode())
    assert sample(samples, "dialer_webhook_outbox_depth") == 2
    age = sample(samples, "dialer_webhook_outbox_oldest_age_seconds")
    assert age is not None and 29 <= age < 60


async def test_metrics_answer_at_once_while_postgresql_is_down(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    daemon = start_daemon(stack, database_url, tmp_path / "daemon.log")
    try:
        try:
            stack.run("pg-stop")
            started = time.monotonic()
            while sample(scrape(daemon), "dialer_db_up") != 0:
                assert time.monotonic() - started < 15, "dialer_db_up never went 0"
                await asyncio.sleep(0.2)
            for _ in range(5):
                started = time.monotonic()
                assert sample(scrape(daemon), "dialer_ami_up") == 1
                assert time.monotonic() - started < 0.5
        finally:
            stack.run("pg-start")
        started = time.monotonic()
        while sample(scrape(daemon), "dialer_db_up") != 1:
            assert time.monotonic() - started < 20, "dialer_db_up never came back"
            await asyncio.sleep(0.2)
        assert daemon.alive()
    finally:
        daemon.close()
