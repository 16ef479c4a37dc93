"""The engine survives what production throws at it: kill -9, Asterisk and
PostgreSQL restarts, and a second daemon on the same database.

Each test runs real daemon processes against the real stack and checks the
database afterwards: every attempt closed with an outcome, no contact dialled
more than its strategy allows, no contact dialled by two daemons at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.config import Config
from dialer_server.engine import store
from dialer_server.engine.strategy import load_strategy_file, strategy_to_dict

from ..support.ami_proxy import AmiProxy
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.daemon_process import DaemonProcess, start_daemon
from ..support.sql import sql

pytestmark = pytest.mark.stack

ONE_TRY = {
    "name": "one-try",
    "version": 1,
    "description": "one call per contact: whatever happens closes it",
    "caps": {"per_contact": 1},
    "on": {
        "busy": {"action": "next"},
        "no_answer": {"action": "next"},
        "congestion": {"action": "next"},
    },
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


ROOT = Path(__file__).resolve().parents[2]
# The shipped default: a failed call moves on to phone 2, which falls back to
# phone 1 when empty: a call recorded as failed is dialled again.
DEFAULT = strategy_to_dict(load_strategy_file(ROOT / "strategies" / "default.yaml"))


def numbers(count: int, suffix: str) -> list[list[str | None]]:
    """Distinct far-end numbers with the same behaviour (the last 3 digits)."""
    return [[f"1202{i:04d}{suffix}"] for i in range(count)]


async def wait_open_attempts(url: str, campaign_id: int, at_least: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            conn = await asyncpg.connect(url)
            try:
                count = await conn.fetchval(
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'",
                    campaign_id,
                )
            finally:
                await conn.close()
            if count >= at_least:
                return
            await asyncio.sleep(0.1)


async def check_campaign(url: str, campaign_id: int, max_attempts: int) -> list[Any]:
    """Every attempt closed, every contact closed, no contact over its cap."""
    conn = await asyncpg.connect(url)
    try:
        open_attempts = await conn.fetchval(
            "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'",
            campaign_id,
        )
        assert open_attempts == 0
        contacts = await conn.fetch(
            """SELECT c.id, c.state, c.closed_at, count(a.id) AS attempts
               FROM contacts c LEFT JOIN attempts a ON a.contact_id = c.id
               WHERE c.campaign_id = $1 GROUP BY c.id ORDER BY c.id""",
            campaign_id,
        )
        for contact in contacts:
            assert contact["closed_at"] is not None, dict(contact)
            assert contact["attempts"] <= max_attempts, dict(contact)
        overlapping = await conn.fetchval(
            """SELECT count(*) FROM attempts a JOIN attempts b
                 ON a.contact_id = b.contact_id AND a.id < b.id
               WHERE a.campaign_id = $1
                 AND tstzrange(a.created_at, a.ended_at) && tstzrange(b.created_at, b.ended_at)""",
            campaign_id,
        )
        assert overlapping == 0
        return list(
            await conn.fetch(
                "SELECT outcome, count(*) FROM attempts WHERE campaign_id = $1 GROUP BY outcome",
                campaign_id,
            )
        )
    finally:
        await conn.close()


def start(stack: Any, url: str, tmp_path: Path, name: str) -> DaemonProcess:
    return start_daemon(stack, url, tmp_path / f"{name}.log")


async def test_kill_9_mid_campaign_then_restart_completes_without_extra_dials(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # Answer and hold 5 s: the calls outlive the daemon that placed them.
        campaign_id, _ = await add_campaign(
            conn, "kill9", ONE_TRY, numbers(10, "205"), max_concurrent_calls=4
        )
    finally:
        await conn.close()
    first = start(stack, database_url, tmp_path, "first")
    try:
        await wait_open_attempts(database_url, campaign_id, 3, timeout=20)
        first.proc.kill()  # SIGKILL: no cleanup of any kind
        first.proc.wait()
    finally:
        first.close()
    second = start(stack, database_url, tmp_path, "second")
    try:
        await wait_campaign_state(
            database_url, campaign_id, "completed", timeout=90, alive=second.alive
        )
    finally:
        second.close()
    outcomes = dict(await check_campaign(database_url, campaign_id, max_attempts=1))
    # Calls the killed daemon left ringing or talking were taken over and
    # followed to their end: they are answered, not lost.
    assert outcomes.get("answered", 0) >= 8, outcomes
    assert set(outcomes) <= {"answered", "dangling"}, outcomes
    logs = [entry.get("msg", "") for entry in second.logs()]
    assert any("taking over" in m for m in logs), logs


async def wait_no_open_attempts(url: str, campaign_id: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            conn = await asyncpg.connect(url)
            try:
                count = await conn.fetchval(
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'",
                    campaign_id,
                )
            finally:
                await conn.close()
            if count == 0:
                return
            await asyncio.sleep(0.1)


async def wait_answered_attempts(url: str, campaign_id: int, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            conn = await asyncpg.connect(url)
            try:
                answered = await conn.fetchval(
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state = 'answered'",
                    campaign_id,
                )
            finally:
                await conn.close()
            if answered >= count:
                return
            await asyncio.sleep(0.05)


async def test_answered_calls_outliving_a_kill_9_stay_answered_and_are_never_redialled(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    # 20 calls answered, 5 held 5 s and 15 held 10 s. The daemon dies once all
    # are answered; a new one starts once the first 5 have ended, on a slow
    # database (the test holds the contacts' rows, as a busy PostgreSQL would
    # hold up each write), and the other 15 end while it settles what it took
    # over. Each person spoke to us once: every contact is connected after one
    # attempt, never dialled again.
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "answered-kill9",
            DEFAULT,
            numbers(5, "205") + [[f"1203{i:04d}210"] for i in range(15)],
            max_concurrent_calls=20,
            max_calls_per_second=50,
        )
    finally:
        await conn.close()
    first = start(stack, database_url, tmp_path, "first")
    try:
        await wait_answered_attempts(database_url, campaign_id, 20, timeout=20)
        answered = time.monotonic()
        first.proc.kill()
        first.proc.wait()
    finally:
        first.close()
    await asyncio.sleep(max(0.0, answered + 5.5 - time.monotonic()))
    slow = await asyncpg.connect(database_url)
    try:
        async with slow.transaction():
            await slow.execute(
                "SELECT id FROM contacts WHERE campaign_id = $1 FOR UPDATE", campaign_id
            )
            second = start(stack, database_url, tmp_path, "second")
            # Until the 10 s calls have hung up: their Hangups reach the new
            # daemon while it is still settling the attempts it took over.
            await asyncio.sleep(max(0.0, answered + 11 - time.monotonic()))
        await wait_no_open_attempts(database_url, campaign_id, timeout=30)
    finally:
        await slow.close()
        second.close()
    conn = await asyncpg.connect(database_url)
    try:
        attempts = await conn.fetch(
            """SELECT contact_id, number, outcome, hangup_cause, result_source,
                      answered_at IS NOT NULL AS answered
               FROM attempts WHERE campaign_id = $1 ORDER BY contact_id""",
            campaign_id,
        )
        states = await conn.fetch(
            "SELECT state, count(*) FROM contacts WHERE campaign_id = $1 GROUP BY state",
            campaign_id,
        )
    finally:
        await conn.close()
    assert len(attempts) == 20, [dict(a) for a in attempts]
    assert {a["outcome"] for a in attempts} == {"answered"}, [dict(a) for a in attempts]
    assert all(a["answered"] for a in attempts)
    assert dict(states) == {"connected": 20}, dict(states)
    # The 5 calls that ended while no daemon ran: learned from the PBX's record.
    ended_unseen = [a["result_source"] for a in attempts if a["number"].endswith("205")]
    assert ended_unseen == ["pbx"] * 5, [dict(a) for a in attempts]


async def wait_attempts_in_state(
    url: str, campaign_id: int, state: str, count: int, timeout: float
) -> None:
    async with asyncio.timeout(timeout):
        while True:
            conn = await asyncpg.connect(url)
            try:
                found = await conn.fetchval(
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state = $2",
                    campaign_id,
                    state,
                )
            finally:
                await conn.close()
            if found >= count:
                return
            await asyncio.sleep(0.05)


async def test_calls_ringing_when_their_daemon_dies_get_their_real_outcome(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    # Killed while 10 calls ring: 5 ring out (480) 2 s later, while no daemon
    # runs; 5 ring until their 15 s timeout, well after the next daemon started.
    # None is dangling: the first get their end from the PBX's record, the
    # others are followed to it.
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "ringing-kill9",
            ONE_TRY,
            numbers(5, "181") + [[f"1203{i:04d}180"] for i in range(5)],
            max_concurrent_calls=10,
            max_calls_per_second=50,
        )
    finally:
        await conn.close()
    first = start(stack, database_url, tmp_path, "first")
    try:
        await wait_attempts_in_state(database_url, campaign_id, "sent", 10, timeout=20)
        first.proc.kill()
        first.proc.wait()
    finally:
        first.close()
    await asyncio.sleep(3)
    second = start(stack, database_url, tmp_path, "second")
    try:
        await wait_campaign_state(
            database_url, campaign_id, "completed", timeout=60, alive=second.alive
        )
    finally:
        second.close()
    await check_campaign(database_url, campaign_id, max_attempts=1)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT number, outcome, hangup_cause, sip_code, result_source,
                      extract(epoch FROM ended_at - sent_at) AS rang
               FROM attempts WHERE campaign_id = $1 ORDER BY number""",
            campaign_id,
        )
    finally:
        await conn.close()
    ring_outs = [dict(r) for r in rows if r["number"].endswith("181")]
    timeouts = [dict(r) for r in rows if r["number"].endswith("180")]
    for row in ring_outs:
        assert (row["outcome"], row["hangup_cause"], row["sip_code"]) == ("no_answer", 19, 480)
        # Ended while no daemon ran: only the PBX saw it.
        assert row["result_source"] == "pbx", row
    for row in timeouts:
        assert (row["outcome"], row["hangup_cause"]) == ("no_answer", 19), row
        # Followed by the second daemon to the end of the ring time.
        assert 14.5 <= row["rang"] < 20, row


async def test_an_attempt_its_daemon_never_sent_is_put_back_and_dialled(
    config: Config, database_url: str
) -> None:
    # A daemon died between claiming a contact and marking its attempt sent:
    # the Originate never left. The contact is dialled once, as if nothing
    # happened, never closed dangling.
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, (contact_id,) = await add_campaign(
            conn, "never-sent", ONE_TRY, numbers(1, "201"), start=False
        )
        dead = await conn.fetchval(
            "INSERT INTO dialer_instances (hostname, pid) VALUES ('gone', 1) RETURNING id"
        )
        # On the PBX of a daemon without [[pbx]] tables: "default".
        unsent = await conn.fetchval(
            sql("insert_engine_attempt"),
            campaign_id,
            contact_id,
            "call",
            1,
            "12020000201",
            0,
            dead,
            "default",
        )
        await conn.execute(sql("mark_contact_dialling"), contact_id)
        await store.set_campaign_state(conn, campaign_id, "running")
        async with running_daemon(engine_config(config)) as daemon:
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=30, alive=daemon.alive
            )
        attempts = await store.contact_attempts(conn, contact_id)
        contact = await store.get_contact(conn, contact_id)
    finally:
        await conn.close()
    assert [(a["outcome"], a["result_source"]) for a in attempts] == [("answered", "live")]
    assert str(attempts[0]["id"]) != str(unsent)
    assert contact is not None and contact["state"] == "connected"


async def test_calls_that_end_while_ami_is_cut_off_get_their_real_outcome(
    stack: Any, config: Config, database_url: str
) -> None:
    # The link between the dialer and Asterisk goes down for 7 s while calls
    # ring out (480 after 2 s) or talk (answered, 5 s): they all end while the
    # dialer cannot see them. On reconnect, reconciliation reads how they ended.
    proxy = AmiProxy(stack.env["DIALER_AMI_HOST"], int(stack.env["DIALER_AMI_PORT"]))
    await proxy.start()
    config = dataclasses.replace(
        engine_config(config), ami=dataclasses.replace(config.ami, port=proxy.port)
    )
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "ami-cut",
            ONE_TRY,
            numbers(4, "181") + [[f"1203{i:04d}205"] for i in range(3)],
            max_concurrent_calls=7,
            max_calls_per_second=50,
        )
        async with running_daemon(config) as daemon:
            await wait_attempts_in_state(database_url, campaign_id, "answered", 3, timeout=20)
            proxy.cut(7)
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=40, alive=daemon.alive
            )
        rows = await conn.fetch(
            "SELECT number, outcome, result_source FROM attempts WHERE campaign_id = $1",
            campaign_id,
        )
    finally:
        await conn.close()
        await proxy.close()
    got = sorted((r["number"][-3:], r["outcome"], r["result_source"]) for r in rows)
    assert got == [("181", "no_answer", "pbx")] * 4 + [("205", "answered", "pbx")] * 3


async def restart_mid_campaign(
    stack: Any, url: str, tmp_path: Path, service: str, suffix: str, count: int
) -> dict[str, int]:
    """Run a campaign and stop/start ``service`` while calls are up; its outcomes."""
    conn = await asyncpg.connect(url)
    try:
        campaign_id, _ = await add_campaign(
            conn, service, ONE_TRY, numbers(count, suffix), max_concurrent_calls=3
        )
    finally:
        await conn.close()
    daemon = start(stack, url, tmp_path, "daemon")
    try:
        await wait_open_attempts(url, campaign_id, 3, timeout=20)
        try:
            stack.run(f"{service}-kill" if service == "asterisk" else f"{service}-stop")
            await asyncio.sleep(2)
        finally:
            stack.run(f"{service}-start")
        await wait_campaign_state(url, campaign_id, "completed", timeout=120, alive=daemon.alive)
    finally:
        daemon.close()
    return dict(await check_campaign(url, campaign_id, max_attempts=1))


async def test_asterisk_restart_mid_campaign_resolves_calls_and_resumes(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    # Calls hold 10 s: the three up when Asterisk dies end with it (answered,
    # their Hangup lost); the other six are dialled after it comes back.
    outcomes = await restart_mid_campaign(stack, database_url, tmp_path, "asterisk", "210", 9)
    assert outcomes.get("answered", 0) >= 6, outcomes


async def test_postgresql_restart_mid_campaign_keeps_the_daemon_up(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    # Calls hold 5 s and outlive the outage: their results wait for the database.
    outcomes = await restart_mid_campaign(stack, database_url, tmp_path, "pg", "205", 8)
    assert outcomes == {"answered": 8}, outcomes


async def test_two_daemons_on_one_database_never_dial_a_contact_twice(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "two-daemons",
            ONE_TRY,
            numbers(16, "201"),
            # Each daemon paces itself to 2 calls/s, so one alone cannot fill the
            # campaign's 4 lines: both must take a share, which is the point.
            max_concurrent_calls=4,
            max_calls_per_second=2,
            start=False,
        )
        daemons = [start(stack, database_url, tmp_path, f"daemon{i}") for i in range(2)]
        await store.set_campaign_state(conn, campaign_id, "running")
    finally:
        await conn.close()
    try:
        await wait_campaign_state(
            database_url,
            campaign_id,
            "completed",
            timeout=90,
            alive=lambda: all(d.alive() for d in daemons),
        )
    finally:
        for daemon in daemons:
            daemon.close()
    outcomes = dict(await check_campaign(database_url, campaign_id, max_attempts=1))
    assert outcomes == {"answered": 16}, outcomes
    conn = await asyncpg.connect(database_url)
    try:
        dialled_by = await conn.fetchval(
            "SELECT count(DISTINCT instance_id) FROM attempts WHERE campaign_id = $1", campaign_id
        )
        # The campaign's line limit holds across daemons, not per daemon.
        most_at_once = await conn.fetchval(
            """SELECT max(n) FROM (
                 SELECT (SELECT count(*) FROM attempts b
                         WHERE b.campaign_id = a.campaign_id
                           AND b.created_at <= a.created_at AND b.ended_at > a.created_at) AS n
                 FROM attempts a WHERE a.campaign_id = $1) AS at_start""",
            campaign_id,
        )
    finally:
        await conn.close()
    assert dialled_by == 2, "both daemons should have taken a share of the work"
    assert most_at_once <= 4


async def test_a_call_answered_while_reconciliation_lists_channels_is_not_taken_for_lost(
    config: Config, database_url: str
) -> None:
    # Reconciliation's channel list is a snapshot: a call whose channel appears
    # and is answered after the list was made, but before it is read, is not on
    # it. It must not be judged by its absence (it would be recorded answered
    # and "lost" at once, its real end unseen). The listing below is the real
    # one, minus the call: as Asterisk made it a moment before the call existed.
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, (contact_id,) = await add_campaign(
            conn, "answered-during-listing", ONE_TRY, numbers(1, "261"), start=False
        )
        async with running_daemon(engine_config(config)) as daemon:
            scheduler, tracker = daemon.scheduler, daemon.scheduler.tracker
            real_send = daemon.pbxs.first.ami.send_action

            async def stale_listing(action: Any, timeout: float | None = None) -> Any:
                reply = await real_send(action, timeout)
                if action.get("Action") != "CoreShowChannels" or not scheduler._active:
                    return reply
                (attempt_id,) = scheduler._active
                async with asyncio.timeout(10):
                    while not tracker.is_answered(attempt_id):
                        await asyncio.sleep(0.01)
                return [m for m in reply if m.get("Uniqueid") != attempt_id]

            daemon.pbxs.first.ami.send_action = stale_listing  # type: ignore[method-assign]
            await store.set_campaign_state(conn, campaign_id, "running")
            await wait_attempts_in_state(database_url, campaign_id, "sent", 1, timeout=10)
            scheduler._reconcile_needed.set()
            await wait_attempts_in_state(database_url, campaign_id, "answered", 1, timeout=10)
            await asyncio.sleep(1.5)  # the reconciliation is over
            (attempt,) = await store.contact_attempts(conn, contact_id)
            assert attempt["state"] == "answered", dict(attempt)  # still followed
            # The person hangs up.
            await real_send({"Action": "Hangup", "Channel": "/^PJSIP/carrier-.*$/"})
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=10, alive=daemon.alive
            )
        (attempt,) = await store.contact_attempts(conn, contact_id)
    finally:
        await conn.close()
    assert (attempt["outcome"], attempt["result_source"]) == ("answered", "live")
