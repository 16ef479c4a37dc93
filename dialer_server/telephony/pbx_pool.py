"""The PBXs a daemon dials through: one AMI connection and one agent roster each.

The pool is the config's (``Config.pool``: the ``[[pbx]]`` tables, or one PBX from
``[ami]``), in its order. Each PBX has its own ``AmiClient`` (its reconnects, its
watchdog) and its own ``AgentRoster``; a PBX is up exactly while its AMI connection
is logged in, and ``down_since`` says since when it is not (from the daemon's start
for a PBX never reached). Events of every PBX reach the same subscribers: a call's
events name its attempt (the ChannelId), whatever PBX it is on.

A queue lives on one PBX (``queue_home``): the first of the pool whose roster has
members of the queue logged in (a phone registered), else the first that has the
queue at all (in a pool of one, that one). ``PoolRoster`` answers the agent pacing's
and the desk's questions about a queue from its home's roster, so agent campaigns
pace by, and place their calls on, the PBX where their agents are. An agent is
acted on (QueueAdd, QueuePause...) through the PBX their phone is logged in to
(``agent_home``, ``for_agent``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..config import Config, PbxConfig
from ..errors import AmiDisconnected
from .ami import ActionObserver, AmiClient, AmiState, EventHandler
from .roster import UNAVAILABLE, AgentRoster, AgentState


@dataclasses.dataclass(eq=False)
class Pbx:
    config: PbxConfig
    ami: AmiClient
    roster: AgentRoster
    # When its AMI connection was last lost (wall clock), or the pool was made.
    down_since: datetime

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def up(self) -> bool:
        return self.ami.connected


class PbxPool:
    """Every PBX of the daemon's config, with an AMI client and a roster each."""

    def __init__(self, config: Config) -> None:
        now = datetime.now(UTC)
        self._pbxs = [
            Pbx(
                pbx,
                ami := AmiClient(pbx.ami(config.ami)),
                AgentRoster(ami, wrapup_s=config.dialing.agent_wrapup_s),
                now,
            )
            for pbx in config.pool
        ]
        self._by_name = {pbx.name: pbx for pbx in self._pbxs}
        for pbx in self._pbxs:
            pbx.ami.on_state_change(_down_since_follower(pbx))
        self.roster = PoolRoster(self)

    def __iter__(self) -> Iterator[Pbx]:
        return iter(self._pbxs)

    def __len__(self) -> int:
        return len(self._pbxs)

    @property
    def first(self) -> Pbx:
        """The pool's first PBX: where attempts from before the pool are reconciled."""
        return self._pbxs[0]

    @property
    def names(self) -> list[str]:
        return [pbx.name for pbx in self._pbxs]

    def get(self, name: str | None) -> Pbx | None:
        return self._by_name.get(name) if name is not None else None

    @property
    def up(self) -> list[Pbx]:
        return [pbx for pbx in self._pbxs if pbx.up]

    @property
    def any_up(self) -> bool:
        return any(pbx.up for pbx in self._pbxs)

    @property
    def all_up(self) -> bool:
        return all(pbx.up for pbx in self._pbxs)

    def subscribe(self, handler: EventHandler) -> None:
        """``handler(event)`` for every AMI event of every PBX."""
        for pbx in self._pbxs:
            pbx.ami.subscribe(handler)

    def on_state_change(self, listener: Callable[[Pbx, AmiState], None]) -> None:
        """``listener(pbx, state)`` whenever a PBX's AMI connection changes state."""
        for pbx in self._pbxs:
            pbx.ami.on_state_change(_state_listener(pbx, listener))

    def observe_actions(self, observer: ActionObserver) -> None:
        for pbx in self._pbxs:
            pbx.ami.observe_actions(observer)

    def queue_home(self, queue: str) -> Pbx | None:
        """The PBX the queue lives on (see the module's doc); None if no roster knows it."""
        if len(self._pbxs) == 1:
            # A pool of one: the queue is there or nowhere, and asked of it either way.
            return self._pbxs[0]
        listed: Pbx | None = None
        for pbx in self._pbxs:
            if not pbx.roster.ready or queue not in pbx.roster.queues():
                continue
            if any(m.status != UNAVAILABLE for m in pbx.roster.members(queue)):
                return pbx
            listed = listed or pbx
        return listed

    def agent_home(self, agent: str) -> Pbx | None:
        """The PBX the agent's phone is on: the first whose roster has them logged in."""
        for pbx in self._pbxs:
            if pbx.up and pbx.roster.ready:
                if any(m.status != UNAVAILABLE for m in pbx.roster.agent(agent)):
                    return pbx
        return None

    def for_agent(self, agent: str, queue: str | None = None) -> Pbx | None:
        """Where to act on an agent (join, leave, pause): the PBX their phone is on,
        else the one ``queue`` lives on, else the first PBX up; None if none is."""
        home = self.agent_home(agent) or (self.queue_home(queue) if queue else None)
        if home is not None and home.up:
            return home
        return next(iter(self.up), None)

    async def send_action(
        self,
        action: Mapping[str, str | list[str]],
        timeout: float | None = None,
        *,
        as_list: bool | None = None,
    ) -> list[Any]:
        """Send an action that any PBX can take (an SMS's MessageSend) to the first one up."""
        for pbx in self._pbxs:
            if pbx.up:
                return await pbx.ami.send_action(action, timeout, as_list=as_list)
        raise AmiDisconnected("no PBX of the pool is connected")


def _state_listener(
    pbx: Pbx, listener: Callable[[Pbx, AmiState], None]
) -> Callable[[AmiState], None]:
    return lambda state: listener(pbx, state)


def _down_since_follower(pbx: Pbx) -> Callable[[AmiState], None]:
    # Only the loss of a logged-in connection starts an outage: the failed
    # reconnects that follow (connecting, disconnected again) do not restart it.
    up = False

    def follow(state: AmiState) -> None:
        nonlocal up
        if state is AmiState.CONNECTED:
            up = True
        elif up:
            up = False
            pbx.down_since = datetime.now(UTC)

    return follow


class PoolRoster:
    """The agents of every queue, each from the roster of the PBX the queue lives on.

    What agent pacing reads (engine/agent_dialing.Roster): a queue's members and
    who of them is free. ``on_change`` callbacks run when any PBX's roster changes.
    """

    def __init__(self, pool: PbxPool) -> None:
        self._pool = pool
        self.on_change: list[Callable[[], None]] = []
        for pbx in pool:
            pbx.roster.on_change.append(self._changed)

    @property
    def ready(self) -> bool:
        """Some PBX's roster is in sync (each queue is asked of its own PBX's)."""
        return any(pbx.roster.ready for pbx in self._pool)

    def queues(self) -> list[str]:
        return sorted({q for pbx in self._pool if pbx.roster.ready for q in pbx.roster.queues()})

    def members(self, queue: str) -> Sequence[AgentState]:
        home = self._pool.queue_home(queue)
        return home.roster.members(queue) if home is not None else []

    def free_agents(self, queue: str) -> list[str]:
        home = self._pool.queue_home(queue)
        return home.roster.free_agents(queue) if home is not None else []

    def agent(self, name: str) -> Sequence[AgentState]:
        """The agent's memberships on the PBX their phone is on (else on the first
        PBX that has them: logged out there)."""
        home = self._pool.agent_home(name)
        if home is not None:
            return home.roster.agent(name)
        for pbx in self._pool:
            if pbx.roster.ready and (memberships := pbx.roster.agent(name)):
                return memberships
        return []

    def _changed(self) -> None:
        for callback in list(self.on_change):
            callback()
