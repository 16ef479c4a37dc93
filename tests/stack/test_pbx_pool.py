"""A pool of PBXs: two real Asterisk servers, each with its own sipp far end.

The stack's PBX 2 (``scripts/stack pbx-start 2``) runs beside its own for this
module. What each far end saw is read from its own trace (sipp -trace_shortmsg,
tests/support/far_end.py), apart from our database: how many calls reached
each PBX, how many were up at once on it, and how often each number was dialled.
Each PBX also keeps its own records of how its calls ended (AstDB, issue 15):
they are read, and removed, on the PBX each call was placed on, whichever PBX is
the daemon's first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.config import Config
from dialer_server.engine import store
from dialer_server.telephony import pbx_results
from dialer_server.telephony.ami import AmiClient

from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.daemon_process import DaemonProcess
from ..support.far_end import FarEndCall, dials_per_number, most_at_once, settled_calls
from ..support.observed_campaigns import sample, scrape
from ..support.pbx_pool_stack import StackPbx, pool_config, start_pool_daemon
from ..support.sipp_agents import QUEUE, AgentPorts, SippAgents, TalkTime

pytestmark = pytest.mark.stack

ONE_TRY = {
    "name": "pool-one-try",
    "version": 1,
    "description": "one call per contact",
    "caps": {"per_contact": 1},
    "on": {"busy": {"action": "next"}, "no_answer": {"action": "next"}},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


@pytest.fixture(scope="module")
def second_pbx(stack: Any) -> Iterator[None]:
    """The stack's PBX 2 (Asterisk and its far end), for this module's tests."""
    stack.run("pbx-start", "2")
    yield
    stack.run("pbx-stop", "2")


def numbers(count: int, suffixes: tuple[str, ...]) -> list[str]:
    """Numbers of this run only (a random area), the far end's behaviour by suffix."""
    area = random.randrange(300, 900)
    return [f"1{area}{i:04d}{suffixes[i % len(suffixes)]}" for i in range(count)]


async def fetch(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def far_end_calls(
    stack: Any, pbxs: tuple[StackPbx, ...], since: float, dialled: list[str]
) -> dict[str, list[FarEndCall]]:
    return {
        pbx.name: await settled_calls(pbx.far_end(stack), since=since, numbers=dialled)
        for pbx in pbxs
    }


def close_all(daemons: list[DaemonProcess]) -> None:
    for daemon in daemons:
        daemon.close()


# --- placement: two daemons, two PBXs -----------------------------------------------------

# The acceptance's run: about 80 s of the stack's 2 cores.
SPREAD_CONTACTS = 2000
PBX1 = StackPbx(1, max_channels=24)
PBX2 = StackPbx(2, max_channels=12)


async def test_two_daemons_spread_calls_over_two_pbxs_by_their_limits(
    stack: Any, second_pbx: None, database_url: str, tmp_path: Path
) -> None:
    started = time.time()
    # Answer and hold 1 s: the PBXs stay full while contacts are due.
    dialled = numbers(SPREAD_CONTACTS, ("201",))
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "spread",
            ONE_TRY,
            [[n] for n in dialled],
            # Above the PBXs' 36 lines: their limits decide.
            max_concurrent_calls=100,
            max_calls_per_second=100,
        )
    finally:
        await conn.close()
    pool = (PBX1, PBX2)
    daemons: list[DaemonProcess] = []
    try:
        for name in ("first", "second"):
            daemons.append(start_pool_daemon(stack, database_url, tmp_path / f"{name}.log", pool))
        await wait_campaign_state(
            database_url,
            campaign_id,
            "completed",
            timeout=300,
            alive=lambda: all(d.alive() for d in daemons),
        )
        metrics = [scrape(d) for d in daemons]
    finally:
        close_all(daemons)

    seen = await far_end_calls(stack, pool, started, dialled)
    # Every contact dialled, once, on one PBX or the other.
    dials = dials_per_number(seen[PBX1.name] + seen[PBX2.name])
    assert sorted(dials) == sorted(dialled)
    assert set(dials.values()) == {1}
    # No PBX over its limit at any moment, and each limit was reached: it held.
    for pbx in pool:
        assert most_at_once(seen[pbx.name]) <= pbx.max_channels, pbx
        assert most_at_once(seen[pbx.name]) >= pbx.max_channels - 2, pbx
    # The calls landed in proportion to the limits (2 to 1).
    share = len(seen[PBX1.name]) / SPREAD_CONTACTS
    print(
        f"PBX1 {len(seen[PBX1.name])} calls, at most {most_at_once(seen[PBX1.name])} at once; "
        f"PBX2 {len(seen[PBX2.name])}, at most {most_at_once(seen[PBX2.name])}; "
        f"{time.time() - started:.0f} s"
    )
    assert 0.62 <= share <= 0.71, share

    rows = await fetch(
        database_url,
        """SELECT a.pbx, a.instance_id, a.outcome, c.closed_at IS NOT NULL AS closed
           FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.campaign_id = $1""",
        campaign_id,
    )
    # The database agrees with the far ends, and both daemons dialled.
    assert Counter(r["pbx"] for r in rows) == {p: len(c) for p, c in seen.items()}
    assert {r["outcome"] for r in rows} == {"answered"}
    assert all(r["closed"] for r in rows)
    assert len({r["instance_id"] for r in rows}) == 2
    # Each daemon's per-PBX metrics: its placed calls and outcomes add up to the far ends'.
    for pbx in pool:
        placed = [sample(m, "dialer_pbx_calls_placed_total", pbx=pbx.name) for m in metrics]
        answered = [
            sample(m, "dialer_pbx_call_outcomes_total", pbx=pbx.name, outcome="answered")
            for m in metrics
        ]
        assert sum(v or 0 for v in placed) == len(seen[pbx.name])
        assert sum(v or 0 for v in answered) == len(seen[pbx.name])
        for m in metrics:
            assert sample(m, "dialer_pbx_up", pbx=pbx.name) == 1
            assert sample(m, "dialer_pbx_channels_limit", pbx=pbx.name) == pbx.max_channels


# --- a PBX going away ---------------------------------------------------------------------

AWAY_CONTACTS = 80
# Answer and talk 5 or 10 s; ring out (15 s, unanswered).
AWAY_BEHAVIOURS = ("205", "210", "180")
AWAY_MARGIN_S = 8


async def test_a_killed_asterisk_s_calls_are_settled_and_the_campaign_goes_on_without_it(
    stack: Any, second_pbx: None, database_url: str, tmp_path: Path
) -> None:
    started = time.time()
    dialled = numbers(AWAY_CONTACTS, AWAY_BEHAVIOURS)
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "away",
            ONE_TRY,
            [[n] for n in dialled],
            max_concurrent_calls=40,
            max_calls_per_second=20,
        )
    finally:
        await conn.close()
    pool = (StackPbx(1, max_channels=10), StackPbx(2, max_channels=10))
    env = {
        "DIALER_DIALING_RING_TIMEOUT_S": "15",
        "DIALER_DIALING_RESULT_MARGIN_S": str(AWAY_MARGIN_S),
    }
    daemon = start_pool_daemon(stack, database_url, tmp_path / "daemon.log", pool, **env)
    try:
        # PBX 2 has calls ringing and calls talking: kill -9 its Asterisk.
        async with asyncio.timeout(60):
            while True:
                in_flight = await fetch(
                    database_url,
                    """SELECT id, state, contact_id FROM attempts
                       WHERE campaign_id = $1 AND pbx = 'pbx2' AND state <> 'ended'""",
                    campaign_id,
                )
                states = Counter(r["state"] for r in in_flight)
                if states["answered"] >= 3 and states["sent"] >= 2:
                    break
                await asyncio.sleep(0.1)
        stack.run("asterisk-kill", "2")
        killed_at = time.time()
        # Still ready to dial (PBX 1 is up), and saying which PBX is down.
        async with asyncio.timeout(10):
            while sample(scrape(daemon), "dialer_pbx_up", pbx="pbx2") != 0:
                await asyncio.sleep(0.1)
        status, body = daemon.ready()
        assert status == 200, body
        assert body["checks"]["ami"]["ok"] is True
        assert body["checks"]["ami"]["pbxs"]["pbx1"]["ok"] is True
        assert body["checks"]["ami"]["pbxs"]["pbx2"]["ok"] is False
        # dialer_ami_up says "every PBX": one is down.
        assert sample(scrape(daemon), "dialer_ami_up") == 0
        # Its calls are settled without it once the margin has passed...
        async with asyncio.timeout(60):
            while await fetch(
                database_url,
                "SELECT id FROM attempts WHERE pbx = 'pbx2' AND state <> 'ended'",
            ):
                await asyncio.sleep(0.2)
        settled_at = time.time()
        # ...while PBX 1 carries on; back, PBX 2 takes calls again.
        stack.run("asterisk-start", "2")
        back_at = time.time()
        await wait_campaign_state(
            database_url, campaign_id, "completed", timeout=180, alive=daemon.alive
        )
        metrics = scrape(daemon)
    finally:
        daemon.close()

    rows = {
        str(r["id"]): r
        for r in await fetch(
            database_url,
            """SELECT a.id, a.pbx, a.outcome, a.contact_id, a.created_at, a.detail,
                      c.closed_at IS NOT NULL AS closed
               FROM attempts a JOIN contacts c ON c.id = a.contact_id
               WHERE a.campaign_id = $1""",
            campaign_id,
        )
    }
    assert settled_at - killed_at >= AWAY_MARGIN_S - 1
    for attempt in in_flight:
        row = rows[str(attempt["id"])]
        # Answered if they were; the others dangling (a call answered or ended just
        # before the kill may be answered).
        if attempt["state"] == "answered":
            assert row["outcome"] == "answered", dict(row)
        else:
            assert row["outcome"] in ("dangling", "answered"), dict(row)
    assert any(rows[str(a["id"])]["outcome"] == "dangling" for a in in_flight)
    # None redialled: one attempt per contact, every contact closed.
    assert Counter(r["contact_id"] for r in rows.values()).most_common(1)[0][1] == 1
    assert all(r["closed"] for r in rows.values())
    # PBX 1 took calls while PBX 2 was away, and PBX 2 took calls again once back.
    assert any(
        r["pbx"] == "pbx1" and killed_at < r["created_at"].timestamp() for r in rows.values()
    )
    assert any(r["pbx"] == "pbx2" and r["created_at"].timestamp() > back_at for r in rows.values())
    # The far ends agree: every number reached one of them at most once.
    seen = await far_end_calls(stack, pool, started, dialled)
    assert max(dials_per_number(seen["pbx1"] + seen["pbx2"]).values()) == 1
    assert any(c.started > back_at for c in seen["pbx2"])
    assert sample(metrics, "dialer_pbx_up", pbx="pbx2") == 1
    assert (
        sample(metrics, "dialer_pbx_call_outcomes_total", pbx="pbx2", outcome="dangling") or 0
    ) >= 1


# --- takeover: a dead daemon's calls on the other daemon's PBX ---------------------------


async def test_a_dead_daemon_s_calls_are_settled_against_the_pbx_they_are_on(
    stack: Any, second_pbx: None, database_url: str, tmp_path: Path
) -> None:
    started = time.time()
    # Answer and talk 10 s: the calls outlive the daemon that placed them.
    dialled = numbers(8, ("210",))
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn, "takeover", ONE_TRY, [[n] for n in dialled], max_concurrent_calls=8
        )
    finally:
        await conn.close()
    # The victim dials through PBX 2 only: every call of the campaign is there.
    victim = start_pool_daemon(stack, database_url, tmp_path / "victim.log", (StackPbx(2),))
    daemons = [victim]
    try:
        (victim_id,) = [e["instance_id"] for e in victim.logs() if e.get("action") == "start"]
        async with asyncio.timeout(30):
            while len(
                await fetch(
                    database_url,
                    """SELECT id FROM attempts WHERE campaign_id = $1
                           AND instance_id = $2 AND state = 'answered'""",
                    campaign_id,
                    victim_id,
                )
            ) < len(dialled):
                await asyncio.sleep(0.1)
        # The survivor dials through PBX 1 first, and PBX 2.
        survivor = start_pool_daemon(
            stack, database_url, tmp_path / "survivor.log", (StackPbx(1), StackPbx(2))
        )
        daemons.append(survivor)
        victim.proc.kill()  # SIGKILL: no cleanup of any kind
        victim.proc.wait()
        killed_at = time.time()
        await wait_campaign_state(
            database_url, campaign_id, "completed", timeout=90, alive=survivor.alive
        )
    finally:
        close_all(daemons)

    rows = await fetch(
        database_url,
        """SELECT outcome, hangup_cause, ended_at, pbx, instance_id FROM attempts
           WHERE campaign_id = $1""",
        campaign_id,
    )
    (survivor_id,) = [e["instance_id"] for e in survivor.logs() if e.get("action") == "start"]
    # Every call was the victim's, taken over by the survivor, and followed on PBX 2
    # to its real end: answered, hung up normally by the far end after its 10 s,
    # after the daemon that placed it died.
    assert len(rows) == len(dialled)
    for row in rows:
        assert row["instance_id"] == survivor_id
        assert row["pbx"] == "pbx2"
        assert (row["outcome"], row["hangup_cause"]) == ("answered", 16), dict(row)
        assert row["ended_at"].timestamp() > killed_at
    assert any("taking over" in e.get("msg", "") for e in survivor.logs())
    seen = await far_end_calls(stack, (StackPbx(1), StackPbx(2)), started, dialled)
    assert seen["pbx1"] == []
    assert sorted(dials_per_number(seen["pbx2"]).values()) == [1] * len(dialled)


# --- results that outlive the daemon: each PBX's own records --------------------------


@contextlib.asynccontextmanager
async def pbx_ami(stack: Any, pbx: StackPbx) -> AsyncIterator[AmiClient]:
    """An AMI connection of the test's own to one PBX of the stack."""
    client = AmiClient(stack.ami_config(port=int(stack.env[f"PBX{pbx.number}_AMI_PORT"])))
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        await client.wait_connected(15)
        yield client
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def test_calls_that_end_while_no_daemon_runs_get_their_outcome_from_their_own_pbx(
    stack: Any, second_pbx: None, database_url: str, tmp_path: Path
) -> None:
    # Ring out (480 after 2 s), and answer and talk 5 s: all on PBX 2, all ended
    # while no daemon runs. The survivor's first PBX is PBX 1, which knows
    # nothing of them: only PBX 2's records can say how they ended.
    dialled = numbers(8, ("181", "205"))
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "records",
            ONE_TRY,
            [[n] for n in dialled],
            max_concurrent_calls=8,
            max_calls_per_second=50,
        )
    finally:
        await conn.close()
    started = time.time()
    victim = start_pool_daemon(stack, database_url, tmp_path / "victim.log", (StackPbx(2),))
    daemons = [victim]
    try:
        async with asyncio.timeout(30):
            while True:
                states = Counter(
                    r["state"]
                    for r in await fetch(
                        database_url,
                        "SELECT state FROM attempts WHERE campaign_id = $1",
                        campaign_id,
                    )
                )
                # Every call out (marked sent before its Originate), none ended yet.
                if states.total() == len(dialled) and not states.keys() & {"created", "ended"}:
                    break
                await asyncio.sleep(0.05)
        victim.proc.kill()  # SIGKILL: the calls go on without any daemon
        victim.proc.wait()
        await asyncio.sleep(7)  # every call ended: rung out after 2 s, hung up after 5 s
        attempt_ids = {
            str(r["id"])
            for r in await fetch(
                database_url, "SELECT id FROM attempts WHERE campaign_id = $1", campaign_id
            )
        }
        async with pbx_ami(stack, StackPbx(1)) as pbx1, pbx_ami(stack, StackPbx(2)) as pbx2:
            # Each call's end is recorded on the PBX it was placed on, and only there.
            assert attempt_ids <= set(await pbx_results.read_all(pbx2))
            assert not attempt_ids & set(await pbx_results.read_all(pbx1))
            survivor = start_pool_daemon(
                stack, database_url, tmp_path / "survivor.log", (StackPbx(1), StackPbx(2))
            )
            daemons.append(survivor)
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=30, alive=survivor.alive
            )
            # Recorded, their records are removed from the PBX that kept them.
            async with asyncio.timeout(10):
                while attempt_ids & set(await pbx_results.read_all(pbx2)):
                    await asyncio.sleep(0.2)
        metrics = scrape(survivor)
    finally:
        close_all(daemons)

    rows = await fetch(
        database_url,
        """SELECT number, pbx, outcome, hangup_cause, sip_code, result_source
           FROM attempts WHERE campaign_id = $1""",
        campaign_id,
    )
    got = sorted(
        (r["number"][-3:], r["pbx"], r["outcome"], r["hangup_cause"], r["result_source"])
        for r in rows
    )
    assert (
        got
        == [("181", "pbx2", "no_answer", 19, "pbx")] * 4
        + [("205", "pbx2", "answered", 16, "pbx")] * 4
    )
    assert {r["sip_code"] for r in rows if r["number"].endswith("181")} == {480}
    assert sample(
        metrics, "dialer_call_results_learned_total", campaign=str(campaign_id), source="pbx"
    ) == len(dialled)
    # None redialled: each number reached PBX 2's far end once, PBX 1's never.
    seen = await far_end_calls(stack, (StackPbx(1), StackPbx(2)), started, dialled)
    assert seen["pbx1"] == []
    assert sorted(dials_per_number(seen["pbx2"]).values()) == [1] * len(dialled)


async def test_every_pbx_of_the_pool_is_checked_for_what_the_hangup_handler_needs(
    stack: Any, second_pbx: None, database_url: str, tmp_path: Path
) -> None:
    # PBX 2 loses func_hangupcause (the SIP status of a call's end): the check at
    # its login says so, naming it; PBX 1, the pool's first, has everything.
    module = {"Action": "ModuleLoad", "Module": "func_hangupcause.so"}
    async with pbx_ami(stack, StackPbx(2)) as pbx2:
        unloaded = await pbx2.send_action({**module, "LoadType": "unload"})
        assert unloaded[0].get("Response") == "Success", unloaded
        try:
            daemon = start_pool_daemon(
                stack, database_url, tmp_path / "daemon.log", (StackPbx(1), StackPbx(2))
            )
            try:
                # Both PBXs reconciled (and so checked) once the first pass is logged.
                async with asyncio.timeout(15):
                    while not [e for e in daemon.logs() if e.get("action") == "pbx_results"]:
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                warned = [e for e in daemon.logs() if e.get("action") == "pbx_results"]
            finally:
                daemon.close()
        finally:
            loaded = await pbx2.send_action({**module, "LoadType": "load"})
            assert loaded[0].get("Response") == "Success", loaded
    assert len(warned) == 1, warned
    (entry,) = warned
    assert entry["level"] == "warning" and entry["pbx"] == "pbx2", entry
    assert entry["missing"] == ["the module func_hangupcause.so (modules.conf)"], entry
    assert entry["msg"].startswith("PBX pbx2 lacks the module func_hangupcause.so"), entry


async def test_declined_calls_and_refused_trunks_on_the_pool_s_second_pbx(
    stack: Any, second_pbx: None, config: Config, database_url: str
) -> None:
    # A campaign kept to PBX 2: a 603, then the carrier refusing two calls in a
    # row. The PBX's trunk ("carrier") is the one the calls leave through and the
    # pause names, not dialing.trunk, which no PBX here uses.
    pool = (StackPbx(1), StackPbx(2))
    config = engine_config(
        pool_config(config, stack, *pool), trunk="not-a-trunk", trunk_error_pause_after=2
    )
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, contact_ids = await add_campaign(
            conn,
            "refused-on-pbx2",
            ONE_TRY,
            [["12025550603"], ["12025559403"], ["12025559401"], ["12025550201"]],
            # One line: the calls go one after the other, in the contacts' order.
            max_concurrent_calls=1,
            pbxs=["pbx2"],
        )
        async with running_daemon(config) as daemon:
            async with asyncio.timeout(40):
                while await store.campaign_is_running(conn, campaign_id):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # no more call may start
            metrics = daemon.metrics.render().decode()
        campaign = await store.get_campaign(conn, campaign_id)
        rows = await conn.fetch(
            """SELECT contact_id, pbx, outcome, hangup_cause, sip_code, result_source, sent_at,
                      ended_at
               FROM attempts WHERE campaign_id = $1 ORDER BY created_at""",
            campaign_id,
        )
    finally:
        await conn.close()
    assert [
        (r["contact_id"], r["pbx"], r["outcome"], r["hangup_cause"], r["sip_code"]) for r in rows
    ] == [
        (contact_ids[0], "pbx2", "rejected", 21, 603),
        (contact_ids[1], "pbx2", "trunk_error", 21, 403),
        (contact_ids[2], "pbx2", "trunk_error", 21, 401),
    ], rows
    for row in rows:
        # Marked sent (with the time it went out) before it ended, learned live.
        assert row["result_source"] == "live", dict(row)
        assert row["sent_at"] is not None and row["sent_at"] <= row["ended_at"], dict(row)
    assert campaign is not None and campaign["state"] == "paused"
    reason = campaign["state_reason"]
    assert "last 2 calls on trunk carrier" in reason, reason
    assert f'dialer_trunk_errors_total{{campaign="{campaign_id}",trunk="carrier"}} 2.0' in metrics
    for outcome, count in (("rejected", 1), ("trunk_error", 2)):
        line = f'dialer_pbx_call_outcomes_total{{outcome="{outcome}",pbx="pbx2"}} {count}.0'
        assert line in metrics.splitlines(), [
            m for m in metrics.splitlines() if m.startswith("dialer_pbx_call_outcomes_total")
        ]


# --- agent campaigns: calls on the PBX where the agents are -----------------------------


async def test_an_agent_campaign_places_its_calls_on_the_pbx_its_queue_lives_on(
    stack: Any, second_pbx: None, config: Config, database_url: str
) -> None:
    started = time.time()
    # The far end answers and would stay 60 s: the agent (talking 1 s) ends each call.
    dialled = numbers(6, ("260",))
    pool = (StackPbx(1), StackPbx(2))
    # The agents' phones register with PBX 2 (the second of the pool).
    ports = AgentPorts(
        asterisk_sip=int(stack.env["PBX2_SIP_PORT"]),
        uas=int(stack.env["PBX2_SIPP_PORT"]) + 5,
        uas_control=int(stack.env["PBX2_SIPP_PORT"]) + 6,
        register=int(stack.env["PBX2_SIPP_PORT"]) + 7,
        register_control=int(stack.env["PBX2_SIPP_PORT"]) + 8,
        media=int(stack.env["PBX2_SIPP_MEDIA_PORT"]) + 100,
    )
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn, "agents", ONE_TRY, [[n] for n in dialled], mode="progressive", start=False
        )
        async with SippAgents(talk=TalkTime(min_s=1.0), ports=ports) as agents:
            await agents.register(2)
            async with running_daemon(engine_config(pool_config(config, stack, *pool))) as daemon:
                async with asyncio.timeout(15):
                    while len(daemon.roster.free_agents(QUEUE)) != 2:
                        await asyncio.sleep(0.05)
                # The queue is on both PBXs (the shipped config): it lives where its
                # agents are logged in.
                home = daemon.pbxs.queue_home(QUEUE)
                assert home is not None and home.name == "pbx2"
                await conn.execute(
                    "UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id
                )
                await wait_campaign_state(database_url, campaign_id, "completed", timeout=90)
        rows = await conn.fetch(
            "SELECT pbx, outcome, agent FROM attempts WHERE campaign_id = $1", campaign_id
        )
    finally:
        await conn.close()
    assert len(rows) == len(dialled)
    for row in rows:
        assert row["pbx"] == "pbx2", dict(row)
        assert row["outcome"] == "answered" and row["agent"] in ("agent01", "agent02"), dict(row)
    seen = await far_end_calls(stack, pool, started, dialled)
    assert seen["pbx1"] == []
    assert sorted(dials_per_number(seen["pbx2"]).values()) == [1] * len(dialled)
