"""Agent-mode calls: where they enter the dialplan, and what its reports make of them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from dialer_server.config import DialingConfig
from dialer_server.engine.answered_calls import (
    AnsweredCalls,
    Dialplan,
    dialplan_for,
    report_from_event,
)
from dialer_server.engine.strategy import Action, Rule, default_rules
from dialer_server.telephony.originate import CallTracker
from dialer_server.telephony.outcomes import Outcome


def test_agent_modes_go_to_the_agent_context_with_queue_grace_and_message() -> None:
    dialing = DialingConfig()
    row = {
        "mode": "predictive",
        "queue": "sales",
        "agent_wait_s": Decimal("2.0"),
        "abandon_message": "custom/sorry",
        "amd": True,
    }
    assert dialplan_for(row, dialing) == Dialplan(
        "dialer-agents",
        {
            "DIALER_QUEUE": "sales",
            "DIALER_AGENT_WAIT_S": "2",
            "DIALER_ABANDON_MESSAGE": "custom/sorry",
            "DIALER_AMD": "1",
        },
    )
    for mode in ("progressive", "power"):
        plan = dialplan_for({"mode": mode, "queue": "q", "agent_wait_s": Decimal("2.5")}, dialing)
        assert plan == Dialplan(
            "dialer-agents", {"DIALER_QUEUE": "q", "DIALER_AGENT_WAIT_S": "2.5"}
        )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"Event": "UserEvent", "UserEvent": "DialerAgent", "AttemptId": "a1",
             "Agent": "agent07", "Waited": "0.84"},
            ("a1", "agent07", None, 0.84),
        ),
        (
            {"event": "UserEvent", "userevent": "dialerabandon", "AttemptId": "a2",
             "Waited": "2.01", "Reason": "timeout"},
            ("a2", None, "TIMEOUT", 2.01),
        ),
        (
            {"Event": "UserEvent", "UserEvent": "DialerAbandon", "AttemptId": "", "Uniqueid": "u3",
             "Waited": "", "Reason": "what; DROP"},
            ("u3", None, "UNKNOWN", None),
        ),
        (
            {"Event": "UserEvent", "UserEvent": "DialerAbandon", "AttemptId": "a4",
             "Waited": "-3"},
            ("a4", None, "UNKNOWN", None),
        ),
    ],
)  # fmt: skip
def test_agent_and_abandon_reports_are_read_from_user_events(
    event: dict[str, str], expected: tuple[str, str | None, str | None, float | None]
) -> None:
    report = report_from_event(event)
    assert report is not None
    assert (report.attempt_id, report.agent, report.abandon_reason, report.waited_s) == expected


@pytest.mark.parametrize(
    "event",
    [
        {"Event": "UserEvent", "UserEvent": "DialerAgent", "AttemptId": "a", "Agent": ""},
        {"Event": "UserEvent", "UserEvent": "DialerAgent", "AttemptId": "a", "Agent": "a b"},
        {"Event": "UserEvent", "UserEvent": "DialerAgent", "Agent": "agent01"},
        {"Event": "QueueMemberStatus", "AttemptId": "a", "Agent": "agent01"},
    ],
)
def test_unusable_agent_reports_are_dropped(event: dict[str, str]) -> None:
    assert report_from_event(event) is None


async def _answered_call(tracker: CallTracker, attempt_id: str) -> None:
    """Stand-in for place_call's bookkeeping: the call is followed, answered."""
    tracker.watch(attempt_id)


async def test_an_abandon_makes_the_answered_call_abandoned_and_the_first_report_stands() -> None:
    tracker = CallTracker()
    calls = AnsweredCalls(tracker)
    await _answered_call(tracker, "a1")
    assert not tracker.agent_settled("a1")
    calls.handle_event(
        {"Event": "UserEvent", "UserEvent": "DialerAbandon", "AttemptId": "a1", "Waited": "2.0",
         "Reason": "TIMEOUT"}
    )  # fmt: skip
    calls.handle_event(
        {"Event": "UserEvent", "UserEvent": "DialerAgent", "AttemptId": "a1", "Agent": "agent01",
         "Waited": "2.1"}
    )  # fmt: skip
    assert tracker.agent_settled("a1") and tracker.agent_fate("a1") == (True, None)
    tracker.handle_event({"Event": "Hangup", "Uniqueid": "a1", "Cause": "16"})
    result = await asyncio.wait_for(tracker.follow("a1", answered=True, timeout_s=1), 2)
    assert result is not None
    assert result.outcome is Outcome.ABANDONED
    assert (result.abandoned, result.abandon_reason, result.agent_wait_s) == (True, "TIMEOUT", 2.0)
    assert result.agent is None and result.agent_connected_at is None


async def test_a_call_an_agent_took_stays_answered_with_its_agent() -> None:
    tracker = CallTracker()
    calls = AnsweredCalls(tracker)
    await _answered_call(tracker, "a2")
    calls.handle_event(
        {"Event": "UserEvent", "UserEvent": "DialerAgent", "AttemptId": "a2", "Agent": "agent03",
         "Waited": "0.5"}
    )  # fmt: skip
    assert tracker.agent_fate("a2") == (True, "agent03")
    tracker.handle_event({"Event": "Hangup", "Uniqueid": "a2", "Cause": "16"})
    result = await asyncio.wait_for(tracker.follow("a2", answered=True, timeout_s=1), 2)
    assert result is not None and result.outcome is Outcome.ANSWERED
    assert (result.agent, result.abandoned, result.agent_wait_s) == ("agent03", False, 0.5)
    assert result.agent_connected_at is not None


def test_reports_of_calls_we_do_not_follow_are_ignored() -> None:
    tracker = CallTracker()
    AnsweredCalls(tracker).handle_event(
        {"Event": "UserEvent", "UserEvent": "DialerAgent", "AttemptId": "x", "Agent": "agent01"}
    )
    assert tracker.agent_fate("x") == (False, None)


def test_abandoned_calls_are_retried_soon_by_default() -> None:
    assert default_rules("call")[Outcome.ABANDONED.value] == Rule(Action.RETRY, 300)
