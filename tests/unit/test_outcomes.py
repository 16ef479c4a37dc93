"""The mapping from Asterisk's reports to outcomes, exhaustively."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.telephony.outcomes import Outcome, classify

# What real Asterisk + sipp reported per behaviour (tests/test_originate.py checks
# these against the live stack; shared/notes/asterisk.md has the same table).
OBSERVED = [
    ("Success", 4, 16, Outcome.ANSWERED),
    ("Failure", 0, 17, Outcome.BUSY),
    ("Failure", 3, 19, Outcome.NO_ANSWER),
    ("Failure", 0, 34, Outcome.CONGESTION),
    ("Failure", 0, 1, Outcome.INVALID_NUMBER),
    ("Failure", 0, 28, Outcome.INVALID_NUMBER),
    ("Failure", 0, 21, Outcome.REJECTED),
    ("Failure", 0, 58, Outcome.FAILED),
]

# The same, with the far end's SIP status (the Hangup's TechCause on Asterisk 22.10).
OBSERVED_SIP = [
    ("Failure", 0, 17, 486, Outcome.BUSY),
    ("Failure", 0, 21, 603, Outcome.REJECTED),
    ("Failure", 0, 21, 401, Outcome.TRUNK_ERROR),
    ("Failure", 0, 21, 403, Outcome.TRUNK_ERROR),
    ("Failure", 0, 21, 407, Outcome.TRUNK_ERROR),
    ("Failure", 0, 127, 402, Outcome.TRUNK_ERROR),
    ("Failure", 0, 19, 480, Outcome.NO_ANSWER),
    ("Failure", 3, 19, 480, Outcome.NO_ANSWER),
    ("Failure", 0, 1, 404, Outcome.INVALID_NUMBER),
    ("Failure", 0, 34, 503, Outcome.CONGESTION),
]


@pytest.mark.parametrize(("response", "reason", "cause", "expected"), OBSERVED)
def test_observed_reports_map_to_their_outcome(
    response: str, reason: int, cause: int, expected: Outcome
) -> None:
    assert classify(response, reason, cause) is expected


@pytest.mark.parametrize(("response", "reason", "cause", "sip", "expected"), OBSERVED_SIP)
def test_the_sip_status_tells_a_decline_from_a_refused_trunk(
    response: str, reason: int, cause: int, sip: int, expected: Outcome
) -> None:
    assert classify(response, reason, cause, sip) is expected


def test_a_refusal_whose_sip_status_is_unknown_is_rejected_never_busy() -> None:
    # An Asterisk without TechCause and without our hangup handler: 603 and
    # 403 look alike, and neither is a busy line.
    assert classify("Failure", 0, 21, None) is Outcome.REJECTED


def test_an_answered_call_stays_answered_whatever_sip_status_came_before() -> None:
    for sip in (None, 200, 401, 403, 603):
        assert classify("Success", 4, 16, sip) is Outcome.ANSWERED


def test_success_is_answered_whatever_the_hangup_cause() -> None:
    for cause in (None, 0, 16, 17, 34, 127):
        assert classify("Success", 4, cause) is Outcome.ANSWERED


def test_cause_wins_over_the_ambiguous_reason_code() -> None:
    # Reason 0 is what Asterisk says for busy, congestion and wrong numbers alike.
    assert classify("Failure", 0, 17) is Outcome.BUSY
    assert classify("Failure", 5, 34) is Outcome.CONGESTION


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (3, Outcome.NO_ANSWER),
        (5, Outcome.BUSY),
        (8, Outcome.CONGESTION),
        (0, Outcome.FAILED),
        (1, Outcome.FAILED),
        (None, Outcome.FAILED),
    ],
)
def test_reason_decides_when_no_telling_cause_arrived(
    reason: int | None, expected: Outcome
) -> None:
    for cause in (None, 0, 16, 127):
        assert classify("Failure", reason, cause) is expected


def test_reason_answer_without_success_response_is_not_trusted() -> None:
    assert classify("Failure", 4, None) is Outcome.FAILED


def test_refused_action_and_missing_response_are_failed() -> None:
    assert classify("Error", None, None) is Outcome.FAILED
    assert classify(None, None, None) is Outcome.FAILED


@given(
    response=st.sampled_from(["Success", "Failure", "Error", None]),
    reason=st.one_of(st.none(), st.integers(-10, 300)),
    cause=st.one_of(st.none(), st.integers(-10, 300)),
    sip=st.one_of(st.none(), st.integers(100, 699)),
)
def test_every_report_gets_a_dialling_outcome(
    response: str | None, reason: int | None, cause: int | None, sip: int | None
) -> None:
    outcome = classify(response, reason, cause, sip)
    # Only the far end's SIP status makes a trunk error.
    assert (outcome is Outcome.TRUNK_ERROR) == (
        response != "Success" and sip in (401, 402, 403, 407)
    )
    # machine and dangling are never derived from Asterisk's call report.
    assert outcome not in (Outcome.MACHINE, Outcome.DANGLING)
    assert (outcome is Outcome.ANSWERED) == (response == "Success")
