"""The campaign state machine, as pure code: every state against every action."""

from __future__ import annotations

import pytest

from dialer_server.campaigns.operations import ACTIONS, TRANSITIONS, next_state
from dialer_server.errors import Conflict, InvalidInput
from dialer_server.states import CAMPAIGN_STATES as STATES

EXPECTED = {
    # (state, action): the state it leads to, or None when refused.
    ("stopped", "start"): "running",
    ("stopped", "pause"): None,
    ("stopped", "resume"): None,
    ("stopped", "stop"): "stopped",
    ("running", "start"): "running",
    ("running", "pause"): "paused",
    ("running", "resume"): "running",
    ("running", "stop"): "stopped",
    ("paused", "start"): None,
    ("paused", "pause"): "paused",
    ("paused", "resume"): "running",
    ("paused", "stop"): "stopped",
    ("completed", "start"): "running",  # with open contacts
    ("completed", "pause"): None,
    ("completed", "resume"): None,
    ("completed", "stop"): "completed",
}


@pytest.mark.parametrize(("state", "action"), sorted(EXPECTED))
def test_each_action_from_each_state_leads_where_the_table_says(state: str, action: str) -> None:
    expected = EXPECTED[(state, action)]
    if expected is None:
        with pytest.raises(Conflict) as refused:
            next_state(state, action, has_open_contacts=True)
        assert refused.value.code == "invalid_transition"
        assert refused.value.details == {"state": state, "action": action}
    else:
        assert next_state(state, action, has_open_contacts=True) == expected


def test_the_table_covers_every_state_and_action_and_only_those() -> None:
    assert set(EXPECTED) == {(s, a) for s in STATES for a in ACTIONS}
    assert {(s, a) for a, s in TRANSITIONS} <= set(EXPECTED)


def test_every_action_is_idempotent() -> None:
    for (_state, action), target in EXPECTED.items():
        if target is not None:
            assert next_state(target, action, has_open_contacts=True) == target


def test_a_completed_campaign_without_open_contacts_does_not_start() -> None:
    with pytest.raises(Conflict, match="no open contacts"):
        next_state("completed", "start", has_open_contacts=False)
    # A stopped campaign may start empty: the engine completes it.
    assert next_state("stopped", "start", has_open_contacts=False) == "running"


def test_a_campaign_without_a_strategy_does_not_start_but_may_stop() -> None:
    for state, action in (("stopped", "start"), ("paused", "resume")):
        with pytest.raises(Conflict, match="no call strategy"):
            next_state(state, action, has_open_contacts=True, has_strategy=False)
    assert next_state("running", "stop", has_open_contacts=True, has_strategy=False) == "stopped"


def test_an_unknown_action_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        next_state("running", "explode", has_open_contacts=True)
