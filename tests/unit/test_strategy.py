"""The call-strategy engine and its YAML format: examples by behaviour, then properties."""

from __future__ import annotations

import functools
import json
import operator
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer_server.engine.strategy import (
    CALL_OUTCOMES,
    DETAIL_PATTERN,
    MAX_DELAY_S,
    SMS_OUTCOMES,
    Action,
    Caps,
    Close,
    Decision,
    Dial,
    PastAttempt,
    Rule,
    SendSms,
    Step,
    Strategy,
    StrategyError,
    close_for,
    default_rules,
    first_action,
    load_strategies_dir,
    load_strategy_file,
    next_action,
    parse_strategy,
    strategy_to_dict,
)
from dialer_server.errors import DialerError
from dialer_server.states import CONTACT_FINAL_STATES, PREDEFINED_DETAILS, STATUSES
from dialer_server.telephony.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "strategies"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PHONES: tuple[str | None, ...] = ("+41440000001", "+41440000002", None, None, None)
SMS_TEXT = "Sorry we missed you about {param1}."


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def make(**data: Any) -> Strategy:
    """A strategy from its YAML form, with a name, a version and one call step by default."""
    base: dict[str, Any] = {"name": "test", "version": 1, "attempts": [{"phone": 1}]}
    base.update(data)
    return parse_strategy(base)


def call(
    step: int, outcome: str, at: datetime, *, slot: int = 1, number: str | None = None
) -> PastAttempt:
    number = number if number is not None else PHONES[slot - 1] or ""
    return PastAttempt(step, "call", slot, number, outcome, at)


def sms(step: int, outcome: str, at: datetime, *, slot: int = 1) -> PastAttempt:
    return PastAttempt(step, "sms", slot, PHONES[slot - 1] or "", outcome, at)


def shipped(name: str) -> Strategy:
    return load_strategy_file(SHIPPED / f"{name}.yaml")


# --- The format -------------------------------------------------------------


def test_every_shipped_strategy_loads() -> None:
    strategies = load_strategies_dir(SHIPPED)
    assert [x.name for x in strategies] == ["default", "phones-then-sms", "sms-only"]
    for path in sorted(SHIPPED.glob("*.yaml")):
        strategy = load_strategy_file(path)
        assert strategy.name == path.stem
        assert parse_strategy(strategy_to_dict(strategy)) == strategy


def test_shipped_phones_then_sms_is_the_documented_strategy() -> None:
    strategy = shipped("phones-then-sms")
    first, second, last = strategy.steps
    assert (first.channel, first.phone, first.max_tries) == ("call", 1, 3)
    assert first.rules["busy"] == Rule(Action.SMS)
    assert (second.phone, second.delay_s, second.ring_timeout_s) == (2, 300, 25)
    assert second.rules["busy"] == Rule(Action.RETRY, delay_s=600)
    assert (last.channel, last.phone) == ("sms", 1)
    assert strategy.caps == Caps(per_contact=8, per_phone=4, per_day=5)
    assert strategy.sms_close_state == "sms_sent"


def test_minimal_strategy_gets_defaults_and_builtin_rules() -> None:
    strategy = make()
    assert strategy.description == ""
    assert strategy.caps == Caps(per_contact=10, per_phone=None, per_day=None)
    assert strategy.sms_text is None
    assert strategy.sms_close_state == "sms_sent"
    assert strategy.steps == (Step("call", 1, 30, 0, 1, default_rules("call")),)
    rules = strategy.steps[0].rules
    assert set(rules) == set(CALL_OUTCOMES)
    assert rules["answered"] == Rule(Action.CLOSE, 0, "connected", "success", "$none")
    assert rules["busy"] == Rule(Action.RETRY, 600)
    assert rules["no_answer"] == Rule(Action.RETRY, 1800)
    assert rules["congestion"] == Rule(Action.RETRY, 300)
    assert rules["invalid_number"] == Rule(Action.NEXT)
    assert rules["failed"] == Rule(Action.NEXT)
    assert rules["machine"] == Rule(Action.RETRY, 3600)
    assert rules["dangling"] == Rule(Action.CLOSE, 0, "dangling", "failed", "$error")
    assert rules["rejected"] == Rule(Action.RETRY, 4 * 3600)
    assert rules["trunk_error"] == Rule(Action.RETRY, 300)


def test_a_declined_call_is_tried_again_hours_later_never_like_busy() -> None:
    strategy = shipped("default")
    decision = next_action(strategy, PHONES, [call(0, "rejected", NOW)], NOW)
    assert decision == Dial(0, 1, PHONES[0] or "", NOW + s(4 * 3600), 30)
    # A busy -> sms rule does not text someone who declined.
    texting = shipped("phones-then-sms")
    declined = next_action(texting, PHONES, [call(0, "rejected", NOW)], NOW)
    assert isinstance(declined, Dial) and declined.at == NOW + s(4 * 3600)


def test_rejected_rules_are_usable_in_strategy_files() -> None:
    strategy = make(on={"rejected": {"action": "close", "state": "not_connected"}})
    decision = next_action(strategy, PHONES, [call(0, "rejected", NOW)], NOW)
    assert decision == Close("not_connected", "failed", "$unavailable")


def test_a_trunk_error_redials_the_same_step_and_counts_for_nothing() -> None:
    strategy = make(caps={"per_contact": 2, "per_phone": 1, "per_day": 1})
    history = [call(0, "trunk_error", NOW)]
    decision = next_action(strategy, PHONES, history, NOW)
    # per_phone 1 and per_day 1 would forbid a second call, if the first counted.
    assert decision == Dial(0, 1, PHONES[0] or "", NOW + s(300), 30)
    for _ in range(5):
        history.append(call(0, "trunk_error", NOW))
    assert next_action(strategy, PHONES, history, NOW) == decision
    # The first real result is the contact's first try: busy, one try, next step: none.
    history.append(call(0, "busy", NOW))
    assert next_action(strategy, PHONES, history, NOW) == close_for("retries_completed")


def test_a_trunk_error_keeps_the_step_after_fallbacks_and_redials() -> None:
    strategy = make(attempts=[{"phone": 1}, {"phone": 2, "max_tries": 1}])
    history = [call(0, "no_answer", NOW), call(1, "trunk_error", NOW, slot=2)]
    decision = next_action(strategy, PHONES, history, NOW)
    assert decision == Dial(1, 2, PHONES[1] or "", NOW + s(300), 30)


def test_trunk_error_rules_may_only_retry() -> None:
    strategy = make(on={"trunk_error": {"action": "retry", "delay_s": 60}})
    assert strategy.steps[0].rules["trunk_error"] == Rule(Action.RETRY, 60)
    for rule in ("next", "sms", {"action": "close", "state": "not_connected"}):
        with pytest.raises(StrategyError, match=r"on\.trunk_error must be retry"):
            make(sms={"text": SMS_TEXT}, attempts=[{"phone": 1, "on": {"trunk_error": rule}}])


def test_sms_step_rules_default_to_the_sms_close_state() -> None:
    strategy = make(
        sms={"text": SMS_TEXT, "close_state": "sms_sent_closed"}, attempts=[{"sms": True}]
    )
    step = strategy.steps[0]
    assert (step.channel, step.phone, step.text) == ("sms", 1, None)
    assert step.rules == {
        "sent": Rule(Action.CLOSE, 0, "sms_sent_closed", "success", "$none"),
        "failed": Rule(Action.NEXT),
    }


def test_top_level_on_applies_to_call_steps_and_step_on_wins() -> None:
    strategy = make(
        sms={"text": SMS_TEXT},
        on={"busy": {"action": "retry", "delay_s": 60}, "machine": "next"},
        attempts=[{"phone": 1, "on": {"busy": {"action": "sms"}}}, {"phone": 2}, {"sms": True}],
    )
    first, second, third = strategy.steps
    assert first.rules["busy"] == Rule(Action.SMS)
    assert first.rules["machine"] == Rule(Action.NEXT)
    assert second.rules["busy"] == Rule(Action.RETRY, 60)
    assert second.rules["machine"] == Rule(Action.NEXT)
    assert third.rules == default_rules("sms")


def test_a_rule_replaces_the_builtin_rule_whole() -> None:
    rules = make(on={"busy": {"action": "retry"}}).steps[0].rules
    assert rules["busy"] == Rule(Action.RETRY, 0)


def test_a_bare_action_is_a_rule() -> None:
    rules = make(on={"no_answer": "next", "busy": "retry"}).steps[0].rules
    assert rules["no_answer"] == Rule(Action.NEXT)
    assert rules["busy"] == Rule(Action.RETRY)


def test_close_takes_status_and_detail_from_the_state_unless_given() -> None:
    rules = (
        make(
            on={
                "invalid_number": {"action": "close", "state": "not_connected"},
                "machine": {"action": "close", "state": "dnc_listed", "status": "declined"},
                "answered": {
                    "action": "close",
                    "state": "connected",
                    "status": "open",
                    "status_detail": "$follow_up_auto",
                },
                "failed": {
                    "action": "close",
                    "state": "cancelled",
                    "status_detail": "callback requested",
                },
            }
        )
        .steps[0]
        .rules
    )
    assert rules["invalid_number"] == Rule(
        Action.CLOSE, 0, "not_connected", "failed", "$unavailable"
    )
    assert rules["machine"] == Rule(Action.CLOSE, 0, "dnc_listed", "declined", "$do_not_call")
    assert rules["answered"] == Rule(Action.CLOSE, 0, "connected", "open", "$follow_up_auto")
    assert rules["failed"] == Rule(Action.CLOSE, 0, "cancelled", "failed", "callback requested")


def test_dangling_may_change_its_status_detail_but_not_its_action() -> None:
    strategy = make(
        on={"dangling": {"action": "close", "state": "dangling", "status_detail": "lost"}}
    )
    assert strategy.steps[0].rules["dangling"] == Rule(
        Action.CLOSE, 0, "dangling", "failed", "lost"
    )


def _bad_step(**step: Any) -> dict[str, Any]:
    return {"attempts": [{"phone": 1}, {"phone": 2, **step}]}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("negative delay", _bad_step(on={"busy": {"action": "retry", "delay_s": -1}}),
     "attempts[1].on.busy.delay_s must be >= 0"),
    ("delay too long", _bad_step(delay_s=MAX_DELAY_S + 1), "attempts[1].delay_s must be <="),
    ("delay not an int", _bad_step(delay_s=1.5), "attempts[1].delay_s must be an integer"),
    ("unknown top key", {"colour": "red"}, "colour is not a known key"),
    ("unknown step key", _bad_step(ring=20), "attempts[1].ring is not a known key"),
    ("unknown rule key", _bad_step(on={"busy": {"action": "retry", "delay": 5}}),
     "attempts[1].on.busy.delay is not a known key"),
    ("unknown caps key", {"caps": {"per_week": 3}}, "caps.per_week is not a known key"),
    ("unknown sms key", {"sms": {"body": "x"}}, "sms.body is not a known key"),
    ("unknown outcome", {"on": {"hangup": "next"}}, "on.hangup: 'hangup' is not an outcome"),
    ("sms outcome on a call step", _bad_step(on={"sent": "next"}),
     "attempts[1].on.sent: 'sent' is not an outcome of a call step"),
    ("call outcome on an sms step",
     {"sms": {"text": "x"}, "attempts": [{"sms": True, "on": {"busy": "next"}}]},
     "attempts[0].on.busy: 'busy' is not an outcome of an SMS step"),
    ("ring timeout below 15", _bad_step(ring_timeout_s=14),
     "attempts[1].ring_timeout_s must be >= 15"),
    ("ring timeout above 300", _bad_step(ring_timeout_s=301),
     "attempts[1].ring_timeout_s must be <= 300"),
    ("ring timeout on an sms step",
     {"sms": {"text": "x"}, "attempts": [{"sms": True, "ring_timeout_s": 20}]},
     "attempts[0].ring_timeout_s is only for call steps"),
    ("text on a call step", _bad_step(text="hi"), "attempts[1].text is only for SMS steps"),
    ("no name", {"name": None}, "name must match"),
    ("bad name", {"name": "Default"}, "name must match"),
    ("name too long", {"name": "a" * 64}, "name must match"),
    ("version 0", {"version": 0}, "version must be >= 1"),
    ("version as text", {"version": "1"}, "version must be an integer"),
    ("version as bool", {"version": True}, "version must be an integer"),
    ("no attempts", {"attempts": []}, "attempts must list at least one attempt"),
    ("attempts not a list", {"attempts": "phone 1"}, "attempts must be a list"),
    ("attempt not a mapping", {"attempts": [1]}, "attempts[0] must be a mapping"),
    ("phone 0", _bad_step(phone=0), "attempts[1].phone must be >= 1"),
    ("phone 6", _bad_step(phone=6), "attempts[1].phone must be <= 5"),
    ("max_tries 0", _bad_step(max_tries=0), "attempts[1].max_tries must be >= 1"),
    ("sms flag not a bool", _bad_step(sms="yes"), "attempts[1].sms must be true or false"),
    ("unknown action", {"on": {"busy": {"action": "redial"}}}, "on.busy.action must be one of"),
    ("rule without action", {"on": {"busy": {"delay_s": 5}}}, "on.busy.action is required"),
    ("close without state", {"on": {"busy": "close"}}, "on.busy.state is required for close"),
    ("close with an unknown state", {"on": {"busy": {"action": "close", "state": "done"}}},
     "on.busy.state must be one of"),
    ("close as sms_responded", {"on": {"busy": {"action": "close", "state": "sms_responded"}}},
     "only an inbound reply sets it"),
    ("call closing as sms_sent", {"on": {"busy": {"action": "close", "state": "sms_sent"}}},
     "on.busy.state must be one of"),
    ("closing as dangling", {"on": {"busy": {"action": "close", "state": "dangling"}}},
     "on.busy.state must be one of"),
    ("bad status", {"on": {"answered": {"action": "close", "state": "connected", "status": "ok"}}},
     "on.answered.status must be one of open, success, declined, failed"),
    ("unknown predefined detail",
     {"on": {"answered": {"action": "close", "state": "connected", "status_detail": "$great"}}},
     "on.answered.status_detail must be a predefined detail"),
    ("custom detail with capitals",
     {"on": {"answered": {"action": "close", "state": "connected", "status_detail": "Great"}}},
     "on.answered.status_detail must be"),
    ("dangling retried", {"on": {"dangling": {"action": "retry", "delay_s": 60}}},
     "on.dangling must close with state dangling"),
    ("dangling closed otherwise", {"on": {"dangling": {"action": "close", "state": "connected"}}},
     "on.dangling must close with state dangling"),
    ("delay on close", {"on": {"answered": {"action": "close", "state": "connected",
                                            "delay_s": 5}}},
     "on.answered.delay_s is only for retry and next"),
    ("delay on sms", {"sms": {"text": "x"}, "on": {"busy": {"action": "sms", "delay_s": 5}}},
     "on.busy.delay_s is only for retry and next"),
    ("state on retry", {"on": {"busy": {"action": "retry", "state": "connected"}}},
     "on.busy.state is only for close"),
    ("sms action without text", _bad_step(on={"busy": "sms"}),
     "attempts[1].on.busy: action sms needs sms.text"),
    ("default sms action without text", {"on": {"busy": "sms"}},
     "on.busy: action sms needs sms.text"),
    ("sms action on an sms step",
     {"sms": {"text": "x"}, "attempts": [{"sms": True, "on": {"failed": "sms"}}]},
     "attempts[0].on.failed: action sms is only for call steps"),
    ("sms step without any text", {"attempts": [{"sms": True}]},
     "attempts[0].text is required"),
    ("sms text too long", {"sms": {"text": "x" * 641}},
     "sms.text must be at most 640 characters"),
    ("step text too long", {"sms": {"text": "x"}, "attempts": [{"sms": True, "text": "x" * 641}]},
     "attempts[0].text must be at most 640 characters"),
    ("empty sms text", {"sms": {"text": " "}}, "sms.text must not be empty"),
    ("bad sms close state", {"sms": {"close_state": "connected"}},
     "sms.close_state must be one of sms_sent, sms_sent_closed"),
    ("per_contact 0", {"caps": {"per_contact": 0}}, "caps.per_contact must be >= 1"),
    ("per_phone 0", {"caps": {"per_phone": 0}}, "caps.per_phone must be >= 1"),
    ("per_day as text", {"caps": {"per_day": "3"}}, "caps.per_day must be an integer"),
    ("caps not a mapping", {"caps": [1]}, "caps must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"), [(d, m) for _, d, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_strategy_is_refused_naming_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError) as caught:
        make(**data)
    assert message in str(caught.value)
    assert isinstance(caught.value, DialerError)


@pytest.mark.parametrize("missing", ["name", "version", "attempts"])
def test_required_keys_are_required(missing: str) -> None:
    data: dict[str, Any] = {"name": "x", "version": 1, "attempts": [{"phone": 1}]}
    del data[missing]
    with pytest.raises(StrategyError, match=f"^{missing} is required$"):
        parse_strategy(data)


def test_sms_responded_may_close_an_sms_but_sms_sent_only_after_sending() -> None:
    with pytest.raises(StrategyError, match=r"attempts\[0\].on.failed.state must be one of"):
        make(
            sms={"text": "x"},
            attempts=[{"sms": True, "on": {"failed": {"action": "close", "state": "sms_sent"}}}],
        )
    strategy = make(
        sms={"text": "x"},
        attempts=[{"sms": True, "on": {"sent": {"action": "close", "state": "sms_sent_closed"}}}],
    )
    assert strategy.steps[0].rules["sent"].status == "success"


def test_strategy_built_directly_is_validated_and_completed() -> None:
    strategy = Strategy(
        name="direct",
        version=2,
        description="",
        steps=(Step("call", 1, rules={"busy": Rule(Action.NEXT)}), Step("sms", 2, text="hi")),
        sms_close_state="sms_sent_closed",
    )
    assert strategy.steps[0].rules["busy"] == Rule(Action.NEXT)
    assert strategy.steps[0].rules["no_answer"] == Rule(Action.RETRY, 1800)
    assert strategy.steps[1].rules["sent"] == close_rule("sms_sent_closed")
    assert hash(strategy) == hash(parse_strategy(strategy_to_dict(strategy)))
    with pytest.raises(StrategyError, match=r"attempts\[1\].ring_timeout_s must be >= 15"):
        Strategy("direct", 1, "", (Step("call", 1), Step("call", 2, ring_timeout_s=10)))
    with pytest.raises(StrategyError, match=r"attempts\[0\].channel must be one of call, sms"):
        Strategy("direct", 1, "", (Step("fax", 1),))
    with pytest.raises(StrategyError, match="unknown action"):
        Rule("redial")  # type: ignore[arg-type]  # a caller without mypy


def close_rule(state: str) -> Rule:
    return Rule(Action.CLOSE, state=state)


def test_close_for_gives_the_default_status_and_detail() -> None:
    assert close_for("retries_completed") == Close("retries_completed", "failed", "$unavailable")
    assert close_for("sms_responded") == Close("sms_responded", "success", "$none")
    with pytest.raises(ValueError, match="unknown contact state"):
        close_for("done")


def test_strategy_to_dict_is_json_and_leaves_out_default_rules() -> None:
    strategy = shipped("phones-then-sms")
    data = strategy_to_dict(strategy)
    assert json.loads(json.dumps(data)) == data
    assert data["attempts"][0]["on"] == {"busy": {"action": "sms"}}
    assert "on" not in data["attempts"][1]  # its busy rule is the built-in one
    assert parse_strategy(json.loads(json.dumps(data))) == strategy


# --- Files ------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_on_is_a_key_not_a_boolean(tmp_path: Path) -> None:
    file = write(
        tmp_path / "x.yaml",
        "name: x\nversion: 1\non:\n  no_answer: next\nattempts:\n  - phone: 1\n    sms: false\n",
    )
    assert load_strategy_file(file).steps[0].rules["no_answer"] == Rule(Action.NEXT)


def test_yaml_yes_is_not_a_boolean(tmp_path: Path) -> None:
    file = write(tmp_path / "x.yaml", "name: x\nversion: 1\nattempts:\n  - sms: yes\n")
    with pytest.raises(StrategyError, match=r"attempts\[0\].sms must be true or false"):
        load_strategy_file(file)


def test_yaml_duplicate_keys_are_refused(tmp_path: Path) -> None:
    file = write(tmp_path / "x.yaml", "name: x\nversion: 1\nversion: 2\nattempts: [{phone: 1}]\n")
    with pytest.raises(StrategyError, match=r"x.yaml: not valid YAML: line 3.*duplicate key"):
        load_strategy_file(file)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nversion: 1\nattempts: [{phone: 1, ring_timeout_s: 10}]\n",
         r"bad.yaml: attempts\[0\].ring_timeout_s must be >= 15"),
        ("name: x\nversion: 1\nattempts: [{phone: 1}\n", r"bad.yaml: not valid YAML: line \d+"),
        ("", r"bad.yaml: must hold one strategy \(a mapping\), got None"),
        ("- phone: 1\n", r"bad.yaml: must hold one strategy"),
        ("\xff", None),
    ],
)  # fmt: skip
def test_file_errors_name_the_file(tmp_path: Path, text: str, message: str | None) -> None:
    file = tmp_path / "bad.yaml"
    if message is None:
        file.write_bytes(b"\xff\xfe\x00")
        message = r"bad.yaml: is not UTF-8 text"
    else:
        write(file, text)
    with pytest.raises(StrategyError, match=message):
        load_strategy_file(file)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match=r"nope.yaml: cannot be read"):
        load_strategy_file(tmp_path / "nope.yaml")


def test_directory_loads_yaml_and_yml_sorted_by_name_and_version(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "name: zed\nversion: 1\nattempts: [{phone: 1}]\n")
    write(tmp_path / "b.yml", "name: alpha\nversion: 2\nattempts: [{phone: 1}]\n")
    write(tmp_path / "c.yaml", "name: alpha\nversion: 1\nattempts: [{phone: 1}]\n")
    write(tmp_path / "README.md", "not a strategy")
    found = [(x.name, x.version) for x in load_strategies_dir(tmp_path)]
    assert found == [("alpha", 1), ("alpha", 2), ("zed", 1)]


def test_directory_refuses_the_same_name_and_version_twice(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", "name: same\nversion: 3\nattempts: [{phone: 1}]\n")
    write(tmp_path / "two.yaml", "name: same\nversion: 3\nattempts: [{phone: 2}]\n")
    with pytest.raises(StrategyError, match=r"two.yaml: strategy same version 3 .*one.yaml"):
        load_strategies_dir(tmp_path)


def test_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="not a directory"):
        load_strategies_dir(tmp_path / "missing")


# --- The engine: the first action -------------------------------------------


def test_first_action_dials_phone1_now() -> None:
    assert first_action(make(), PHONES, NOW) == Dial(0, 1, "+41440000001", NOW, 30)


def test_first_action_waits_for_the_first_step_delay() -> None:
    strategy = make(attempts=[{"phone": 2, "delay_s": 120, "ring_timeout_s": 20}])
    assert first_action(strategy, PHONES, NOW) == Dial(0, 2, "+41440000002", NOW + s(120), 20)


def test_empty_phone2_dials_phone1() -> None:
    strategy = make(attempts=[{"phone": 2}])
    for phone2 in (None, "", "   "):
        decision = first_action(strategy, ("+41440000001", phone2), NOW)
        assert decision == Dial(0, 1, "+41440000001", NOW, 30)


def test_phone2_is_used_when_phone1_is_empty() -> None:
    strategy = make(attempts=[{"phone": 2}])
    assert first_action(strategy, (None, "222"), NOW) == Dial(0, 2, "222", NOW, 30)


def test_step_without_any_number_is_skipped() -> None:
    strategy = make(attempts=[{"phone": 1}, {"phone": 3, "delay_s": 60}])
    decision = first_action(strategy, (None, None, " 333 ", None, None), NOW)
    assert decision == Dial(1, 3, "333", NOW + s(60), 30)


def test_contact_without_a_usable_number_closes_invalid_contact() -> None:
    strategy = make(attempts=[{"phone": 1}, {"phone": 2}])
    for phones in ((None, None, "333", None, None), (), ("", "  ")):
        assert first_action(strategy, phones, NOW) == Close(
            "not_connected", "failed", "$invalid_contact"
        )


def test_first_action_of_an_sms_campaign_sends_the_sms() -> None:
    strategy = shipped("sms-only")
    decision = first_action(strategy, PHONES, NOW)
    assert decision == SendSms(0, 1, "+41440000001", NOW, strategy.sms_text or "")


def test_sms_step_text_wins_over_sms_text() -> None:
    strategy = make(sms={"text": SMS_TEXT}, attempts=[{"sms": True, "phone": 2, "text": "own"}])
    assert first_action(strategy, PHONES, NOW) == SendSms(0, 2, "+41440000002", NOW, "own")


def test_sms_step_on_an_empty_phone_uses_phone1() -> None:
    strategy = make(sms={"text": SMS_TEXT}, attempts=[{"sms": True, "phone": 4}])
    assert first_action(strategy, PHONES, NOW) == SendSms(0, 1, "+41440000001", NOW, SMS_TEXT)


# --- The engine: after an attempt -------------------------------------------


def test_answered_closes_connected() -> None:
    history = [call(0, Outcome.ANSWERED, NOW)]
    assert next_action(make(), PHONES, history, NOW + s(90)) == Close(
        "connected", "success", "$none"
    )


def test_busy_retries_the_same_step_after_its_delay() -> None:
    strategy = make(attempts=[{"phone": 1, "max_tries": 3, "delay_s": 999}])
    later = NOW + s(20)
    decision = next_action(strategy, PHONES, [call(0, Outcome.BUSY, NOW)], later)
    # A retry waits the rule's delay only: the step's delay_s is for moving to it.
    assert decision == Dial(0, 1, "+41440000001", later + s(600), 30)


def test_retry_beyond_max_tries_moves_to_next_step() -> None:
    strategy = make(attempts=[{"phone": 1, "max_tries": 2}, {"phone": 2, "delay_s": 300}])
    history = [call(0, Outcome.NO_ANSWER, NOW), call(0, Outcome.NO_ANSWER, NOW + s(1900))]
    later = NOW + s(1930)
    decision = next_action(strategy, PHONES, history, later)
    assert decision == Dial(1, 2, "+41440000002", later + s(1800 + 300), 30)


def test_next_adds_the_rule_delay_to_the_next_step_delay() -> None:
    strategy = make(
        on={"failed": {"action": "next", "delay_s": 50}},
        attempts=[{"phone": 1}, {"phone": 2, "delay_s": 7}],
    )
    decision = next_action(strategy, PHONES, [call(0, Outcome.FAILED, NOW)], NOW)
    assert decision == Dial(1, 2, "+41440000002", NOW + s(57), 30)


def test_invalid_number_moves_to_the_next_step_at_once() -> None:
    strategy = make(attempts=[{"phone": 1, "max_tries": 5}, {"phone": 2}])
    decision = next_action(strategy, PHONES, [call(0, Outcome.INVALID_NUMBER, NOW)], NOW)
    assert decision == Dial(1, 2, "+41440000002", NOW, 30)


def test_machine_is_retried_after_an_hour() -> None:
    strategy = make(attempts=[{"phone": 1, "max_tries": 2}])
    decision = next_action(strategy, PHONES, [call(0, Outcome.MACHINE, NOW)], NOW)
    assert isinstance(decision, Dial) and decision.at == NOW + s(3600)


def test_last_step_exhausted_closes_retries_completed() -> None:
    strategy = make(attempts=[{"phone": 1, "max_tries": 2}])
    history = [call(0, Outcome.BUSY, NOW), call(0, Outcome.BUSY, NOW + s(600))]
    assert next_action(strategy, PHONES, history, NOW + s(700)) == Close(
        "retries_completed", "failed", "$unavailable"
    )


def test_next_after_the_last_step_closes_retries_completed() -> None:
    decision = next_action(make(), PHONES, [call(0, Outcome.INVALID_NUMBER, NOW)], NOW)
    assert decision == close_for("retries_completed")


def test_next_skips_a_following_step_without_a_number() -> None:
    strategy = make(attempts=[{"phone": 2}, {"phone": 1}, {"phone": 2, "delay_s": 5}])
    phones = (None, "222")
    history = [call(0, Outcome.FAILED, NOW, slot=2, number="222")]
    assert next_action(strategy, phones, history, NOW) == Dial(2, 2, "222", NOW + s(5), 30)


def test_close_rule_closes_with_its_state_status_and_detail() -> None:
    strategy = make(
        on={
            "invalid_number": {
                "action": "close",
                "state": "not_connected",
                "status_detail": "$wrong_number",
            }
        }
    )
    decision = next_action(strategy, PHONES, [call(0, Outcome.INVALID_NUMBER, NOW)], NOW)
    assert decision == Close("not_connected", "failed", "$wrong_number")


def test_at_is_never_before_now() -> None:
    # The result arrived late: a retry due "5 s after the call" is due now.
    strategy = make(on={"busy": {"action": "retry", "delay_s": 5}}, attempts=[{"max_tries": 3}])
    later = NOW + s(3600)
    decision = next_action(strategy, PHONES, [call(0, Outcome.BUSY, NOW)], later)
    assert isinstance(decision, Dial) and decision.at == later + s(5)


def test_dangling_closes_dangling_and_is_never_redialled() -> None:
    strategy = make(attempts=[{"phone": 1, "max_tries": 10}, {"phone": 2}])
    decision = next_action(strategy, PHONES, [call(0, Outcome.DANGLING, NOW)], NOW)
    assert decision == Close("dangling", "failed", "$error")


def test_dangling_close_keeps_a_custom_detail() -> None:
    strategy = make(on={"dangling": {"action": "close", "state": "dangling", "status": "open"}})
    decision = next_action(strategy, PHONES, [call(0, Outcome.DANGLING, NOW)], NOW)
    assert decision == Close("dangling", "open", "$error")


# --- SMS --------------------------------------------------------------------


def test_busy_on_phone1_sends_sms_then_closes_sms_sent() -> None:
    strategy = shipped("phones-then-sms")
    busy = call(0, Outcome.BUSY, NOW)
    later = NOW + s(40)
    decision = next_action(strategy, PHONES, [busy], later)
    assert decision == SendSms(0, 1, "+41440000001", later, strategy.sms_text or "")
    sent = sms(0, "sent", later)
    assert next_action(strategy, PHONES, [busy, sent], later + s(2)) == Close(
        "sms_sent", "open", "$none"
    )


def test_busy_on_phone2_is_retried_not_texted() -> None:
    strategy = shipped("phones-then-sms")
    history = [call(0, Outcome.NO_ANSWER, NOW)] * 3 + [call(1, Outcome.BUSY, NOW, slot=2)]
    decision = next_action(strategy, PHONES, history, NOW)
    assert decision == Dial(1, 2, "+41440000002", NOW + s(600), 25)


def test_sms_action_texts_the_number_just_called() -> None:
    strategy = make(sms={"text": SMS_TEXT}, attempts=[{"phone": 2, "on": {"busy": "sms"}}])
    history = [call(0, Outcome.BUSY, NOW, slot=2)]
    assert next_action(strategy, PHONES, history, NOW) == SendSms(
        0, 2, "+41440000002", NOW, SMS_TEXT
    )


def test_sms_sent_closed_closes_with_success() -> None:
    strategy = make(
        sms={"text": SMS_TEXT, "close_state": "sms_sent_closed"},
        attempts=[{"phone": 1, "on": {"no_answer": "sms"}}],
    )
    history = [call(0, Outcome.NO_ANSWER, NOW), sms(0, "sent", NOW)]
    assert next_action(strategy, PHONES, history, NOW) == Close(
        "sms_sent_closed", "success", "$none"
    )


def test_failed_sms_after_busy_moves_to_the_next_step() -> None:
    strategy = shipped("phones-then-sms")
    history = [call(0, Outcome.BUSY, NOW), sms(0, "failed", NOW + s(1))]
    later = NOW + s(5)
    assert next_action(strategy, PHONES, history, later) == Dial(
        1, 2, "+41440000002", later + s(300), 25
    )


def test_failed_sms_on_the_last_call_step_closes_retries_completed() -> None:
    strategy = make(sms={"text": SMS_TEXT}, attempts=[{"phone": 1, "on": {"busy": "sms"}}])
    history = [call(0, Outcome.BUSY, NOW), sms(0, "failed", NOW)]
    assert next_action(strategy, PHONES, history, NOW) == close_for("retries_completed")


def test_all_calls_failing_ends_with_the_last_sms_step() -> None:
    strategy = shipped("phones-then-sms")
    history = [call(0, Outcome.NO_ANSWER, NOW)] * 3 + [call(1, Outcome.NO_ANSWER, NOW, slot=2)] * 2
    decision = next_action(strategy, PHONES, history, NOW)
    assert decision == SendSms(2, 1, "+41440000001", NOW + s(1800), strategy.sms_text or "")
    history.append(sms(2, "sent", NOW + s(1800)))
    assert next_action(strategy, PHONES, history, NOW + s(1801)) == Close(
        "sms_sent", "open", "$none"
    )


def test_sms_only_retries_a_failed_send_then_gives_up() -> None:
    strategy = shipped("sms-only")
    first = sms(0, "failed", NOW)
    decision = next_action(strategy, PHONES, [first], NOW + s(3))
    assert decision == SendSms(0, 1, "+41440000001", NOW + s(3603), strategy.sms_text or "")
    second = sms(0, "failed", NOW + s(3603))
    assert next_action(strategy, PHONES, [first, second], NOW + s(3604)) == close_for(
        "retries_completed"
    )


def test_sms_only_closes_sms_sent_closed_once_sent() -> None:
    strategy = shipped("sms-only")
    assert next_action(strategy, PHONES, [sms(0, "sent", NOW)], NOW) == Close(
        "sms_sent_closed", "success", "$none"
    )


# --- Caps -------------------------------------------------------------------


def test_per_contact_cap_closes_retries_completed() -> None:
    strategy = make(caps={"per_contact": 2}, attempts=[{"phone": 1, "max_tries": 5}])
    history = [call(0, Outcome.BUSY, NOW), call(0, Outcome.BUSY, NOW + s(600))]
    assert next_action(strategy, PHONES, history, NOW + s(700)) == close_for("retries_completed")


def test_per_contact_cap_counts_sms_too() -> None:
    strategy = make(
        caps={"per_contact": 2},
        sms={"text": SMS_TEXT},
        attempts=[{"phone": 1, "on": {"busy": "sms"}}, {"phone": 2}],
    )
    history = [call(0, Outcome.BUSY, NOW), sms(0, "failed", NOW)]
    assert next_action(strategy, PHONES, history, NOW) == close_for("retries_completed")
    # ...and stops an SMS action as well.
    strategy = make(
        caps={"per_contact": 1},
        sms={"text": SMS_TEXT},
        attempts=[{"phone": 1, "on": {"busy": "sms"}}],
    )
    assert next_action(strategy, PHONES, [call(0, Outcome.BUSY, NOW)], NOW) == close_for(
        "retries_completed"
    )


def test_a_close_rule_wins_over_a_reached_per_contact_cap() -> None:
    strategy = make(caps={"per_contact": 1})
    history = [call(0, Outcome.ANSWERED, NOW)]
    assert next_action(strategy, PHONES, history, NOW) == Close("connected", "success", "$none")


def test_per_phone_cap_skips_to_the_next_step() -> None:
    strategy = make(
        caps={"per_phone": 2},
        attempts=[{"phone": 1, "max_tries": 5}, {"phone": 2, "delay_s": 10}],
    )
    history = [call(0, Outcome.BUSY, NOW), call(0, Outcome.BUSY, NOW + s(600))]
    later = NOW + s(650)
    assert next_action(strategy, PHONES, history, later) == Dial(
        1, 2, "+41440000002", later + s(600 + 10), 30
    )


def test_per_phone_cap_counts_the_dialled_number_not_the_slot() -> None:
    # Phone 2 is empty, so step 1 would dial phone 1 again: its calls count.
    strategy = make(caps={"per_phone": 2}, attempts=[{"phone": 1, "max_tries": 2}, {"phone": 2}])
    phones = ("111", None)
    history = [
        call(0, Outcome.BUSY, NOW, number="111"),
        call(0, Outcome.BUSY, NOW + s(600), number="111"),
    ]
    assert next_action(strategy, phones, history, NOW + s(700)) == close_for("retries_completed")


def test_per_phone_cap_does_not_stop_sms() -> None:
    strategy = make(
        caps={"per_phone": 1}, sms={"text": SMS_TEXT}, attempts=[{"phone": 1}, {"sms": True}]
    )
    decision = next_action(strategy, PHONES, [call(0, Outcome.NO_ANSWER, NOW)], NOW)
    assert isinstance(decision, SendSms) and decision.number == "+41440000001"


def test_per_day_cap_pushes_to_next_window() -> None:
    strategy = make(
        caps={"per_day": 2},
        on={"busy": {"action": "retry", "delay_s": 60}},
        attempts=[{"phone": 1, "max_tries": 5}],
    )
    history = [call(0, Outcome.BUSY, NOW), call(0, Outcome.BUSY, NOW + s(3600))]
    decision = next_action(strategy, PHONES, history, NOW + s(3630))
    # Two calls in the last 24 h: the third waits until the first is 24 h old.
    assert decision == Dial(0, 1, "+41440000001", NOW + timedelta(hours=24), 30)


def test_per_day_cap_leaves_a_call_alone_when_the_window_has_room() -> None:
    strategy = make(caps={"per_day": 2}, attempts=[{"phone": 1, "max_tries": 5}])
    history = [call(0, Outcome.BUSY, NOW - timedelta(hours=30)), call(0, Outcome.BUSY, NOW)]
    decision = next_action(strategy, PHONES, history, NOW)
    assert isinstance(decision, Dial) and decision.at == NOW + s(600)


def test_per_day_cap_counts_calls_not_sms() -> None:
    strategy = make(
        caps={"per_day": 1},
        sms={"text": SMS_TEXT},
        attempts=[{"sms": True}, {"phone": 2}],
    )
    decision = next_action(strategy, PHONES, [sms(0, "failed", NOW)], NOW)
    assert decision == Dial(1, 2, "+41440000002", NOW, 30)


# --- Misuse -----------------------------------------------------------------


def test_next_action_refuses_a_history_that_does_not_fit() -> None:
    strategy = make()
    with pytest.raises(ValueError, match="history must end"):
        next_action(strategy, PHONES, [], NOW)
    with pytest.raises(ValueError, match="step 3 is not a step"):
        next_action(strategy, PHONES, [call(3, Outcome.BUSY, NOW)], NOW)
    with pytest.raises(ValueError, match="unknown call outcome 'sent'"):
        next_action(strategy, PHONES, [call(0, "sent", NOW)], NOW)
    with pytest.raises(ValueError, match="unknown SMS outcome 'busy'"):
        next_action(strategy, PHONES, [sms(0, "busy", NOW)], NOW)
    sms_strategy = make(sms={"text": "x"}, attempts=[{"sms": True}])
    with pytest.raises(ValueError, match="a call attempt on step 0, an SMS step"):
        next_action(sms_strategy, PHONES, [call(0, Outcome.BUSY, NOW)], NOW)


# --- Properties -------------------------------------------------------------

_delays = st.one_of(
    st.sampled_from([0, 60, 300, 600, 1800, 3600, 86400]), st.integers(0, MAX_DELAY_S)
)
# Cheaper than st.from_regex, which made these tests several times slower.
_names = st.builds(operator.add, st.sampled_from("a0z9"), st.text("az09_-", max_size=62))
_custom_details = st.builds(operator.add, st.sampled_from("a9_"), st.text("az09_ -", max_size=99))
_details = st.one_of(st.none(), st.sampled_from(PREDEFINED_DETAILS), _custom_details)
_texts = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() != "")
_CALL_CLOSE_STATES = ("connected", "not_connected", "retries_completed", "dnc_listed", "cancelled")


@functools.cache  # building search strategies costs more than drawing from them
def _rules(channel: str, outcome: str, sms_action: bool) -> st.SearchStrategy[Rule]:
    if channel == "call" and outcome == Outcome.TRUNK_ERROR:
        return st.builds(Rule, st.just(Action.RETRY), delay_s=_delays)
    if channel == "call" and outcome == Outcome.DANGLING:
        return st.builds(
            Rule,
            st.just(Action.CLOSE),
            state=st.just("dangling"),
            status=st.none() | st.sampled_from(STATUSES),
            status_detail=_details,
        )
    states = _CALL_CLOSE_STATES
    if channel == "sms" and outcome == "sent":
        states += ("sms_sent", "sms_sent_closed")
    go_on = st.builds(Rule, st.sampled_from([Action.RETRY, Action.NEXT]), delay_s=_delays)
    # Mostly rules that go on, so that simulated contacts live long enough to meet the caps.
    options = [
        go_on,
        go_on,
        go_on,
        st.builds(
            Rule,
            st.just(Action.CLOSE),
            state=st.sampled_from(states),
            status=st.none() | st.sampled_from(STATUSES),
            status_detail=_details,
        ),
    ]
    if sms_action and channel == "call":
        options.append(st.just(Rule(Action.SMS)))
    return st.one_of(options)


@st.composite
def _steps(draw: st.DrawFn, sms_text: str | None) -> Step:
    channel = draw(st.sampled_from(["call", "call", "sms"]))
    outcomes = CALL_OUTCOMES if channel == "call" else SMS_OUTCOMES
    overridden = draw(st.lists(st.sampled_from(outcomes), unique=True, max_size=4))
    rules = {o: draw(_rules(channel, o, sms_text is not None)) for o in overridden}
    text = None
    if channel == "sms" and (sms_text is None or draw(st.booleans())):
        text = draw(_texts)
    return Step(
        channel=channel,
        phone=draw(st.integers(1, 5)),
        ring_timeout_s=draw(st.integers(15, 300)) if channel == "call" else 30,
        delay_s=draw(_delays),
        max_tries=draw(st.sampled_from([3, 1, 2, 4])),
        rules=rules,
        text=text,
    )


# Hypothesis favours the first element of sampled_from: lists start with the
# value that makes for long, interesting contacts rather than the smallest one.
@st.composite
def strategies(draw: st.DrawFn, max_per_contact: int = 1000) -> Strategy:
    """Any valid strategy, built directly rather than parsed."""
    sms_text = draw(st.none() | _texts)
    return Strategy(
        name=draw(_names),
        version=draw(st.integers(1, 10_000)),
        description=draw(st.text(max_size=30)),
        steps=tuple(draw(_steps(sms_text)) for _ in range(draw(st.sampled_from([3, 1, 2, 4, 6])))),
        caps=Caps(
            per_contact=draw(
                st.sampled_from([13, 2, 3, 5, 8, max_per_contact]) | st.integers(1, max_per_contact)
            ),
            per_phone=draw(st.none() | st.sampled_from([3, 1, 2, 6])),
            per_day=draw(st.none() | st.sampled_from([3, 1, 2, 6])),
        ),
        sms_text=sms_text,
        sms_close_state=draw(st.sampled_from(["sms_sent", "sms_sent_closed"])),
    )


# Phone 1 is mostly given, as imports require it; the others mostly not. Numbers
# repeat across slots, as they do in real contact lists.
_phones = st.tuples(
    st.sampled_from(["111", "111", "222", "", None]),
    *[st.sampled_from(["222", "333", "111", "", None, None])] * 4,
).map(list)


@given(strategies())
def test_strategy_round_trips_through_its_json_form(strategy: Strategy) -> None:
    data = json.loads(json.dumps(strategy_to_dict(strategy)))
    again = parse_strategy(data)
    assert again == strategy
    assert hash(again) == hash(strategy)


@settings(max_examples=50)
@given(strategies(), _phones)
def test_first_action_dials_a_given_number_or_closes_invalid_contact(
    strategy: Strategy, phones: list[str | None]
) -> None:
    decision = first_action(strategy, phones, NOW)
    usable = [
        step for step in strategy.steps if (phones[step.phone - 1] or "").strip() or phones[0]
    ]
    if not usable:
        assert decision == Close("not_connected", "failed", "$invalid_contact")
        return
    assert not isinstance(decision, Close)
    assert decision.step == strategy.steps.index(usable[0])
    assert decision.number == phones[decision.phone_slot - 1]
    assert decision.at == NOW + s(usable[0].delay_s)


def _check_decision(strategy: Strategy, phones: list[str | None], decision: Dial | SendSms) -> None:
    assert 0 <= decision.step < len(strategy.steps)
    step = strategy.steps[decision.step]
    assert decision.number and decision.number == phones[decision.phone_slot - 1]
    # The step's own phone, or phone 1 when that one is empty.
    assert decision.phone_slot in (step.phone, 1)
    if decision.phone_slot != step.phone:
        assert not phones[step.phone - 1]
    if isinstance(decision, Dial):
        assert step.channel == "call"
        assert decision.ring_timeout_s == step.ring_timeout_s
    else:
        assert decision.text == (step.text or strategy.sms_text)


# Mostly outcomes that go on, so that contacts live long enough to meet the caps.
_CALL_RESULTS = st.sampled_from(
    [o for o in CALL_OUTCOMES if o not in ("answered", "dangling")] * 6 + ["answered", "dangling"]
)
_SMS_RESULTS = st.sampled_from(["failed", "failed", "sent"])


@settings(max_examples=200, deadline=None)
@given(strategies(max_per_contact=25), _phones, st.data())
def test_simulated_contacts_respect_the_caps_and_always_close(
    strategy: Strategy, phones: list[str | None], data: st.DataObject
) -> None:
    caps = strategy.caps
    now = NOW
    history: list[PastAttempt] = []
    decision: Decision = first_action(strategy, phones, now)
    # Decisions after which the contact was really tried: trunk errors count for nothing.
    decisions = 1
    while not isinstance(decision, Close):
        assert decisions <= caps.per_contact, "more attempts than caps.per_contact"
        assert decision.at >= now
        _check_decision(strategy, phones, decision)
        channel = "call" if isinstance(decision, Dial) else "sms"
        if isinstance(decision, Dial) and caps.per_phone is not None:
            same_number = [
                a
                for a in history
                if a.channel == "call"
                and a.number == decision.number
                and a.outcome != Outcome.TRUNK_ERROR
            ]
            assert len(same_number) < caps.per_phone
        outcome = data.draw(_CALL_RESULTS if channel == "call" else _SMS_RESULTS)
        # The scheduler may start late; the result arrives some time after the start.
        started = decision.at + s(data.draw(st.sampled_from([0, 0, 1, 90, 7200])))
        history.append(
            PastAttempt(
                decision.step, channel, decision.phone_slot, decision.number, outcome, started
            )
        )
        now = started + s(data.draw(st.sampled_from([0, 5, 45, 3600])))
        previous = decision
        decision = next_action(strategy, phones, history, now)
        if channel == "call" and outcome == Outcome.TRUNK_ERROR:
            # The same call again, later; nothing counted.
            assert isinstance(decision, Dial) and decision.step == previous.step
            assert decision.number == previous.number and decision.at >= now
        else:
            decisions += 1
        if channel == "call" and outcome == Outcome.DANGLING:
            assert isinstance(decision, Close) and decision.state == "dangling"

    history = [a for a in history if a.outcome != Outcome.TRUNK_ERROR]
    assert len(history) <= caps.per_contact
    assert decisions <= caps.per_contact + 1
    assert decision.state in CONTACT_FINAL_STATES - {"sms_responded"}
    assert decision.status in STATUSES
    assert decision.status_detail in PREDEFINED_DETAILS or DETAIL_PATTERN.fullmatch(
        decision.status_detail
    )
    calls = [a for a in history if a.channel == "call"]
    if caps.per_phone is not None:
        assert max(Counter(a.number for a in calls).values(), default=0) <= caps.per_phone
    if caps.per_day is not None:
        for end in calls:
            window = [a for a in calls if end.started_at - timedelta(hours=24) < a.started_at]
            window = [a for a in window if a.started_at <= end.started_at]
            assert len(window) <= caps.per_day


@settings(max_examples=50)
@given(strategies(max_per_contact=25), _phones, st.sampled_from(range(6)))
def test_a_dangling_call_always_closes_the_contact(
    strategy: Strategy, phones: list[str | None], earlier: int
) -> None:
    calls = [i for i, step in enumerate(strategy.steps) if step.channel == "call"]
    if not calls:
        return
    step = calls[earlier % len(calls)]
    history = [PastAttempt(step, "call", 1, "111", Outcome.BUSY, NOW)] * earlier
    history.append(PastAttempt(step, "call", 1, "111", Outcome.DANGLING, NOW))
    decision = next_action(strategy, phones, history, NOW)
    assert isinstance(decision, Close) and decision.state == "dangling"
