"""The pure parts of flow tasks: another run of a strategy, emails, filters, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.config import load_config
from dialer_server.engine.strategy import (
    Close,
    Dial,
    PastAttempt,
    next_action,
    parse_strategy,
    rerun_action,
)
from dialer_server.errors import ConfigError, InvalidInput
from dialer_server.flows import mail
from dialer_server.flows.selection import parse_filter

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
STRATEGY = parse_strategy(
    {
        "name": "s",
        "version": 1,
        "caps": {"per_contact": 4, "per_day": 3},
        "attempts": [{"phone": 1, "max_tries": 2}, {"phone": 2}],
    }
)


def busy(step: int, minutes_ago: int, number: str = "+12025550100") -> PastAttempt:
    return PastAttempt(step, "call", 1, number, "busy", NOW - timedelta(minutes=minutes_ago))


def test_another_run_starts_at_the_first_step_within_the_caps() -> None:
    decision = rerun_action(STRATEGY, ["+12025550100"], [busy(0, 90)], NOW, NOW)
    assert isinstance(decision, Dial) and decision.step == 0 and decision.at == NOW


def test_another_run_with_the_contact_cap_used_up_makes_no_call() -> None:
    history = [busy(0, 50), busy(0, 40), busy(1, 30), busy(1, 20)]
    assert rerun_action(STRATEGY, ["+12025550100"], history, NOW, NOW) == Close(
        "retries_completed", "failed", "$unavailable"
    )


def test_another_run_waits_for_the_daily_cap_of_every_pass() -> None:
    history = [busy(0, 30), busy(0, 20), busy(1, 10)]
    decision = rerun_action(STRATEGY, ["+12025550100"], history, NOW, NOW)
    assert isinstance(decision, Dial)
    assert decision.at == NOW - timedelta(minutes=30) + timedelta(hours=24)


def test_max_tries_count_within_the_run_and_the_caps_over_every_run() -> None:
    earlier = [busy(0, 300), busy(0, 290)]  # the first pass used step 0's two tries
    run_start = NOW - timedelta(minutes=5)
    history = [*earlier, busy(0, 1)]
    again = next_action(STRATEGY, ["+12025550100"], history, NOW, run_since=run_start)
    assert isinstance(again, Dial) and again.step == 0  # one try of this run so far
    moved_on = next_action(STRATEGY, ["+12025550100"], history, NOW)
    assert isinstance(moved_on, Dial) and moved_on.step == 1  # counted over every run


@given(st.lists(st.integers(min_value=0, max_value=1), min_size=0, max_size=12))
def test_another_run_never_calls_past_the_contact_cap(steps: list[int]) -> None:
    history = [busy(step, 2000 - 60 * i) for i, step in enumerate(steps)]
    decision = rerun_action(STRATEGY, ["+12025550100", "+12025550101"], history, NOW, NOW)
    if len(history) >= STRATEGY.caps.per_contact:
        assert isinstance(decision, Close) and decision.state == "retries_completed"
    else:
        assert isinstance(decision, Dial) and decision.at >= NOW


def test_an_email_is_rendered_on_one_header_line_with_its_key() -> None:
    params = {"param1": "Ann\r\nBcc: x@evil.test", "param3": " ann@example.com "}
    to, subject, body = mail.render(
        {"to": "{param3}", "subject": "Hi {param1}", "body": "Dear {param1}"}, params
    )
    assert to == "ann@example.com" and mail.valid_address(to)
    message = mail.build_message(
        key="k-1", sender="sales@dialer.test", to=to, subject=subject, body=body
    )
    assert message["Subject"] == "Hi Ann Bcc: x@evil.test"
    assert message["Message-ID"] == "<k-1@dialer.test>"
    assert message["X-Dialer-Idempotency-Key"] == "k-1"
    assert message["Bcc"] is None


@pytest.mark.parametrize("address", ["", "ann", "ann@", "a b@example.com", "ann@example"])
def test_what_is_not_an_email_address(address: str) -> None:
    assert not mail.valid_address(address)


def test_a_filter_takes_one_value_or_a_list_and_names_a_bad_field() -> None:
    selection = parse_filter({"task": "later", "status": ["open", "failed"], "contact_ids": [3]})
    assert selection.to_json() == {
        "task": ["later"],
        "status": ["open", "failed"],
        "contact_ids": [3],
    }
    with pytest.raises(InvalidInput, match=r"filter.status: unknown 'won'"):
        parse_filter({"status": "won"})
    with pytest.raises(InvalidInput, match=r"filter.contact_ids must be"):
        parse_filter({"contact_ids": [0]})


def test_flow_and_smtp_settings_are_checked() -> None:
    config = load_config(env={"DIALER_SMTP_HOST": "mail", "DIALER_SMTP_FROM_ADDRESS": "a@b.c"})
    assert config.smtp.port == 25 and config.flows.dir == "flows"
    with pytest.raises(ConfigError, match=r"smtp\.from_address"):
        load_config(env={"DIALER_SMTP_HOST": "mail"})
    with pytest.raises(ConfigError, match=r"smtp\.tls"):
        load_config(env={"DIALER_SMTP_TLS": "ssl"})
    with pytest.raises(ConfigError, match=r"flows\.min_backoff_s"):
        load_config(env={"DIALER_FLOWS_MIN_BACKOFF_S": "10", "DIALER_FLOWS_MAX_BACKOFF_S": "1"})
