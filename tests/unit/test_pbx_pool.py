"""The pool of PBXs: where a queue lives, what agent pacing reads, when a PBX went away."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from dialer_server.config import Config, PbxConfig
from dialer_server.telephony.ami import AmiState
from dialer_server.telephony.pbx_pool import PbxPool


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    status: str


class FakeRoster:
    """A PBX's roster: its queues and their members' states."""

    def __init__(self, queues: dict[str, dict[str, str]], *, ready: bool = True) -> None:
        self._queues = queues
        self.ready = ready

    def queues(self) -> list[str]:
        return sorted(self._queues)

    def members(self, queue: str) -> Sequence[Member]:
        return [Member(n, s) for n, s in sorted(self._queues.get(queue, {}).items())]

    def free_agents(self, queue: str) -> list[str]:
        return [m.name for m in self.members(queue) if m.status == "free"]


def _pool(*rosters: FakeRoster) -> PbxPool:
    config = Config(pbx=tuple(PbxConfig(name=f"pbx{i}") for i in range(1, len(rosters) + 1)))
    pool = PbxPool(config)
    for pbx, roster in zip(pool, rosters, strict=True):
        pbx.roster = roster  # type: ignore[assignment]
    return pool


ALL_OUT = {"agent01": "unavailable", "agent02": "unavailable"}


def test_a_queue_lives_where_its_agents_are_logged_in() -> None:
    pool = _pool(
        FakeRoster({"sales": ALL_OUT}),
        FakeRoster({"sales": {"agent01": "busy", "agent02": "free"}}),
    )
    home = pool.queue_home("sales")
    assert home is not None and home.name == "pbx2"
    assert pool.roster.free_agents("sales") == ["agent02"]
    assert [m.name for m in pool.roster.members("sales")] == ["agent01", "agent02"]


def test_with_nobody_logged_in_a_queue_lives_on_the_first_pbx_that_has_it() -> None:
    pool = _pool(FakeRoster({}), FakeRoster({"sales": ALL_OUT}), FakeRoster({"sales": ALL_OUT}))
    home = pool.queue_home("sales")
    assert home is not None and home.name == "pbx2"
    assert pool.roster.free_agents("sales") == []


def test_the_first_pbx_with_agents_wins_and_a_roster_not_in_sync_is_not_asked() -> None:
    agents = {"agent01": "free"}
    pool = _pool(
        FakeRoster({"sales": agents}, ready=False),
        FakeRoster({"sales": agents}),
        FakeRoster({"sales": agents}),
    )
    home = pool.queue_home("sales")
    assert home is not None and home.name == "pbx2"
    assert pool.roster.ready
    assert pool.roster.queues() == ["sales"]


def test_a_queue_no_roster_knows_has_no_home_and_no_agents() -> None:
    pool = _pool(FakeRoster({"sales": ALL_OUT}, ready=False), FakeRoster({}))
    assert pool.queue_home("sales") is None
    assert pool.roster.free_agents("sales") == []
    assert pool.roster.members("sales") == []
    assert _pool(FakeRoster({}, ready=False)).roster.ready is False


def test_a_pbx_is_away_from_the_loss_of_its_login_not_from_each_failed_reconnect() -> None:
    pool = PbxPool(Config(pbx=(PbxConfig(name="a"), PbxConfig(name="b"))))
    a, b = pool
    started = a.down_since
    assert not pool.any_up and pool.names == ["a", "b"] and pool.first is a
    # Failed connects before the first login: away since the pool was made.
    a.ami._set_state(AmiState.CONNECTING)
    a.ami._set_state(AmiState.DISCONNECTED, "connection refused")
    assert a.down_since == started
    a.ami._set_state(AmiState.CONNECTED)
    b.ami._set_state(AmiState.CONNECTED)
    assert pool.all_up and pool.up == [a, b]
    before = datetime.now(UTC)
    a.ami._set_state(AmiState.DISCONNECTED, "connection lost")
    lost = a.down_since
    assert lost >= before
    assert pool.up == [b] and pool.any_up and not pool.all_up
    a.ami._set_state(AmiState.CONNECTING)
    a.ami._set_state(AmiState.DISCONNECTED, "connection refused")
    assert a.down_since == lost


def test_state_changes_name_their_pbx() -> None:
    pool = PbxPool(Config(pbx=(PbxConfig(name="a"), PbxConfig(name="b"))))
    seen: list[tuple[str, AmiState]] = []
    pool.on_state_change(lambda pbx, state: seen.append((pbx.name, state)))
    a, b = pool
    b.ami._set_state(AmiState.CONNECTED)
    a.ami._set_state(AmiState.CONNECTING)
    assert seen == [("b", AmiState.CONNECTED), ("a", AmiState.CONNECTING)]
