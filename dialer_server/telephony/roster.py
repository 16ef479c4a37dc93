"""Who the agents are and who of them is free: the roster, fed by AMI queue events.

Agent campaigns pace their calls by the free agents of an Asterisk queue
(queues.conf). Asterisk owns that state; the roster mirrors it:

- after every AMI (re)connect, ``sync()`` asks for QueueStatus and rebuilds
  the whole roster from its QueueParams and QueueMember replies; events that
  arrive while the reply is on its way are replayed over it, in order (each
  carries a member's whole state, so the last one wins);
- then it follows the queue events: QueueMemberStatus (device state, paused
  and why, in call), QueueMemberAdded/Removed, QueueMemberPause, and the call events
  AgentCalled/AgentRingNoAnswer/AgentDump (ringing), AgentConnect (in call)
  and AgentComplete (the call ended: wrap-up for ``wrapup_s``, the queue's
  wrapuptime, 0 as shipped, during which Asterisk gives the agent no call).

``ready`` is false until the first sync after a connect, and again as soon as
the link drops: a dialer must not pace by a roster it cannot trust.
``on_change`` callbacks run after every change that may free an agent (and
after a sync), so a pacing loop can wake up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import AmiError
from .ami import AmiClient, AmiState, Event

logger = logging.getLogger(__name__)

# Asterisk device states (AST_DEVICE_*), the Status of queue member events.
_UNKNOWN, _NOT_INUSE, _INUSE, _BUSY, _INVALID, _UNAVAILABLE, _RINGING, _RINGINUSE, _ONHOLD = range(
    9
)
_RINGING_STATES = frozenset({_RINGING, _RINGINUSE})
_BUSY_STATES = frozenset({_INUSE, _BUSY, _ONHOLD})
# An unknown device state is not a phone we can count on: not free.
_ABSENT_STATES = frozenset({_UNKNOWN, _INVALID, _UNAVAILABLE})

FREE = "free"
BUSY = "busy"
RINGING = "ringing"
WRAPUP = "wrapup"
PAUSED = "paused"
UNAVAILABLE = "unavailable"

# Full member state: the event names the member and carries all its fields.
_MEMBER_EVENTS = frozenset(
    {"queuemember", "queuememberstatus", "queuememberadded", "queuememberpause"}
)
# How long to wait before asking for QueueStatus again after a failed sync.
_SYNC_RETRY_S = 1.0


@dataclasses.dataclass(frozen=True)
class AgentState:
    """One queue member as the roster knows it.

    ``status`` is "free" (ready for a call now), "busy" (on a call),
    "ringing", "wrapup" (just finished a call), "paused" or "unavailable"
    (phone not registered, or its state unknown).
    """

    name: str
    interface: str
    queue: str
    status: str
    paused: bool
    in_call: bool
    # Why the member is paused (QueuePause's Reason: a desk reason code, wrap-up).
    pause_reason: str = ""


@dataclasses.dataclass
class _Member:
    name: str
    interface: str
    queue: str
    device: int = _UNKNOWN
    paused: bool = False
    pause_reason: str = ""
    in_call: bool = False
    ringing: bool = False
    wrapup_until: float = 0.0

    def status(self, now: float) -> str:
        if self.device in _ABSENT_STATES:
            return UNAVAILABLE
        if self.paused:
            return PAUSED
        if self.ringing or self.device in _RINGING_STATES:
            return RINGING
        if self.in_call or self.device in _BUSY_STATES:
            return BUSY
        if now < self.wrapup_until:
            return WRAPUP
        return FREE


class AgentRoster:
    """The queues' members and their states, from AMI.

    Give it the AmiClient (it subscribes to events and connection changes) and
    run ``run(stop)`` as a supervised task: it syncs after every connect.
    ``clock`` (monotonic seconds) is only for tests of the wrap-up time.
    """

    def __init__(
        self,
        ami: AmiClient | None = None,
        *,
        wrapup_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ami = ami
        self.wrapup_s = wrapup_s
        self.on_change: list[Callable[[], None]] = []
        self._clock = clock
        self._queues: set[str] = set()
        self._members: dict[tuple[str, str], _Member] = {}
        self._ready = False
        # Events seen while a QueueStatus reply is on its way: replayed over it.
        self._buffer: list[Mapping[str, str]] | None = None
        self._sync_needed = asyncio.Event()
        self._wrapup_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        if ami is not None:
            ami.subscribe(self.handle_event)
            ami.on_state_change(self._ami_state_changed)

    # --- what the pacing reads -----------------------------------------------------
    @property
    def ready(self) -> bool:
        """Synced with Asterisk since the last AMI connect."""
        return self._ready

    def queues(self) -> list[str]:
        return sorted(self._queues)

    def members(self, queue: str) -> list[AgentState]:
        now = self._clock()
        return [
            AgentState(
                m.name, m.interface, m.queue, m.status(now), m.paused, m.in_call, m.pause_reason
            )
            for m in sorted(self._members.values(), key=lambda m: m.name)
            if m.queue == queue
        ]

    def agent(self, name: str) -> list[AgentState]:
        """The agent's memberships, one per queue they are in (empty: in no queue)."""
        return [m for queue in self.queues() for m in self.members(queue) if m.name == name]

    def free_agents(self, queue: str) -> list[str]:
        """Member names of ``queue`` ready for a call now (logged in, not paused, idle)."""
        return [m.name for m in self.members(queue) if m.status == FREE]

    # --- keeping it in step with Asterisk -----------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Sync after every AMI connect until ``stop`` is set."""
        assert self.ami is not None, "run() needs the AmiClient"
        if self.ami.connected:
            self._sync_needed.set()
        while not stop.is_set():
            waiter = asyncio.create_task(self._sync_needed.wait())
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            if stop.is_set():
                break
            self._sync_needed.clear()
            if not self.ami.connected:
                continue  # the next connect asks again
            try:
                await self.sync()
            except (TimeoutError, AmiError) as exc:
                logger.warning(
                    "queue status not read (%s); retrying",
                    exc or type(exc).__name__,
                    extra={"action": "agents_sync"},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _SYNC_RETRY_S)
                self._sync_needed.set()
        self._cancel_timers()

    async def sync(self) -> None:
        """Rebuild the roster from Asterisk's QueueStatus; ``ready`` once done.

        Raises AmiDisconnected or TimeoutError when the reply does not come;
        the roster is then left as it was (and not ready).
        """
        assert self.ami is not None, "sync() needs the AmiClient"
        self._buffer = []
        try:
            reply = await self.ami.send_action({"Action": "QueueStatus"})
        except BaseException:
            self._buffer = None
            raise
        buffered, self._buffer = self._buffer, None
        if not reply or reply[0].get("Response") != "Success":
            message = reply[0].get("Message") if reply else "no reply"
            raise AmiError(f"QueueStatus refused: {message} (is 'agent' in manager.conf's read?)")
        self.load_status(reply)
        for event in buffered:
            self._apply(event)
        self._ready = True
        logger.info(
            "agents synced: %d queues, %d members, %d free",
            len(self._queues),
            len(self._members),
            sum(len(self.free_agents(q)) for q in self._queues),
            extra={"action": "agents_sync"},
        )
        self._changed()

    def load_status(self, messages: Iterable[Mapping[str, str]]) -> None:
        """Replace the roster with a QueueStatus reply (its QueueParams and QueueMember)."""
        old = self._members
        self._queues = set()
        self._members = {}
        for message in messages:
            event = _lower(message)
            kind = event.get("event", "")
            if kind == "queueparams" and event.get("queue"):
                self._queues.add(event["queue"])
            elif kind == "queuemember":
                self._update_member(event)
        # Wrap-up is ours, not Asterisk's to report: keep it across a sync.
        for key, member in self._members.items():
            if key in old:
                member.wrapup_until = old[key].wrapup_until

    def handle_event(self, event: Event) -> None:
        """Follow one AMI event (an AmiClient subscriber); others are ignored."""
        if _lower_name(event) not in _HANDLED:
            return
        if self._buffer is not None:
            self._buffer.append(dict(event))
        if self._apply(event):
            self._changed()

    # --- state transitions ---------------------------------------------------------------
    def _apply(self, message: Mapping[str, str]) -> bool:
        """Apply one event; True when it may have changed who is free."""
        event = _lower(message)
        kind = event.get("event", "")
        queue = event.get("queue", "")
        if not queue:
            return False
        if kind in _MEMBER_EVENTS:
            self._queues.add(queue)
            return self._update_member(event) is not None
        name = event.get("membername") or event.get("name") or ""
        member = self._members.get((queue, name))
        if kind == "queuememberremoved":
            self._cancel_timer((queue, name))
            return self._members.pop((queue, name), None) is not None
        if member is None:
            return False
        if kind == "agentcalled":
            member.ringing = True
        elif kind in ("agentringnoanswer", "agentdump"):
            member.ringing = False
        elif kind == "agentconnect":
            member.ringing = False
            member.in_call = True
        elif kind == "agentcomplete":
            member.ringing = False
            member.in_call = False
            self._start_wrapup(member)
        return True

    def _update_member(self, event: Mapping[str, str]) -> _Member | None:
        queue = event.get("queue", "")
        name = event.get("membername") or event.get("name") or ""
        interface = event.get("interface") or event.get("location") or ""
        if not queue or not (name or interface):
            logger.warning(
                "queue member event without a member ignored: %s",
                event.get("event"),
                extra={"action": "agents_event"},
            )
            return None
        name = name or interface
        member = self._members.get((queue, name))
        if member is None:
            member = self._members[(queue, name)] = _Member(name, interface, queue)
        member.interface = interface or member.interface
        if "status" in event:
            member.device = _int(event["status"], _UNKNOWN)
            # The device's own state supersedes AgentCalled's "ringing" (which
            # only covers the moment before the phone reports it): a ring the
            # caller gave up on ends with no queue event but this one.
            member.ringing = False
        if "paused" in event:
            member.paused = event["paused"] == "1"
            if not member.paused:
                member.pause_reason = ""
        reason = event.get("pausedreason", event.get("reason"))
        if reason is not None and member.paused:
            member.pause_reason = reason
        if "incall" in event:
            member.in_call = event["incall"] == "1"
        return member

    def _start_wrapup(self, member: _Member) -> None:
        if self.wrapup_s <= 0:
            return
        member.wrapup_until = self._clock() + self.wrapup_s
        key = (member.queue, member.name)
        self._cancel_timer(key)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (pure-state tests): statuses still follow the clock
        # Nothing in AMI says wrap-up is over: wake the pacing when it is.
        self._wrapup_timers[key] = loop.call_later(self.wrapup_s, self._wrapup_over, key)

    def _wrapup_over(self, key: tuple[str, str]) -> None:
        self._wrapup_timers.pop(key, None)
        self._changed()

    def _cancel_timer(self, key: tuple[str, str]) -> None:
        timer = self._wrapup_timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _cancel_timers(self) -> None:
        for timer in self._wrapup_timers.values():
            timer.cancel()
        self._wrapup_timers.clear()

    def _changed(self) -> None:
        for callback in list(self.on_change):
            try:
                callback()
            except Exception:
                logger.exception("roster change callback failed", extra={"action": "agents"})

    def _ami_state_changed(self, state: AmiState) -> None:
        if state is AmiState.CONNECTED:
            self._sync_needed.set()
        elif self._ready:
            # Events are lost while the link is down: the next connect resyncs.
            self._ready = False
            logger.info("agents unknown until AMI is back", extra={"action": "agents_sync"})


_HANDLED = _MEMBER_EVENTS | {
    "queuememberremoved",
    "agentcalled",
    "agentringnoanswer",
    "agentdump",
    "agentconnect",
    "agentcomplete",
}


def _lower_name(event: Mapping[str, Any]) -> str:
    return str(event.get("Event") or event.get("event") or "").lower()


def _lower(message: Mapping[str, Any]) -> dict[str, str]:
    """Header names in lower case, values as strings; the event name in lower case too."""
    event = {str(k).lower(): str(v).strip() for k, v in message.items()}
    event["event"] = event.get("event", "").lower()
    return event


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default
