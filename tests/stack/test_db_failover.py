"""PostgreSQL failover: the primary stops hard mid-campaign and its replica is promoted.

Two daemons run one campaign against a multi-host URL (``target_session_attrs=
read-write``) naming the stack's PostgreSQL and its streaming replica, a synchronous
standby (``scripts/stack replica-start``; the test database commits with
``synchronous_commit = on``). Mid-campaign the primary is stopped hard (``pg-kill``:
no checkpoint, every session cut) and the replica promoted (``replica-promote``).

What must hold: the daemons wait, reconnect to the new primary and carry on, each of
their own sessions included (the pool, the instance locks, the pacing lock, the webhooks'
LISTEN); every result committed before the failover is there, with its outcome; after
the run no attempt lacks an outcome, every contact is closed, and the far end (sipp's
own trace) saw no number dialled twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.db.pool import warn_if_failover_loses_commits

from ..support.campaign_setup import add_campaign, wait_campaign_state
from ..support.crm_receiver import Crm
from ..support.daemon_process import DaemonProcess, start_daemon
from ..support.far_end import dials_per_number, settled_calls

pytestmark = pytest.mark.stack

ONE_TRY = {
    "name": "failover-one-try",
    "version": 1,
    "description": "one call per contact",
    "caps": {"per_contact": 1},
    "on": {"busy": {"action": "next"}, "no_answer": {"action": "next"}},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
CONTACTS = 150
SECRET = "failover-webhook-secret"


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rpartition('/')[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def replicated_url(stack: Any, database_url: str) -> AsyncIterator[str]:
    """The test database behind a multi-host URL: the primary, then its replica.

    Afterwards the replica goes and the old primary comes back, as it was when it was
    stopped, for the tests that follow.
    """
    name = database_url.rpartition("/")[2]
    admin = await asyncpg.connect(_with_db(database_url, "postgres"))
    try:
        # The stack runs with synchronous_commit off; this database waits for the
        # synchronous standby, as production must (docs/operations.md).
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    finally:
        await admin.close()
    stack.run("replica-start")
    try:
        yield _with_db(stack.env["DATABASE_FAILOVER_URL"], name)
    finally:
        stack.run("replica-stop")
        stack.run("pg-start")


async def _fetch(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _logged_at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["ts"]).timestamp()


async def test_promoting_the_replica_mid_campaign_loses_nothing_committed(
    stack: Any, database_url: str, replicated_url: str, tmp_path: Path
) -> None:
    started = time.time()
    area = random.randrange(300, 900)
    # Answer and hold 1, 2 or 5 s (farend.xml): calls end all through the run.
    numbers = [f"1{area}{i:04d}{('201', '202', '205')[i % 3]}" for i in range(CONTACTS)]
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "failover",
            ONE_TRY,
            [[n] for n in numbers],
            max_concurrent_calls=24,
            max_calls_per_second=20,
        )
        # A progressive campaign with no agent logged in: it places no call, but a
        # daemon holds the pacing lock of its queue all along (engine/pacing_locks.py).
        await add_campaign(
            conn, "failover-agents", ONE_TRY, [[f"1{area}9999201"]], mode="progressive"
        )
    finally:
        await conn.close()
    crm = Crm()
    await crm.start()
    env = {
        "DIALER_WEBHOOKS_URL": crm.url,
        "DIALER_WEBHOOKS_SECRET": SECRET,
        # Only a NOTIFY on a LISTEN session that rode the failover delivers the
        # events written after it in time: the poll comes once a minute.
        "DIALER_WEBHOOKS_POLL_INTERVAL_S": "60",
        "DIALER_DIALING_RING_TIMEOUT_S": "15",
    }
    daemons: list[DaemonProcess] = []
    try:
        for name in ("first", "second"):
            daemons.append(start_daemon(stack, replicated_url, tmp_path / f"{name}.log", **env))
        async with asyncio.timeout(60):
            while True:
                ended = await _fetch(
                    database_url,
                    "SELECT id, outcome FROM attempts WHERE campaign_id = $1 AND state = 'ended'",
                    campaign_id,
                )
                if len(ended) >= CONTACTS // 4:
                    break
                await asyncio.sleep(0.2)
        killed_at = time.time()
        stack.run("pg-kill")
        # The daemons find the database gone, calls still ringing and talking.
        await asyncio.sleep(3)
        stack.run("replica-promote")
        await wait_campaign_state(
            replicated_url,
            campaign_id,
            "completed",
            timeout=120,
            alive=lambda: all(d.alive() for d in daemons),
        )
        # Every contact's final state reaches the CRM, woken by NOTIFY on the new primary.
        await crm.wait_for(lambda c: len(c.of_type("contact.final_state")) == CONTACTS, 20)
        # Both daemons hold their instance lock again, on the new primary.
        instance_ids = [
            next(e["instance_id"] for e in d.logs() if e.get("action") == "start") for d in daemons
        ]
        locks = await _fetch(
            replicated_url,
            """SELECT objid::int FROM pg_locks
               WHERE locktype = 'advisory' AND granted AND classid = 1684""",
        )
        assert sorted(r[0] for r in locks) == sorted(instance_ids)
        # And one of them paces the queue again, on the new primary.
        async with asyncio.timeout(10):
            while not await _fetch(
                replicated_url,
                """SELECT 1 FROM pg_locks
                   WHERE locktype = 'advisory' AND granted AND classid = 1685""",
            ):
                await asyncio.sleep(0.2)
        assert all(d.alive() for d in daemons)
    finally:
        for daemon in daemons:
            daemon.close()
        await crm.close()

    rows = await _fetch(
        replicated_url,
        "SELECT id, number, outcome FROM attempts WHERE campaign_id = $1",
        campaign_id,
    )
    after = {str(r["id"]): r["outcome"] for r in rows}
    # What the primary had committed just before it stopped is all there.
    assert ended and all(after.get(str(r["id"])) == r["outcome"] for r in ended)
    # And so is every result the daemons reported as recorded before it stopped.
    acknowledged = [
        e
        for d in daemons
        for e in d.logs()
        if e.get("action") == "result" and _logged_at(e) < killed_at
    ]
    assert len(acknowledged) >= len(ended)
    assert all(after.get(e["attempt_id"]) == e["outcome"] for e in acknowledged)
    # Nothing open, every contact closed, none dialled twice.
    assert None not in after.values()
    open_contacts = await _fetch(
        replicated_url,
        "SELECT id FROM contacts WHERE campaign_id = $1 AND closed_at IS NULL",
        campaign_id,
    )
    assert open_contacts == []
    assert len(after) <= CONTACTS
    far_end = await settled_calls(stack.env["PBX1_DIR"], since=started, numbers=numbers)
    dials = dials_per_number(far_end)
    assert max(dials.values()) == 1
    # Every call the far end saw has its attempt row (written before the Originate).
    assert set(dials) <= {r["number"] for r in rows}
    for daemon in daemons:
        messages = [e.get("msg", "") for e in daemon.logs()]
        # The outage was seen, and its end; the database's durability needed no warning.
        assert any(m.startswith("database unavailable") for m in messages), daemon.log
        assert any(m.startswith("database available again") for m in messages), daemon.log
        assert not any("synchronous standby" in m for m in messages), daemon.log
        # Nobody took a live daemon's calls for a dead one's while the locks came back.
        assert not any(m.startswith("taking over") for m in messages), daemon.log


async def test_a_multi_host_url_without_a_synchronous_standby_is_warned_about(
    stack: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = database_url.rpartition("/")[2]
    conn = await asyncpg.connect(database_url)
    try:
        # The stack's own PostgreSQL names no synchronous standby.
        assert not await warn_if_failover_loses_commits(conn, database_url)
        assert await warn_if_failover_loses_commits(
            conn, _with_db(stack.env["DATABASE_FAILOVER_URL"], name)
        )
    finally:
        await conn.close()
    (warning,) = [r for r in caplog.records if r.name == "dialer_server.db.pool"]
    assert "a failover may lose results, claims and API changes" in warning.getMessage()
