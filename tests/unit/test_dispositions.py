"""The pure core of dispositions: what each action does to a contact, request and
entry checks, redial within the caps, and personal callbacks in the claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.campaigns.dispositions import check_request
from dialer_server.campaigns.status_dictionary import check_entry
from dialer_server.engine.answered_calls import Dialplan
from dialer_server.engine.claims import Job, one_call_per_agent
from dialer_server.engine.disposition_effects import (
    ACTIONS,
    CALLBACK_ACTIONS,
    FINAL_ACTIONS,
    DispositionAction,
    Effect,
    Entry,
    effect,
)
from dialer_server.engine.scheduler import call_variables
from dialer_server.engine.strategy import Close, Dial, PastAttempt, SendSms, parse_strategy, redial
from dialer_server.errors import InvalidInput

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PHONES = ["+12025550101", "+12025550102", None, None, None]
STRATEGY = parse_strategy(
    {
        "name": "two-phones",
        "version": 1,
        "caps": {"per_contact": 5, "per_phone": 3, "per_day": 3},
        "attempts": [
            {"phone": 1, "max_tries": 1, "ring_timeout_s": 20},
            {"phone": 2, "max_tries": 2, "delay_s": 60},
        ],
    }
)


def answered(step: int = 0, slot: int = 1, at: datetime = NOW, number: str = "") -> PastAttempt:
    return PastAttempt(step, "call", slot, number or PHONES[slot - 1] or "", "answered", at)


def apply(
    entry: Entry,
    *,
    history: list[PastAttempt] | None = None,
    agent: str | None = None,
    callback_at: datetime | None = None,
) -> Effect:
    last = (history or [answered()])[-1]
    return effect(
        entry,
        attempt=last,
        strategy=STRATEGY,
        phones=PHONES,
        history=history or [last],
        agent=agent,
        callback_at=callback_at,
        now=NOW,
    )


# --- what each action does ----------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status"),
    [("success", "success"), ("declined", "declined"), ("failed", "failed")],
)
def test_a_final_status_closes_the_contact_connected_with_the_entry_name_as_detail(
    action: str, status: str
) -> None:
    result = apply(Entry("not_now", DispositionAction(action)))
    assert result == Effect(Close("connected", status, "not_now"))


def test_an_entry_s_own_status_detail_wins_over_its_name() -> None:
    result = apply(Entry("wrong_person", DispositionAction.FAILED, "$invalid_contact"))
    assert result.decision == Close("connected", "failed", "$invalid_contact")


def test_do_not_call_closes_dnc_listed_and_lists_the_number() -> None:
    result = apply(Entry("do_not_call", DispositionAction.DO_NOT_CALL))
    assert result == Effect(Close("dnc_listed", "failed", "$do_not_call"), do_not_call=True)


def test_a_personal_callback_is_due_at_its_time_on_the_answered_number_owned_by_the_agent() -> None:
    at = NOW + timedelta(days=1)
    result = apply(
        Entry("call_back", DispositionAction.PERSONAL_CALLBACK),
        history=[answered(step=1, slot=2)],
        agent="agent07",
        callback_at=at,
    )
    assert result == Effect(Dial(1, 2, PHONES[1] or "", at, 30), "$follow_up_personal", "agent07")


def test_follow_up_auto_is_due_at_its_time_with_no_owner() -> None:
    at = NOW + timedelta(hours=3)
    result = apply(
        Entry("call_later", DispositionAction.FOLLOW_UP_AUTO), agent="agent07", callback_at=at
    )
    assert result == Effect(Dial(0, 1, PHONES[0] or "", at, 20), "$follow_up_auto", None)


def test_call_again_redials_the_same_step_after_the_entry_delay() -> None:
    result = apply(Entry("call_again", DispositionAction.CALL_AGAIN, delay_s=900))
    assert result == Effect(Dial(0, 1, PHONES[0] or "", NOW + timedelta(seconds=900), 20))


def test_call_again_with_the_contact_cap_used_up_closes_retries_completed() -> None:
    history = [
        PastAttempt(0, "call", 1, PHONES[0] or "", "no_answer", NOW - timedelta(days=d))
        for d in range(4, 0, -1)
    ] + [answered()]
    result = apply(Entry("call_again", DispositionAction.CALL_AGAIN), history=history)
    assert result.decision == Close("retries_completed", "failed", "$unavailable")


def test_call_again_on_a_number_at_its_cap_moves_to_the_next_step() -> None:
    history = [
        PastAttempt(0, "call", 1, PHONES[0] or "", "busy", NOW - timedelta(days=3)),
        PastAttempt(0, "call", 1, PHONES[0] or "", "busy", NOW - timedelta(days=2)),
        answered(),
    ]
    result = apply(Entry("call_again", DispositionAction.CALL_AGAIN, delay_s=10), history=history)
    assert result.decision == Dial(1, 2, PHONES[1] or "", NOW + timedelta(seconds=70), 30)


def test_call_again_waits_for_the_day_cap() -> None:
    history = [
        PastAttempt(0, "call", 1, PHONES[0] or "", "busy", NOW - timedelta(hours=h)) for h in (5, 2)
    ] + [answered()]
    result = apply(Entry("call_again", DispositionAction.CALL_AGAIN), history=history)
    assert isinstance(result.decision, Dial)
    assert result.decision.at == NOW - timedelta(hours=5) + timedelta(hours=24)


def test_call_again_without_a_strategy_redials_the_answered_number() -> None:
    entry = Entry("call_again", DispositionAction.CALL_AGAIN, delay_s=60)
    result = effect(
        entry,
        attempt=answered(),
        strategy=None,
        phones=PHONES,
        history=[answered()],
        agent=None,
        callback_at=None,
        now=NOW,
    )
    assert result.decision == Dial(0, 1, PHONES[0] or "", NOW + timedelta(seconds=60), 0)


# --- properties -------------------------------------------------------------------------

actions = st.sampled_from([DispositionAction(a) for a in ACTIONS])
outcomes = st.sampled_from(["busy", "no_answer", "answered", "congestion"])


@st.composite
def histories(draw: Any) -> list[PastAttempt]:
    count = draw(st.integers(0, 7))
    times = sorted(
        draw(st.lists(st.integers(1, 5 * 86400), min_size=count, max_size=count)), reverse=True
    )
    past = [
        PastAttempt(
            draw(st.integers(0, 1)),
            "call",
            slot := draw(st.integers(1, 2)),
            PHONES[slot - 1] or "",
            draw(outcomes),
            NOW - timedelta(seconds=t),
        )
        for t in times
    ]
    step = draw(st.integers(0, 1))
    return [*past, answered(step=step, slot=step + 1)]


@given(
    action=actions,
    history=histories(),
    delay=st.integers(0, 86400),
    ahead=st.integers(1, 30 * 86400),
    agent=st.sampled_from(["agent01", "agent20"]),
)
def test_every_action_maps_to_the_domain_terms_and_never_plans_early(
    action: DispositionAction,
    history: list[PastAttempt],
    delay: int,
    ahead: int,
    agent: str,
) -> None:
    callback_at = NOW + timedelta(seconds=ahead) if action in CALLBACK_ACTIONS else None
    entry = Entry("x", action, delay_s=delay if action is DispositionAction.CALL_AGAIN else 0)
    check_request(entry, agent=agent, callback_at=callback_at, now=NOW)
    result = apply(entry, history=history, agent=agent, callback_at=callback_at)
    decision = result.decision
    assert result.do_not_call == (action is DispositionAction.DO_NOT_CALL)
    assert (result.callback_agent is not None) == (action is DispositionAction.PERSONAL_CALLBACK)
    if action in FINAL_ACTIONS:
        assert decision == Close("connected", action.value, "x")
    elif action is DispositionAction.DO_NOT_CALL:
        assert decision == Close("dnc_listed", "failed", "$do_not_call")
    elif action in CALLBACK_ACTIONS:
        assert isinstance(decision, Dial) and decision.at == callback_at
        assert decision.number == history[-1].number
        assert result.status_detail == (
            "$follow_up_personal"
            if action is DispositionAction.PERSONAL_CALLBACK
            else "$follow_up_auto"
        )
    else:
        # call_again: within the caps, never before now + delay.
        if len(history) >= STRATEGY.caps.per_contact:
            assert decision == Close("retries_completed", "failed", "$unavailable")
        elif isinstance(decision, Dial):
            assert decision.at >= NOW + timedelta(seconds=delay)
            calls = [a for a in history if a.number == decision.number]
            assert STRATEGY.caps.per_phone is not None
            assert len(calls) < STRATEGY.caps.per_phone
            in_day = [a for a in history if a.started_at > decision.at - timedelta(hours=24)]
            assert STRATEGY.caps.per_day is not None
            assert len(in_day) < STRATEGY.caps.per_day
        else:
            assert isinstance(decision, Close) and decision.state == "retries_completed"


@given(history=histories(), step=st.integers(0, 1), delay=st.integers(0, 86400))
def test_redial_is_never_due_before_now_or_the_asked_time(
    history: list[PastAttempt], step: int, delay: int
) -> None:
    at = NOW + timedelta(seconds=delay)
    decision = redial(STRATEGY, PHONES, history, step, at, NOW)
    assert not isinstance(decision, SendSms)
    if isinstance(decision, Dial):
        assert decision.at >= at >= NOW
        assert decision.step >= step


def test_redial_refuses_a_step_the_strategy_does_not_have() -> None:
    with pytest.raises(ValueError, match="step 2"):
        redial(STRATEGY, PHONES, [answered()], 2, NOW, NOW)


# --- request checks ---------------------------------------------------------------------


def _refused(entry: Entry, field: str, **kw: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        check_request(entry, **{"agent": None, "callback_at": None, "now": NOW, **kw})
    assert info.value.details == [{"field": field, "message": "invalid"}]
    return str(info.value)


@pytest.mark.parametrize("action", sorted(CALLBACK_ACTIONS))
def test_callbacks_need_a_future_callback_at_within_a_year(action: str) -> None:
    entry = Entry("cb", DispositionAction(action))
    agent = "agent01"
    assert "required" in _refused(entry, "callback_at", agent=agent)
    assert "future" in _refused(entry, "callback_at", agent=agent, callback_at=NOW)
    past = NOW - timedelta(minutes=1)
    assert "future" in _refused(entry, "callback_at", agent=agent, callback_at=past)
    far = NOW + timedelta(days=400)
    assert "year" in _refused(entry, "callback_at", agent=agent, callback_at=far)
    naive = datetime(2026, 3, 3, 10, 0)
    assert "offset" in _refused(entry, "callback_at", agent=agent, callback_at=naive)
    check_request(entry, agent=agent, callback_at=NOW + timedelta(seconds=1), now=NOW)


def test_a_personal_callback_needs_its_agent() -> None:
    entry = Entry("cb", DispositionAction.PERSONAL_CALLBACK)
    later = NOW + timedelta(hours=1)
    assert "agent is required" in _refused(entry, "agent", callback_at=later)
    assert "member name" in _refused(entry, "agent", callback_at=later, agent="PJSIP/agent01")


@pytest.mark.parametrize("action", sorted(set(ACTIONS) - CALLBACK_ACTIONS))
def test_callback_at_is_refused_where_it_means_nothing(action: str) -> None:
    entry = Entry("x", DispositionAction(action))
    later = NOW + timedelta(hours=1)
    assert "does not apply" in _refused(entry, "callback_at", callback_at=later)
    check_request(entry, agent="agent01", callback_at=None, now=NOW)


# --- dictionary entries -----------------------------------------------------------------


def test_an_entry_gets_defaults_and_its_name_as_label() -> None:
    assert check_entry({"name": "sold", "action": "success"}, campaign_id=None) == {
        "name": "sold",
        "label": "sold",
        "description": None,
        "action": "success",
        "status_detail": None,
        "delay_s": 0,
        "active": True,
        "hidden": False,
        "auto_add": False,
    }


@pytest.mark.parametrize(
    ("fields", "campaign_id", "field"),
    [
        ({"name": "Sold", "action": "success"}, None, "name"),
        ({"name": "sold", "action": "sell"}, None, "action"),
        (
            {"name": "cb", "action": "follow_up_auto", "status_detail": "later"},
            None,
            "status_detail",
        ),
        ({"name": "x", "action": "failed", "status_detail": "$made_up"}, None, "status_detail"),
        ({"name": "x", "action": "failed", "status_detail": "Bad Detail"}, None, "status_detail"),
        ({"name": "x", "action": "success", "delay_s": 60}, None, "delay_s"),
        ({"name": "x", "action": "call_again", "delay_s": 40 * 86400}, None, "delay_s"),
        ({"name": "x", "action": "success", "auto_add": True}, 7, "auto_add"),
    ],
)
def test_inconsistent_entries_are_refused_naming_the_field(
    fields: dict[str, Any], campaign_id: int | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        check_entry(fields, campaign_id=campaign_id)
    assert info.value.details == [{"field": field, "message": "invalid"}]


def test_a_predefined_or_custom_detail_is_accepted_for_final_actions() -> None:
    for detail in ("$wrong_number", "$invalid_contact", "price too high"):
        entry = check_entry(
            {"name": "x", "action": "declined", "status_detail": detail}, campaign_id=3
        )
        assert entry["status_detail"] == detail


# --- the scheduler's part -----------------------------------------------------------------


def test_an_agent_gets_one_personal_callback_per_claim_the_first_due() -> None:
    rows = [
        {"id": 1, "callback_agent": "agent01"},
        {"id": 2, "callback_agent": None},
        {"id": 3, "callback_agent": "agent01"},
        {"id": 4, "callback_agent": "agent02"},
        {"id": 5, "callback_agent": None},
    ]
    keep, later = one_call_per_agent(rows)
    assert [r["id"] for r in keep] == [1, 2, 4, 5]
    assert [r["id"] for r in later] == [3]


def test_a_personal_callback_s_originate_names_its_agent() -> None:
    dialplan = Dialplan("dialer-answered", {"DIALER_PLAYBACK": "x"})
    job = Job("a-1", 3, 9, "call", "+12025550101", 0, 1, 30, agent="agent05")
    assert call_variables(job, dialplan) == {
        "DIALER_ATTEMPT_ID": "a-1",
        "DIALER_CAMPAIGN_ID": "3",
        "DIALER_CONTACT_ID": "9",
        "DIALER_PLAYBACK": "x",
        "DIALER_AGENT": "PJSIP/agent05",
    }
    plain = Job("a-2", 3, 10, "call", "+12025550101", 0, 1, 30)
    assert "DIALER_AGENT" not in call_variables(plain, dialplan)
