"""The acceptance's chaos run, smaller: daemons killed with kill -9 while calls ring
and while they are answered, a second daemon on the same database for part of
the run, and the far end counting what reached it on its own.

What must hold, whatever the kills hit:

- no contact dangling: Asterisk stayed up, so it knows how every call ended;
- every answered call recorded answered, and never dialled again;
- zero double dials: the far end received exactly one INVITE per attempt row;
- no contact over its cap, no contact in two calls at once;
- the campaign's line limit held, on Asterisk's own channel list.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.telephony.ami import AmiClient

from ..support.campaign_setup import add_campaign, wait_campaign_state
from ..support.daemon_process import DaemonProcess, start_daemon
from ..support.far_end import settled_invites_received

pytestmark = pytest.mark.stack

LINES = 20
CAP = 2
STRATEGY = {
    "name": "chaos",
    "version": 1,
    "caps": {"per_contact": CAP},
    "on": {
        "busy": {"action": "retry", "delay_s": 1},
        "no_answer": {"action": "retry", "delay_s": 1},
        "rejected": {"action": "close", "state": "not_connected", "status": "declined"},
    },
    "attempts": [{"phone": 1, "ring_timeout_s": 15, "max_tries": CAP}],
}
# The far end's behaviour (scripts/sipp/farend.xml), how many contacts, the outcome.
BEHAVIOURS = {
    "205": (36, "answered"),  # answers, talks 5 s
    "210": (8, "answered"),  # answers, talks 10 s
    "181": (28, "no_answer"),  # rings 2 s, then 480
    "180": (6, "no_answer"),  # rings until the 15 s ring timeout
    "486": (16, "busy"),
    "603": (8, "rejected"),
}


def contacts() -> list[list[str | None]]:
    """One contact per far-end call, the behaviours interleaved: claims take the
    oldest first, and every kill should find calls ringing and calls talking."""
    numbers = [
        [f"1{2 + n % 7}0{n:05d}{suffix}" for n in range(count)]
        for suffix, (count, _) in BEHAVIOURS.items()
    ]
    longest = max(len(group) for group in numbers)
    return [[group[i]] for i in range(longest) for group in numbers if i < len(group)]


class LineSampler:
    """The campaign's calls on Asterisk's own channel list, sampled every 50 ms."""

    def __init__(self, stack: Any, url: str, campaign_id: int) -> None:
        self.ami = AmiClient(stack.ami_config())
        self.url = url
        self.campaign_id = campaign_id
        self.most = 0
        self.samples = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> LineSampler:
        self._tasks.append(asyncio.create_task(self.ami.run(self._stop), name="sampler-ami"))
        await self.ami.wait_connected(10)
        self._tasks.append(asyncio.create_task(self._sample(), name="sampler"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        ami, sampler = self._tasks
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        self._stop.set()
        await asyncio.wait_for(ami, 10)

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while True:
                reply = await self.ami.send_action({"Action": "CoreShowChannels"})
                up = {m.get("Uniqueid") for m in reply if m.get("Event") == "CoreShowChannel"}
                ours = await conn.fetchval(
                    "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND id::text = ANY ($2)",
                    self.campaign_id,
                    list(up - {None}),
                )
                self.most = max(self.most, ours)
                self.samples += 1
                await asyncio.sleep(0.05)
        finally:
            await conn.close()


async def calls_of(url: str, daemon: DaemonProcess) -> dict[str, int]:
    """The daemon's open attempts by state: sent (ringing), answered (talking)."""
    (instance_id,) = [e["instance_id"] for e in daemon.logs() if e.get("action") == "start"]
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT state, count(*) FROM attempts
               WHERE instance_id = $1 AND state <> 'ended' GROUP BY state""",
            instance_id,
        )
    finally:
        await conn.close()
    return {r["state"]: r["count"] for r in rows}


async def test_kill_9_while_calls_ring_and_talk_loses_nothing_and_dials_nothing_twice(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn,
            "chaos",
            STRATEGY,
            contacts(),
            max_concurrent_calls=LINES,
            max_calls_per_second=20,
            start=False,
        )
    finally:
        await conn.close()
    invites_before = await settled_invites_received(stack.env["PBX1_DIR"])
    daemons: list[DaemonProcess] = []

    async def start(name: str) -> DaemonProcess:
        daemon = await asyncio.to_thread(
            start_daemon, stack, database_url, tmp_path / f"{name}.log"
        )
        daemons.append(daemon)
        return daemon

    async def kill(daemon: DaemonProcess) -> dict[str, int]:
        # What the kill hits: calls ringing (sent) and calls talking (answered).
        hit = await calls_of(database_url, daemon)
        daemon.proc.kill()
        await asyncio.to_thread(daemon.proc.wait)
        return hit

    hits = []
    async with LineSampler(stack, database_url, campaign_id) as lines:
        try:
            first = await start("first")
            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(
                    "UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id
                )
            finally:
                await conn.close()
            await asyncio.sleep(1.5)
            hits.append(await kill(first))
            await asyncio.sleep(2)  # calls end with no daemon to see them
            second = await start("second")
            await asyncio.sleep(4)
            other = await start("other")  # two daemons on one database
            await asyncio.sleep(3)
            hits.append(await kill(second))  # the other daemon takes its calls over
            await asyncio.sleep(1.5)
            third = await start("third")
            await asyncio.sleep(4)
            hits.append(await kill(other))
            await wait_campaign_state(
                database_url, campaign_id, "completed", timeout=150, alive=third.alive
            )
        finally:
            for daemon in daemons:
                daemon.close()
    invites = await settled_invites_received(stack.env["PBX1_DIR"]) - invites_before

    conn = await asyncpg.connect(database_url)
    try:
        attempts = [
            dict(r)
            for r in await conn.fetch(
                """SELECT id, contact_id, number, state, outcome, result_source, created_at,
                          sent_at, ended_at
                   FROM attempts WHERE campaign_id = $1""",
                campaign_id,
            )
        ]
        contact_states = Counter(
            r["state"]
            for r in await conn.fetch(
                "SELECT state FROM contacts WHERE campaign_id = $1", campaign_id
            )
        )
        overlapping = await conn.fetchval(
            """SELECT count(*) FROM attempts a JOIN attempts b
                 ON a.contact_id = b.contact_id AND a.id < b.id
               WHERE a.campaign_id = $1
                 AND tstzrange(a.created_at, a.ended_at) && tstzrange(b.created_at, b.ended_at)""",
            campaign_id,
        )
    finally:
        await conn.close()

    print(
        f"chaos: {len(attempts)} attempts, {invites} INVITEs at the far end, at most "
        f"{lines.most} lines of {LINES} ({lines.samples} samples), kills hit {hits}, "
        f"results learned {dict(Counter(a['result_source'] for a in attempts))}"
    )
    # The kills hit calls talking, and calls ringing (near the end, fewer ring).
    assert all(h.get("answered") for h in hits), hits
    assert sum(1 for h in hits if h.get("sent")) >= 2, hits
    # Every attempt has an outcome; every contact is closed, none dangling.
    assert all(a["state"] == "ended" and a["outcome"] for a in attempts)
    assert contact_states["dangling"] == 0, contact_states
    assert sum(contact_states.values()) == sum(count for count, _ in BEHAVIOURS.values())
    # Each behaviour got its outcome, whoever saw the call end.
    for attempt in attempts:
        expected = BEHAVIOURS[attempt["number"][-3:]][1]
        assert attempt["outcome"] == expected, attempt
    # Answered calls: one per contact, never dialled again.
    by_contact = Counter(a["contact_id"] for a in attempts)
    for attempt in attempts:
        if attempt["outcome"] == "answered":
            assert by_contact[attempt["contact_id"]] == 1, attempt
    # Zero double dials, counted by the far end; nobody over the cap or in two calls.
    assert invites == len(attempts), (invites, len(attempts))
    assert max(by_contact.values()) <= CAP
    assert overlapping == 0
    # The line limit, on Asterisk's side; and sent_at never after ended_at.
    assert lines.samples > 100
    assert 0 < lines.most <= LINES, lines.most
    assert all(a["sent_at"] <= a["ended_at"] for a in attempts)
    # Some results came from the PBX's records: calls that ended with no daemon.
    assert any(a["result_source"] == "pbx" for a in attempts)
    assert not any(a["result_source"] == "lost" for a in attempts)
