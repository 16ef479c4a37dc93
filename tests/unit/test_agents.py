"""The agent roster's state, from AMI events as Asterisk 22 sends them (recorded).

Pure state transitions, no AMI: a QueueStatus reply, then queue events. The
same roster against real Asterisk and sipp agents: tests/test_agents_asterisk.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.config import AmiConfig
from dialer_server.errors import AmiError
from dialer_server.telephony.ami import AmiClient
from dialer_server.telephony.roster import AgentRoster, AgentState

from ..support.fake_ami import FakeAmi

Q = "dialer-agents"


def _member(
    name: str, status: int, *, paused: bool = False, in_call: bool = False
) -> dict[str, str]:
    """A QueueMember message of a QueueStatus reply (its header names: Name, Location)."""
    return {
        "Event": "QueueMember",
        "Queue": Q,
        "Name": name,
        "Location": f"PJSIP/{name}",
        "StateInterface": f"PJSIP/{name}",
        "Membership": "static",
        "Penalty": "0",
        "CallsTaken": "0",
        "InCall": "1" if in_call else "0",
        "Status": str(status),
        "Paused": "1" if paused else "0",
        "PausedReason": "",
        "Wrapuptime": "0",
        "ActionID": "action/x/1/2",
    }


def _status(
    name: str, status: int, *, paused: bool = False, in_call: bool = False
) -> dict[str, str]:
    """A QueueMemberStatus event (header names: MemberName, Interface)."""
    return {
        "Event": "QueueMemberStatus",
        "Queue": Q,
        "MemberName": name,
        "Interface": f"PJSIP/{name}",
        "StateInterface": f"PJSIP/{name}",
        "Membership": "static",
        "InCall": "1" if in_call else "0",
        "Status": str(status),
        "Paused": "1" if paused else "0",
    }


def _agent_event(kind: str, name: str) -> dict[str, str]:
    return {
        "Event": kind,
        "Queue": Q,
        "MemberName": name,
        "Interface": f"PJSIP/{name}",
        "Uniqueid": "attempt-1",
        "Channel": "PJSIP/carrier-00000001",
    }


def _reply(*members: dict[str, str], queues: tuple[str, ...] = (Q,)) -> list[dict[str, str]]:
    messages = [
        {"Response": "Success", "EventList": "start", "Message": "Queue status will follow"}
    ]
    messages += [{"Event": "QueueParams", "Queue": q, "Strategy": "leastrecent"} for q in queues]
    messages += list(members)
    messages.append({"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": "3"})
    return messages


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _roster(*members: dict[str, str], wrapup_s: float = 0.0) -> tuple[AgentRoster, Clock]:
    clock = Clock()
    roster = AgentRoster(wrapup_s=wrapup_s, clock=clock)
    roster.load_status(_reply(*members))
    return roster, clock


def test_status_reply_gives_each_member_and_who_is_free() -> None:
    roster, _ = _roster(
        _member("agent01", 1),
        _member("agent02", 5),
        _member("agent03", 2),
        _member("agent04", 1, paused=True),
        _member("agent05", 6),
        _member("agent06", 0),
    )
    assert roster.queues() == [Q]
    assert roster.free_agents(Q) == ["agent01"]
    assert [(m.name, m.status) for m in roster.members(Q)] == [
        ("agent01", "free"),
        ("agent02", "unavailable"),
        ("agent03", "busy"),
        ("agent04", "paused"),
        ("agent05", "ringing"),
        ("agent06", "unavailable"),
    ]
    assert roster.members(Q)[0] == AgentState("agent01", "PJSIP/agent01", Q, "free", False, False)
    assert roster.members("other") == []
    assert roster.free_agents("other") == []


def test_a_queue_with_no_members_is_known() -> None:
    roster = AgentRoster()
    roster.load_status(_reply(queues=("sales", Q)))
    assert roster.queues() == ["dialer-agents", "sales"]
    assert roster.free_agents("sales") == []


def test_member_logs_in_and_out_by_device_state() -> None:
    roster, _ = _roster(_member("agent01", 5))
    assert roster.free_agents(Q) == []
    roster.handle_event(_status("agent01", 1))
    assert roster.free_agents(Q) == ["agent01"]
    roster.handle_event(_status("agent01", 5))
    assert roster.members(Q)[0].status == "unavailable"


def test_call_through_the_queue_rings_then_busy_then_free_after_wrapup() -> None:
    roster, clock = _roster(_member("agent01", 1), _member("agent02", 1), wrapup_s=1.0)
    roster.handle_event(_agent_event("AgentCalled", "agent01"))
    assert roster.free_agents(Q) == ["agent02"]
    assert roster.members(Q)[0].status == "ringing"
    # The order Asterisk 22 sends them in, for an auto-answering phone.
    roster.handle_event(_status("agent01", 2))
    roster.handle_event(_agent_event("AgentConnect", "agent01"))
    first = roster.members(Q)[0]
    assert (first.status, first.in_call) == ("busy", True)
    roster.handle_event(_agent_event("AgentComplete", "agent01"))
    roster.handle_event(_status("agent01", 1))
    assert roster.members(Q)[0].status == "wrapup"
    assert roster.free_agents(Q) == ["agent02"]
    clock.now += 1.0
    assert roster.free_agents(Q) == ["agent01", "agent02"]


def test_unanswered_ring_frees_the_agent_again() -> None:
    roster, _ = _roster(_member("agent01", 1))
    roster.handle_event(_agent_event("AgentCalled", "agent01"))
    roster.handle_event(_agent_event("AgentRingNoAnswer", "agent01"))
    assert roster.free_agents(Q) == ["agent01"]
    roster.handle_event(_agent_event("AgentCalled", "agent01"))
    roster.handle_event(_agent_event("AgentDump", "agent01"))
    assert roster.free_agents(Q) == ["agent01"]


def test_a_ring_the_caller_gave_up_on_ends_with_the_device_state() -> None:
    roster, _ = _roster(_member("agent01", 1))
    roster.handle_event(_agent_event("AgentCalled", "agent01"))
    roster.handle_event(_status("agent01", 6))
    assert roster.members(Q)[0].status == "ringing"
    # The caller hung up while the phone rang: no Agent* event, only the phone going idle.
    roster.handle_event(_status("agent01", 1))
    assert roster.free_agents(Q) == ["agent01"]


def test_pause_and_unpause() -> None:
    roster, _ = _roster(_member("agent01", 1))
    pause = {**_status("agent01", 1, paused=True), "Event": "QueueMemberPause"}
    roster.handle_event(pause)
    member = roster.members(Q)[0]
    assert (member.status, member.paused) == ("paused", True)
    assert roster.free_agents(Q) == []
    roster.handle_event({**pause, "Paused": "0"})
    assert roster.free_agents(Q) == ["agent01"]


def test_members_added_and_removed_at_run_time() -> None:
    roster, _ = _roster()
    roster.handle_event({**_status("agent09", 1), "Event": "QueueMemberAdded"})
    assert roster.free_agents(Q) == ["agent09"]
    roster.handle_event({"Event": "QueueMemberRemoved", "Queue": Q, "MemberName": "agent09"})
    assert roster.members(Q) == []
    # A member of a queue we had not heard of makes the queue known.
    roster.handle_event({**_status("agent01", 1), "Queue": "sales", "Event": "QueueMemberAdded"})
    assert roster.queues() == ["dialer-agents", "sales"]


def test_events_of_unknown_members_and_bad_events_change_nothing() -> None:
    roster, _ = _roster(_member("agent01", 1))
    calls: list[int] = []
    roster.on_change.append(lambda: calls.append(1))
    roster.handle_event(_agent_event("AgentConnect", "agent77"))
    roster.handle_event({"Event": "QueueMemberStatus", "Queue": Q})
    roster.handle_event({"Event": "QueueMemberStatus", "MemberName": "agent01"})
    roster.handle_event({**_status("agent01", 1), "Status": "garbage"})
    roster.handle_event({"Event": "Hangup", "Uniqueid": "x"})
    assert calls == [1]  # only the well-formed (if odd) status event
    assert roster.members(Q)[0].status == "unavailable"  # an unreadable state is not free


def test_on_change_runs_after_each_change_and_a_failing_callback_is_contained() -> None:
    roster, _ = _roster(_member("agent01", 2))
    calls: list[str] = []

    def failing() -> None:
        raise RuntimeError("boom")

    roster.on_change.extend([failing, lambda: calls.append("woken")])
    roster.handle_event(_status("agent01", 1))
    assert calls == ["woken"]


def test_a_new_status_reply_replaces_the_roster_but_keeps_wrapup() -> None:
    roster, clock = _roster(_member("agent01", 1), _member("agent02", 1), wrapup_s=5.0)
    roster.handle_event(_agent_event("AgentComplete", "agent01"))
    roster.load_status(_reply(_member("agent01", 1), _member("agent03", 1)))
    assert [(m.name, m.status) for m in roster.members(Q)] == [
        ("agent01", "wrapup"),
        ("agent03", "free"),
    ]
    clock.now += 5.0
    assert roster.free_agents(Q) == ["agent01", "agent03"]


_NAMES = ["agent01", "agent02", "agent03"]
_EVENTS = st.one_of(
    st.builds(
        _status,
        st.sampled_from(_NAMES),
        st.integers(min_value=0, max_value=8),
        paused=st.booleans(),
        in_call=st.booleans(),
    ),
    st.builds(
        _agent_event,
        st.sampled_from(
            ["AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump"]
        ),
        st.sampled_from([*_NAMES, "agent99"]),
    ),
    st.builds(
        lambda name: {"Event": "QueueMemberRemoved", "Queue": Q, "MemberName": name},
        st.sampled_from(_NAMES),
    ),
)


@given(st.lists(_EVENTS, max_size=30))
def test_any_event_sequence_ends_with_the_last_device_state_deciding(
    events: list[dict[str, str]],
) -> None:
    roster, clock = _roster(*(_member(n, 1) for n in _NAMES), wrapup_s=1.0)
    for event in events:
        roster.handle_event(event)
    clock.now += 1.0  # past any wrap-up
    free = set(roster.free_agents(Q))
    for member in roster.members(Q):
        assert (member.name in free) == (member.status == "free")
        if member.status == "free":
            assert not member.paused and not member.in_call
    # Whatever came before, a fresh idle state from each phone makes everyone free.
    for name in _NAMES:
        roster.handle_event(_status(name, 1))
    assert roster.free_agents(Q) == _NAMES


# --- sync over an AMI link (the fake server: a reply and events on demand) ------------


class _QueueStatusAmi(FakeAmi):
    """Answers QueueStatus with a recorded reply; sends events in the middle of it."""

    def __init__(self, members: list[dict[str, str]], during: list[dict[str, str]]) -> None:
        super().__init__()
        self.members = members
        self.during = during

    def _reply(self, writer: Any, action: dict[str, str]) -> None:
        if action.get("action", "").lower() != "queuestatus":
            super()._reply(writer, action)
            return
        action_id = action.get("actionid", "")
        for message in _reply(*self.members):
            # An event that happened while Asterisk wrote the reply: no ActionID.
            if message.get("Event") == "QueueStatusComplete":
                for event in self.during:
                    writer.write(_block(event))
            writer.write(_block({**message, "ActionID": action_id}))


def _block(headers: dict[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


async def _synced(fake: FakeAmi) -> tuple[AgentRoster, asyncio.Event, asyncio.Future[Any]]:
    await fake.start()
    ami = AmiClient(
        AmiConfig(
            host="127.0.0.1",
            port=fake.port,
            secret=fake.secret,
            reconnect_min_s=0.05,
            reconnect_max_s=0.1,
            ping_interval_s=5,
        )
    )
    roster = AgentRoster(ami)
    stop = asyncio.Event()
    task = asyncio.gather(ami.run(stop), roster.run(stop))
    await _until(lambda: roster.ready)
    return roster, stop, task


async def _until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_sync_on_connect_replays_events_that_came_during_the_reply() -> None:
    fake = _QueueStatusAmi(
        [_member("agent01", 1), _member("agent02", 1)],
        # agent02 took a call while the reply was being written.
        during=[_status("agent02", 2)],
    )
    roster, stop, task = await _synced(fake)
    try:
        assert roster.free_agents(Q) == ["agent01"]
        assert [m.status for m in roster.members(Q)] == ["free", "busy"]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.stop()


class _RefusingAmi(FakeAmi):
    """An AMI user without the "agent" class: QueueStatus is refused."""

    def _reply(self, writer: Any, action: dict[str, str]) -> None:
        if action.get("action", "").lower() == "queuestatus":
            block = {"Response": "Error", "Message": "Permission denied"}
            writer.write(_block({**block, "ActionID": action.get("actionid", "")}))
            return
        super()._reply(writer, action)


async def test_a_refused_queue_status_leaves_the_roster_not_ready() -> None:
    fake = _RefusingAmi()
    await fake.start()
    ami = AmiClient(AmiConfig(host="127.0.0.1", port=fake.port, secret=fake.secret))
    roster = AgentRoster(ami)
    stop = asyncio.Event()
    task = asyncio.create_task(ami.run(stop))
    try:
        await ami.wait_connected(5)
        with pytest.raises(AmiError, match="QueueStatus refused: Permission denied"):
            await roster.sync()
        assert not roster.ready
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.stop()


async def test_roster_is_not_ready_while_ami_is_down_and_resyncs_after() -> None:
    fake = _QueueStatusAmi([_member("agent01", 1)], during=[])
    roster, stop, task = await _synced(fake)
    try:
        syncs = len(fake.named("queuestatus"))
        fake.members = [_member("agent01", 5), _member("agent02", 1)]
        fake.drop()
        await _until(lambda: not roster.ready)
        await _until(lambda: roster.ready)
        assert len(fake.named("queuestatus")) == syncs + 1
        assert roster.free_agents(Q) == ["agent02"]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.stop()
