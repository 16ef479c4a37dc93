"""The PBX's records of how calls ended: parsing them, and the results built from them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.telephony.originate import pbx_result
from dialer_server.telephony.outcomes import Outcome
from dialer_server.telephony.pbx_results import (
    PbxResult,
    hangup_handler_variable,
    parse,
    parse_tree,
)

ID = "0b6f8f7e-6c1e-4f55-9a38-3c2d1b0e4a11"
ENDED_MS = 1796286564071
ENDED = datetime.fromtimestamp(ENDED_MS / 1000, UTC)


def record(**fields: str) -> str:
    values = {
        "cause": "16",
        "sip": "200",
        "state": "Down",
        "answered": "",
        "ended": str(ENDED_MS),
        "amd": "",
        "ivr": "",
        "digits": "",
        "agent": "",
        "reported": "",
        **fields,
    }
    return "v1|" + "|".join(f"{k}={v}" for k, v in values.items())


# Written by [dialer-call-end] on the stack's Asterisk 22.10 (sipp far end).
OBSERVED = [
    (
        "v1|cause=21|sip=603|state=Down|answered=|ended=1796286564071|amd=|ivr=|digits=|agent=|reported=",
        Outcome.REJECTED,
    ),
    (
        "v1|cause=21|sip=403|state=Down|answered=|ended=1796286564070|amd=|ivr=|digits=|agent=|reported=",
        Outcome.TRUNK_ERROR,
    ),
    (
        "v1|cause=127|sip=402|state=Down|answered=|ended=1796286564073|amd=|ivr=|digits=|agent=|reported=",
        Outcome.TRUNK_ERROR,
    ),
    (
        "v1|cause=19|sip=480|state=Ringing|answered=|ended=1796285879316|amd=|ivr=|digits=|agent=|reported=",
        Outcome.NO_ANSWER,
    ),
    (
        "v1|cause=17|sip=486|state=Down|answered=|ended=1796285877307|amd=|ivr=|digits=|agent=|reported=",
        Outcome.BUSY,
    ),
    (
        "v1|cause=16|sip=200|state=Up|answered=1796286564080|ended=1796286565089|amd=|ivr=|digits=|agent=|reported=",
        Outcome.ANSWERED,
    ),
]


@pytest.mark.parametrize(("value", "expected"), OBSERVED)
def test_records_written_by_asterisk_give_the_calls_outcome(value: str, expected: Outcome) -> None:
    parsed = parse(ID, value)
    assert parsed is not None
    result = pbx_result(parsed)
    assert result.outcome is expected
    assert result.source == "pbx"
    assert result.ended_at == parsed.ended_at


def test_an_answered_record_carries_its_answer_time_and_duration() -> None:
    parsed = parse(ID, OBSERVED[-1][0])
    assert parsed is not None and parsed.answered
    assert parsed.answered_at == datetime.fromtimestamp(1796286564.080, UTC)
    assert parsed.ended_at is not None
    assert (parsed.ended_at - parsed.answered_at).total_seconds() == pytest.approx(1.009)
    result = pbx_result(parsed)
    assert result.answered_at == parsed.answered_at
    # 200 is no failure: only final failures (300-699) are kept, as TechCause gives them.
    assert (result.hangup_cause, result.sip_code) == (16, None)


def test_a_channel_up_at_hangup_is_answered_even_without_the_answer_mark() -> None:
    # An operator's own answer context that does not set DIALER_ANSWERED_MS.
    parsed = parse(ID, record(state="Up"))
    assert parsed is not None and parsed.answered and parsed.answered_at is None
    result = pbx_result(parsed)
    assert result.outcome is Outcome.ANSWERED
    # Answered, time unknown: the end stands for it (the row may know better).
    assert result.answered_at == ENDED


def test_the_attempt_row_knowing_the_answer_makes_it_answered() -> None:
    parsed = parse(ID, record(state="Down", cause="16"))
    assert parsed is not None
    assert pbx_result(parsed).outcome is Outcome.FAILED
    assert pbx_result(parsed, answered=True).outcome is Outcome.ANSWERED


def test_what_the_answered_call_reported_decides_as_its_events_would() -> None:
    machine = parse(ID, record(state="Up", amd="MACHINE"))
    assert machine is not None and pbx_result(machine).outcome is Outcome.MACHINE
    abandoned = parse(ID, record(state="Up", reported="abandon"))
    assert abandoned is not None
    result = pbx_result(abandoned)
    assert (result.outcome, result.abandoned) == (Outcome.ABANDONED, True)
    taken = parse(ID, record(state="Up", reported="agent", agent="agent07"))
    assert taken is not None
    result = pbx_result(taken)
    assert (result.outcome, result.abandoned, result.agent) == (Outcome.ANSWERED, False, "agent07")
    ivr = parse(ID, record(state="Up", ivr="OK", digits="1"))
    assert ivr is not None and pbx_result(ivr).ivr_digits == "1"
    no_key = parse(ID, record(state="Up", ivr="TIMEOUT", digits=""))
    assert no_key is not None and no_key.ivr_digits == ""
    no_ivr = parse(ID, record(state="Up"))
    assert no_ivr is not None and no_ivr.ivr_digits is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v2|cause=16|ended=1796286564071",  # a format we do not know
        "cause=16|ended=1796286564071",
        record(ended=""),  # not written as the call ended
        record(ended="17962865640710000"),
        record(ended="-1"),
    ],
)
def test_values_that_are_not_our_records_are_refused(value: str) -> None:
    assert parse(ID, value) is None


def test_fields_that_do_not_hold_what_they_should_are_not_trusted() -> None:
    parsed = parse(
        ID,
        record(
            cause="16a",
            sip="6033",
            amd="machine; DROP",
            ivr="OK",
            digits="12x",
            agent="agent 07",
            reported="maybe",
            answered="yesterday",
        ),
    )
    assert parsed == PbxResult(ID, None, None, False, None, ENDED)


def test_unknown_fields_are_ignored() -> None:
    parsed = parse(ID, record() + "|later=42")
    assert parsed is not None and parsed.cause == 16


@given(st.text(max_size=300))
def test_parsing_never_fails_on_any_value(value: str) -> None:
    parse(ID, value)
    parse(ID, "v1|" + value)


@given(
    cause=st.integers(0, 127),
    sip=st.integers(300, 699),
    answered=st.booleans(),
    ended_ms=st.integers(10**12, 10**13 - 1),
)
def test_what_the_handler_writes_is_what_is_read(
    cause: int, sip: int, answered: bool, ended_ms: int
) -> None:
    answered_ms = str(ended_ms - 1000) if answered and ended_ms - 1000 >= 10**12 else ""
    parsed = parse(
        ID,
        record(
            cause=str(cause),
            sip=str(sip),
            state="Up" if answered else "Ringing",
            answered=answered_ms,
            ended=str(ended_ms),
        ),
    )
    assert parsed is not None
    assert (parsed.cause, parsed.sip_code, parsed.answered) == (cause, sip, answered)
    assert parsed.ended_at == datetime.fromtimestamp(ended_ms / 1000, UTC)


def test_a_dbgettree_reply_gives_our_records_by_attempt_id() -> None:
    other = "7d1b9a77-2f0a-4a3e-8a8b-2b1d3c4e5f60"
    reply = [
        {"Response": "Success", "EventList": "start", "Message": "Result will follow"},
        {"Event": "DBGetTreeResponse", "Key": f"/dialer/{ID}", "Val": OBSERVED[0][0]},
        {"Event": "DBGetTreeResponse", "Key": f"/dialer/{other.upper()}", "Val": record()},
        # not ours: a key that is no attempt id, a deeper key, another family
        {"Event": "DBGetTreeResponse", "Key": "/dialer/settings", "Val": record()},
        {"Event": "DBGetTreeResponse", "Key": f"/dialer/x/{ID}", "Val": record()},
        {"Event": "DBGetTreeResponse", "Key": f"/other/{ID}", "Val": record()},
        # ours, but not a record: skipped (and logged)
        {"Event": "DBGetTreeResponse", "Key": "/dialer/" + ID.replace("0b", "0c"), "Val": "?"},
        {"Event": "DBGetTreeComplete", "EventList": "Complete", "ListItems": "7"},
    ]
    records = parse_tree(reply)
    assert set(records) == {ID, other}
    assert records[ID].sip_code == 603
    assert records[other].attempt_id == other


def test_the_handler_is_pushed_with_escaped_commas() -> None:
    # Asterisk splits Originate's Variable header at unescaped commas.
    assert (
        hangup_handler_variable("dialer-call-end")
        == "CHANNEL(hangup_handler_push)=dialer-call-end\\,s\\,1"
    )
