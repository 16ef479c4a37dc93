"""The desk's pure parts: the script's placeholders, the state line, callbacks in the
contact's time, the event stream's filters and mailboxes, roles, passwords."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.accounts import passwords
from dialer_server.accounts.roles import READ_ONLY, ROLES, check_roles
from dialer_server.api.desk import desk_state
from dialer_server.campaigns.desk import local_to_utc, render_script
from dialer_server.campaigns.operations import check_param_names
from dialer_server.errors import InvalidInput
from dialer_server.events import (
    EVENT_TYPES,
    EventFilter,
    StreamEvent,
    Subscriber,
    parse_campaigns,
    parse_types,
)

CONTACT = {"external_id": "crm-7", "param1": "Ada", "param2": "gold", "param3": None}


def test_the_script_takes_params_by_number_by_the_campaigns_names_and_the_external_id() -> None:
    script = "Hi {first_name} ({param1}), your {plan} plan, ref {external_id}. {param3}|{nope}"
    names = {"param1": "first_name", "param2": "plan"}
    assert render_script(script, CONTACT, names) == (
        "Hi Ada (Ada), your gold plan, ref crm-7. |{nope}"
    )
    assert render_script(None, CONTACT, names) == ""
    assert render_script("{first_name}", CONTACT, None) == "{first_name}"


@given(st.text(max_size=200))
def test_a_script_without_known_placeholders_is_shown_as_written(text: str) -> None:
    if "{" in text:
        return
    assert render_script(text, CONTACT, {"param1": "first_name"}) == text


@dataclasses.dataclass(frozen=True)
class Member:
    queue: str
    status: str
    paused: bool = False
    pause_reason: str = ""
    in_call: bool = False


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], ("logged_out", "")),
        ([Member("q", "unavailable")], ("logged_out", "")),
        ([Member("q", "free")], ("ready", "")),
        ([Member("q", "ringing")], ("ringing", "")),
        ([Member("q", "busy")], ("on_call", "")),
        # A wrap-up pause begins while the call is up: on call wins.
        ([Member("q", "paused", True, "wrap-up", in_call=True)], ("on_call", "")),
        ([Member("q", "paused", True, "wrap-up")], ("wrap_up", "wrap-up")),
        ([Member("q", "paused", True, "lunch")], ("paused", "lunch")),
        ([Member("a", "free"), Member("b", "paused", True, "break")], ("paused", "break")),
        ([Member("a", "unavailable"), Member("b", "free")], ("ready", "")),
    ],
)
def test_the_state_line_from_the_agents_memberships(
    members: list[Member], expected: tuple[str, str]
) -> None:
    assert desk_state(members) == expected


def test_a_callback_time_is_read_in_the_contacts_zone_across_a_dst_change() -> None:
    assert local_to_utc("2026-03-08T09:30", "America/New_York") == datetime(
        2026, 3, 8, 13, 30, tzinfo=UTC
    )
    assert local_to_utc("2026-03-07T09:30:15", "America/New_York") == datetime(
        2026, 3, 7, 14, 30, 15, tzinfo=UTC
    )
    for bad in ("tomorrow", "2026-03-07T09:30+01:00"):
        with pytest.raises(InvalidInput):
            local_to_utc(bad, "UTC")


def test_parameter_names_are_names_of_param1_to_param12_used_once() -> None:
    assert check_param_names({"param1": "first_name"}) == {"param1": "first_name"}
    assert check_param_names(None) is None
    for bad in ({"param13": "x"}, {"param1": "1st"}, {"param1": "a", "param2": "a"}, []):
        with pytest.raises(InvalidInput):
            check_param_names(bad)


def _event(
    seq: int, kind: str = "campaign.state_changed", campaign: int = 1, agent: str | None = None
) -> StreamEvent:
    return StreamEvent(seq, kind, campaign, agent, "{}")


def test_filters_by_campaign_type_and_an_agents_own_events() -> None:
    assert EventFilter().matches(_event(1))
    assert not EventFilter(campaigns=frozenset({2})).matches(_event(1))
    assert EventFilter(types=frozenset({"agent.state"})).matches(_event(1, "agent.state"))
    mine = EventFilter(agent="agent21")
    assert mine.matches(_event(1, "attempt.connected", agent="agent21"))
    assert not mine.matches(_event(2, "attempt.connected", agent="agent22"))
    assert not mine.matches(_event(3, "contact.final_state"))
    assert mine.matches(_event(4))  # campaigns' state changes are everyone's
    assert parse_types("agent.state,attempt.connected") == {"agent.state", "attempt.connected"}
    assert parse_types(None) is None
    assert parse_campaigns(["1,2", "3"]) == {1, 2, 3}
    assert parse_campaigns([]) is None
    for bad in ("nonsense", ","):
        with pytest.raises(ValueError, match="unknown event types"):
            parse_types(bad)
    with pytest.raises(ValueError, match="campaign ids"):
        parse_campaigns(["1,x"])
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))


async def test_a_subscriber_too_slow_to_keep_up_is_dropped_not_grown() -> None:
    subscriber = Subscriber(EventFilter(), size=3)
    for seq in range(1, 10):
        subscriber.offer(_event(seq))
    assert subscriber.dropped
    assert subscriber.queue.qsize() <= 3
    seen = [await subscriber.next(0.1) for _ in range(3)]
    assert None in seen  # the stream is told to end
    assert await asyncio.wait_for(subscriber.next(0.05), 1) is None


def test_operations_declare_known_roles_and_read_only_never_writes() -> None:
    check_roles(ROLES, "GET")
    with pytest.raises(ValueError):
        check_roles(("admin", "root"), "GET")
    with pytest.raises(ValueError):
        check_roles((), "GET")
    with pytest.raises(ValueError):
        check_roles((READ_ONLY,), "POST")
    check_roles((READ_ONLY,), "DELETE", own_session=True)


def test_passwords_are_argon2id_and_checked_without_telling_who_exists() -> None:
    encoded = passwords.hash_password("a-long-password")
    assert encoded.startswith("$argon2id$")
    assert passwords.verify_password(encoded, "a-long-password")
    assert not passwords.verify_password(encoded, "a-long-passwore")
    assert not passwords.verify_password(None, "a-long-password")
    assert not passwords.verify_password("not a hash", "x")
    assert passwords.check_password_rules("short") is not None
    assert passwords.check_password_rules(" padded-password ") is not None
    assert passwords.check_password_rules("good-password") is None
    token = passwords.new_token()
    assert token.startswith("dlr_") and len(token) > 40
    assert passwords.token_digest(token) != passwords.token_digest(passwords.new_token())
