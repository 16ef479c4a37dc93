"""Agents through real Asterisk: the queue, the [dialer-agents] dialplan and the roster.

sipp agents (tests/agents.py) register as the queue's members agent01...; the
far end (scripts/sipp/farend.xml) answers the dialled number and holds the line
(...205 for 5 s, ...230 for 30 s, ...201 hangs up after 1 s). Each call is
originated like the dialer does (ChannelId = attempt id) into [dialer-agents],
whose UserEvents (DialerAgent, DialerAbandon) are what the dialer learns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dialer_server.telephony.ami import AmiClient
from dialer_server.telephony.roster import AgentRoster

from ..support.sipp_agents import QUEUE, SippAgents, TalkTime

HOLD_30S = "12025550230"
HANGS_UP_AFTER_1S = "12025550201"
# With audio, for AMD: a person saying "Hello?" (hangs up after 5 s), a machine's greeting.
PERSON = "12025550401"
MACHINE = "12025550402"

pytestmark = pytest.mark.stack


class Calls:
    """The UserEvents and Hangups of the calls a test originates, by attempt id."""

    def __init__(self, ami: AmiClient) -> None:
        self.ami = ami
        self.reports: dict[str, list[dict[str, str]]] = {}
        self.originated: set[str] = set()
        self.amd: dict[str, str] = {}
        self.hung_up: set[str] = set()
        ami.subscribe(self._event)

    def _event(self, event: Any) -> None:
        name = event.get("Event")
        if name == "UserEvent" and event.get("UserEvent") in ("DialerAgent", "DialerAbandon"):
            attempt = str(event.get("AttemptId"))
            self.reports.setdefault(attempt, []).append(
                {k: str(v) for k, v in event.items() if k in _REPORT_HEADERS}
            )
        elif name == "UserEvent" and event.get("UserEvent") == "DialerAmd":
            self.amd[str(event.get("AttemptId"))] = str(event.get("Status"))
        elif name == "Hangup" and event.get("Uniqueid") in self.originated:
            self.hung_up.add(str(event.get("Uniqueid")))

    async def originate(self, number: str, **variables: str) -> str:
        attempt = str(uuid.uuid4())
        self.originated.add(attempt)
        await self.ami.send_action(
            {
                "Action": "Originate",
                "Channel": f"PJSIP/{number}@carrier",
                "Context": "dialer-agents",
                "Exten": "s",
                "Priority": "1",
                "ChannelId": attempt,
                "Async": "true",
                "Timeout": "15000",
                "Variable": [f"DIALER_ATTEMPT_ID={attempt}"]
                + [f"{k}={v}" for k, v in variables.items()],
            },
            20,
        )
        return attempt

    async def report(self, attempt: str, timeout: float = 15) -> dict[str, str]:
        await _until(lambda: attempt in self.reports, timeout)
        return self.reports[attempt][0]

    async def ended(self, attempt: str, timeout: float = 45) -> list[dict[str, str]]:
        """Every report of the call, once it hung up."""
        await _until(lambda: attempt in self.hung_up, timeout)
        return self.reports.get(attempt, [])


_REPORT_HEADERS = ("UserEvent", "AttemptId", "Agent", "Waited", "Reason")


async def _until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def ami(stack: Any) -> AsyncIterator[tuple[AmiClient, AgentRoster, Calls]]:
    client = AmiClient(stack.ami_config())
    roster = AgentRoster(client)
    calls = Calls(client)
    stop = asyncio.Event()
    tasks = asyncio.gather(client.run(stop), roster.run(stop))
    await _until(lambda: roster.ready)
    yield client, roster, calls
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(tasks, 10)


@pytest.fixture
async def agents(stack: Any) -> AsyncIterator[SippAgents]:
    async with SippAgents(TalkTime(min_s=2.0)) as phones:
        yield phones


def _statuses(roster: AgentRoster) -> dict[str, str]:
    return {m.name: m.status for m in roster.members(QUEUE)}


def _messages_log() -> str:
    """Asterisk's messages.log of the test stack (inside the chroot, see scripts/stack)."""
    cache = os.environ.get("DIALER_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dialer-server"
    )
    rootfs = Path(os.environ.get("ASTERISK_ROOTFS") or Path(cache) / "asterisk-rootfs")
    stack = os.environ.get("TEST_STACK_NAME", "test")
    return (rootfs / "dialer-stacks" / stack / "log" / "messages.log").read_text(errors="replace")


async def test_registered_agents_are_free_and_unregistered_ones_unavailable(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    _, roster, _ = ami
    assert QUEUE in roster.queues()
    await agents.register(3)
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01", "agent02", "agent03"])
    assert _statuses(roster)["agent04"] == "unavailable"
    await agents.unregister(["agent02"])
    await _until(lambda: _statuses(roster)["agent02"] == "unavailable")
    assert roster.free_agents(QUEUE) == ["agent01", "agent03"]


async def test_a_fresh_roster_reads_who_is_registered_from_queue_status(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    client, roster, _ = ami
    await agents.register(2)
    await _until(lambda: len(roster.free_agents(QUEUE)) == 2)
    # A second roster on the same link syncs from QueueStatus alone.
    fresh = AgentRoster(client)
    assert not fresh.ready
    await fresh.sync()
    assert fresh.ready
    assert fresh.free_agents(QUEUE) == ["agent01", "agent02"]
    assert _statuses(fresh)["agent03"] == "unavailable"


async def test_answered_call_is_taken_by_a_free_agent_who_is_busy_then_free(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    _, roster, calls = ami
    await agents.register(1)
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])
    attempt = await calls.originate(HOLD_30S)
    report = await calls.report(attempt)
    assert report["UserEvent"] == "DialerAgent"
    assert report["AttemptId"] == attempt
    assert report["Agent"] == "agent01"
    assert 0 <= float(report["Waited"]) < 2
    await _until(lambda: _statuses(roster)["agent01"] == "busy")
    member = roster.members(QUEUE)[0]
    assert member.in_call
    assert roster.free_agents(QUEUE) == []
    # The agent talks 2 s and hangs up: free again at once (no wrap-up time).
    assert await calls.ended(attempt) == [report]
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])


async def test_caller_nobody_takes_is_abandoned_after_the_grace_time_and_hears_the_message(
    ami: tuple[AmiClient, AgentRoster, Calls],
) -> None:
    _, roster, calls = ami
    # The only agent talks 6 s: busy for the whole of the next caller's grace time.
    async with SippAgents(TalkTime(min_s=6.0)) as agents:
        await agents.register(1)
        await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])
        taken = await calls.originate(HOLD_30S)
        assert (await calls.report(taken))["Agent"] == "agent01"
        await _until(lambda: roster.free_agents(QUEUE) == [])
        waiting = await calls.originate(HOLD_30S)
        report = await calls.report(waiting)
        assert report["UserEvent"] == "DialerAbandon"
        assert report["AttemptId"] == waiting
        assert report["Reason"] == "TIMEOUT"
        assert float(report["Waited"]) >= 2.0
        assert await calls.ended(waiting) == [report]
        assert (
            f"dialer attempt {waiting} abandoned (TIMEOUT): message please-try-call-later SUCCESS"
            in _messages_log()
        )
        assert len(await calls.ended(taken)) == 1


async def test_grace_time_and_message_are_the_campaigns_when_set(
    ami: tuple[AmiClient, AgentRoster, Calls],
) -> None:
    _, roster, calls = ami
    # Nobody logged in at all.
    await _until(lambda: roster.free_agents(QUEUE) == [])
    attempt = await calls.originate(
        HOLD_30S, DIALER_AGENT_WAIT_S="0.5", DIALER_ABANDON_MESSAGE="beep"
    )
    report = await calls.report(attempt)
    assert (report["UserEvent"], report["Reason"]) == ("DialerAbandon", "TIMEOUT")
    assert float(report["Waited"]) >= 0.5
    assert await calls.ended(attempt) == [report]
    assert f"dialer attempt {attempt} abandoned (TIMEOUT): message beep SUCCESS" in _messages_log()


async def test_a_queue_that_does_not_exist_abandons_at_once(
    ami: tuple[AmiClient, AgentRoster, Calls],
) -> None:
    _, _, calls = ami
    attempt = await calls.originate(HOLD_30S, DIALER_QUEUE="no-such-queue")
    report = await calls.report(attempt)
    assert (report["UserEvent"], report["Reason"]) == ("DialerAbandon", "UNKNOWN")
    assert float(report["Waited"]) < 2
    assert await calls.ended(attempt) == [report]


async def test_callee_hanging_up_before_an_agent_is_an_abandon_with_reason_hangup(
    ami: tuple[AmiClient, AgentRoster, Calls],
) -> None:
    _, _, calls = ami
    # The callee hangs up after 1 s, within the 5 s grace time, nobody logged in.
    attempt = await calls.originate(HANGS_UP_AFTER_1S, DIALER_AGENT_WAIT_S="5")
    reports = await calls.ended(attempt)
    assert len(reports) == 1
    assert (reports[0]["UserEvent"], reports[0]["Reason"]) == ("DialerAbandon", "HANGUP")
    assert 0.5 < float(reports[0]["Waited"]) < 5


async def test_paused_agent_is_not_free_and_gets_no_call(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    client, roster, calls = ami
    await agents.register(2)
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01", "agent02"])
    pause = {"Action": "QueuePause", "Queue": QUEUE, "Interface": "PJSIP/agent01"}
    await client.send_action({**pause, "Paused": "true", "Reason": "lunch"})
    try:
        await _until(lambda: _statuses(roster)["agent01"] == "paused")
        assert roster.members(QUEUE)[0].paused
        assert roster.free_agents(QUEUE) == ["agent02"]
        attempt = await calls.originate(HOLD_30S)
        assert (await calls.report(attempt))["Agent"] == "agent02"
        assert len(await calls.ended(attempt)) == 1
    finally:
        await client.send_action({**pause, "Paused": "false"})
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01", "agent02"])


async def test_personal_callback_rings_the_one_agent_named(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    _, roster, calls = ami
    await agents.register(3)
    await _until(lambda: len(roster.free_agents(QUEUE)) == 3)
    attempt = await calls.originate(HOLD_30S, DIALER_AGENT="PJSIP/agent03")
    report = await calls.report(attempt)
    assert (report["UserEvent"], report["Agent"]) == ("DialerAgent", "agent03")
    await _until(lambda: _statuses(roster)["agent03"] == "busy")
    assert len(await calls.ended(attempt)) == 1
    # An agent who is not logged in cannot be rung: abandoned at once, saying why.
    gone = await calls.originate(HOLD_30S, DIALER_AGENT="PJSIP/agent09")
    report = await calls.report(gone)
    assert (report["UserEvent"], report["Reason"]) == ("DialerAbandon", "CHANUNAVAIL")
    assert await calls.ended(gone) == [report]


async def test_with_amd_a_person_reaches_an_agent_and_a_machine_no_one(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    _, roster, calls = ami
    await agents.register(1)
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])
    person = await calls.originate(PERSON, DIALER_AMD="1")
    machine = await calls.originate(MACHINE, DIALER_AMD="1")
    report = await calls.report(person)
    assert (report["UserEvent"], report["Agent"]) == ("DialerAgent", "agent01")
    assert calls.amd[person] == "HUMAN"
    # Waiting counts from the queue, after AMD's verdict.
    assert float(report["Waited"]) < 2
    # The machine is hung up by [dialer-amd]: its DialerAmd is its only report.
    assert await calls.ended(machine) == []
    assert calls.amd[machine] == "MACHINE"
    assert len(await calls.ended(person)) == 1


async def test_roster_is_unknown_while_asterisk_is_down_and_read_again_after(
    stack: Any, ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    client, roster, _ = ami
    await agents.register(2)
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01", "agent02"])
    stack.run("asterisk-kill")
    try:
        await _until(lambda: not roster.ready)
    finally:
        stack.run("asterisk-start")
    await _until(lambda: roster.ready, timeout=30)
    # What it knows now is what Asterisk says after its restart, not what it knew.
    fresh = AgentRoster(client)
    await fresh.sync()
    assert roster.members(QUEUE) == fresh.members(QUEUE)
    # Phones register again after a PBX restart; the roster follows.
    await agents.register(["agent01", "agent02"])
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01", "agent02"])


async def test_the_call_cap_holds_once_an_agent_took_the_call(
    ami: tuple[AmiClient, AgentRoster, Calls],
) -> None:
    _, roster, calls = ami
    # An agent who would talk 60 s; the campaign caps calls at 3 s.
    async with SippAgents(TalkTime(min_s=60.0)) as talkative:
        await talkative.register(1)
        await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])
        attempt = await calls.originate(HOLD_30S, DIALER_MAX_CALL_S="3")
        report = await calls.report(attempt)
        assert (report["UserEvent"], report["Agent"]) == ("DialerAgent", "agent01")
        # Hung up by the cap (counted from the agent's answer), well before either side.
        assert await calls.ended(attempt, timeout=20) == [report]
        await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])


async def test_a_burst_of_answered_calls_gets_exactly_one_report_each(
    ami: tuple[AmiClient, AgentRoster, Calls],
) -> None:
    _, roster, calls = ami
    # Agents talk 5 s: none is free again while the callers they could not take wait.
    async with SippAgents(TalkTime(min_s=5.0)) as agents:
        await agents.register(3)
        await _until(lambda: len(roster.free_agents(QUEUE)) == 3)
        attempts = await asyncio.gather(*(calls.originate(HOLD_30S) for _ in range(10)))
        reports = [await calls.ended(attempt) for attempt in attempts]
    assert all(len(r) == 1 for r in reports), reports
    taken = [r[0] for r in reports if r[0]["UserEvent"] == "DialerAgent"]
    abandoned = [r[0] for r in reports if r[0]["UserEvent"] == "DialerAbandon"]
    # Three callers reach the three agents at once (autofill); the others time out.
    assert {r["Agent"] for r in taken} == {"agent01", "agent02", "agent03"}
    assert len(taken) == 3
    assert len(abandoned) == 7
    assert {r["Reason"] for r in abandoned} == {"TIMEOUT"}


async def test_an_agent_freed_late_in_the_grace_time_still_gets_the_waiting_callee(
    ami: tuple[AmiClient, AgentRoster, Calls], agents: SippAgents
) -> None:
    client, roster, calls = ami
    await agents.register(1)
    await _until(lambda: roster.free_agents(QUEUE) == ["agent01"])
    pause = {"Action": "QueuePause", "Queue": QUEUE, "Interface": "PJSIP/agent01"}
    await client.send_action({**pause, "Paused": "true"})
    try:
        await _until(lambda: roster.free_agents(QUEUE) == [])
        attempt = await calls.originate(HOLD_30S)
        # Past the queue's own 1 s retry, within the 2 s grace time.
        await asyncio.sleep(1.4)
        await client.send_action({**pause, "Paused": "false"})
        report = await calls.report(attempt)
        assert (report["UserEvent"], report["Agent"]) == ("DialerAgent", "agent01")
        assert 1.4 <= float(report["Waited"]) < 2
    finally:
        await client.send_action({**pause, "Paused": "false"})
    assert len(await calls.ended(attempt)) == 1
