"""Our AMI message parser gives the Message panoramisk's own parser gives, faster."""

from __future__ import annotations

import asyncio
from typing import Any

import panoramisk
import panoramisk.actions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.telephony.ami import _TimedAction, parse_message

MESSAGES = [
    "Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/carrier-00000001\r\n"
    "Uniqueid: 0b5e8c2a-1f3e-4c1b-9e33-3d0c4c7f5a10\r\nCause: 16\r\n"
    "Cause-txt: Normal Clearing\r\nTechCause: 200",
    "Response: Success\r\nActionID: action/1/2/3\r\nMessage: Originate successfully queued",
    "Event: OriginateResponse\r\nActionID: action/1\r\nResponse: Failure\r\nReason: 0",
    "Event: UserEvent\r\nUserEvent: DialerAmd\r\nAttemptId: x\r\nStatus: MACHINE\r\nCause: ",
    "Event: VarSet\r\nVariable: A=1\r\nVariable: B=2\r\nVariable: C=3",
    "Response: Success\r\nResult: 200%20result%3D1 ",
    "Response: Follows\r\nPrivilege: Command\r\n--END COMMAND--",
    "Response: Fail\r\nMessage: no\r\nbody",
    "Asterisk Call Manager/9.0.0",
    "no header here",
    "Event: Odd\r\nLine without separator\r\nKey:no space\r\nEmpty: \r\n: no key",
]


def _same(text: str) -> None:
    ours, theirs = parse_message(text), panoramisk.Message.from_line(text)
    if theirs is None:
        assert ours is None
        return
    assert ours is not None
    assert type(ours) is type(theirs)
    assert dict(ours.items()) == dict(theirs.items())
    assert list(ours) == list(theirs)
    assert (ours.id, ours.action_id, ours.success) == (theirs.id, theirs.action_id, theirs.success)
    for key in theirs:
        assert ours[key.upper()] == theirs[key.upper()]


@pytest.mark.parametrize("text", MESSAGES)
def test_each_kind_of_message_is_parsed_as_panoramisk_parses_it(text: str) -> None:
    _same(text)


_KEYS = st.sampled_from(
    ["Event", "Response", "ActionID", "Variable", "variable", "Result", "X", ""]
)
_VALUES = st.text(alphabet="abc %:=2F-", max_size=8)


@given(st.lists(st.tuples(_KEYS, _VALUES), max_size=8))
def test_any_headers_are_parsed_as_panoramisk_parses_them(headers: list[tuple[str, str]]) -> None:
    _same("\r\n".join(f"{key}: {value}" for key, value in headers))


_ACTION_KEYS = st.sampled_from(["Action", "Channel", "Variable", "Async", "ActionID", "Timeout"])
_ACTION_VALUES = st.one_of(
    st.text(alphabet="abc =/@-1", max_size=8),
    st.lists(st.text(alphabet="abc =1", max_size=5), max_size=3),
)


@given(st.dictionaries(_ACTION_KEYS, _ACTION_VALUES, max_size=6))
def test_an_action_is_written_as_panoramisk_writes_it(fields: dict[str, Any]) -> None:
    # Ours is built without panoramisk's per-header calls: the same text, the same
    # lookups, and an ActionID of its own unless the action has one.
    async def both() -> tuple[Any, Any]:
        return _TimedAction(fields, lambda: None), panoramisk.actions.Action(dict(fields))

    ours, theirs = asyncio.run(both())
    if "ActionID" in fields:
        assert ours.id == theirs.id == fields["ActionID"]
    else:
        assert ours.id.startswith("action/") and ours.id != theirs.id
    # The generated ids differ; everything else is the same text.
    for action in (ours, theirs):
        action._store["actionid"] = ("ActionID", "x")
    assert str(ours) == str(theirs)
    for key in fields:
        assert ours[key.upper()] == theirs[key.upper()]


_REPLY_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Response": st.sampled_from(["Success", "Error", "Follows", "Goodbye", ""]),
        "Event": st.sampled_from(
            ["OriginateResponse", "DBGetTreeComplete", "QueueMember", "CoreShowChannel"]
        ),
        "SubEvent": st.sampled_from(["Start", "End", "Exec", "Other"]),
        "EventList": st.sampled_from(["start", "Complete"]),
        "Message": st.sampled_from(
            [
                "Originate successfully queued",
                "Added interface to queue",
                "Results will follow",
                "Key deleted successfully",
                "",
            ]
        ),
    },
)


@given(
    st.sampled_from([None, True, False]),
    st.sampled_from(["true", "false", None]),
    st.lists(_REPLY_HEADERS, min_size=1, max_size=5),
)
def test_a_reply_completes_an_action_as_it_completes_panoramisks(
    as_list: bool | None, asynchronous: str | None, replies: list[dict[str, str]]
) -> None:
    # Ours works out once whether a reply has several messages; every message must
    # still end the action (or not) as panoramisk's would, with the same result.
    fields = {"Action": "Originate", "ActionID": "a/1"}
    if asynchronous is not None:
        fields["Async"] = asynchronous

    async def both() -> None:
        first_replies: list[int] = []
        ours = _TimedAction(fields, lambda: first_replies.append(1), as_list)
        theirs = panoramisk.actions.Action(dict(fields), as_list=as_list)
        for headers in replies:
            message = panoramisk.Message(headers)
            outcomes = []
            for action in (ours, theirs):
                try:
                    outcomes.append(action.add_message(message))
                except KeyError as exc:  # a queued Originate that does not say Async
                    outcomes.append(exc)
            if isinstance(outcomes[1], KeyError):
                assert isinstance(outcomes[0], KeyError)
                return
            assert outcomes[0] == outcomes[1]
            assert ours.future.done() == theirs.future.done()
        if theirs.future.done():
            assert ours.future.result() == theirs.future.result()
        assert first_replies == [1]

    asyncio.run(both())
