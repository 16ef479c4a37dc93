"""IVR campaigns and answering-machine detection, through real Asterisk and sipp.

The far end (scripts/sipp/farend.xml) answers like a person pressing a key
(...301 presses 1, ...302 presses 2, after saying "Hello?"), like a person
saying "Hello?" (...401), like an answering machine with a long greeting (...402)
and like a line that answers and says nothing (...403). Our dialplan runs AMD()
and Read() on the real audio and DTMF and reports back by UserEvent; what is
asserted here is what the engine recorded from those reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from dialer_server.config import DialingConfig
from dialer_server.engine.answered_calls import Dialplan, dialplan_for, report_from_event


def test_ivr_campaigns_go_to_the_ivr_context_with_their_variables() -> None:
    dialing = DialingConfig()
    campaign = {"mode": "ivr", "amd": True, "ivr_playback": "custom/survey"}
    assert dialplan_for(campaign, dialing) == Dialplan(
        "dialer-ivr", {"DIALER_AMD": "1", "DIALER_PLAYBACK": "custom/survey"}
    )
    assert dialplan_for({"mode": "automated", "amd": False}, dialing) == Dialplan("dialer-answered")
    assert dialplan_for({"mode": "automated", "machine_message": "m"}, dialing).variables == {
        "DIALER_MACHINE_MESSAGE": "m"
    }


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"Event": "UserEvent", "UserEvent": "DialerAmd", "AttemptId": "a1", "Uniqueid": "u",
             "Status": "MACHINE", "Cause": "LONGGREETING-1500-1500"},
            ("a1", "MACHINE", "LONGGREETING-1500-1500", None),
        ),
        (
            {"event": "UserEvent", "userevent": "DialerIvr", "AttemptId": "", "Uniqueid": "u1",
             "Digits": "2", "Status": "OK"},
            ("u1", None, None, "2"),
        ),
        # Read() timed out: the IVR was reached, no key pressed.
        (
            {"Event": "UserEvent", "UserEvent": "DialerIvr", "AttemptId": "a2", "Digits": "",
             "Status": "TIMEOUT"},
            ("a2", None, None, ""),
        ),
        ({"Event": "UserEvent", "UserEvent": "DialerAmd", "AttemptId": "a", "Status": "?"}, None),
        ({"Event": "UserEvent", "UserEvent": "DialerIvr", "AttemptId": "a", "Digits": "1;"}, None),
        ({"Event": "UserEvent", "UserEvent": "DialerIvr", "Digits": "1"}, None),
        ({"Event": "UserEvent", "UserEvent": "DialerSmsIn", "AttemptId": "a"}, None),
        ({"Event": "Hangup", "Uniqueid": "u", "Cause": "16"}, None),
    ],
)  # fmt: skip
def test_dialplan_reports_are_read_from_their_user_events(
    event: dict[str, str], expected: tuple[Any, ...] | None
) -> None:
    report = report_from_event(event)
    if expected is None:
        assert report is None
    else:
        assert report is not None
        assert (report.attempt_id, report.amd_status, report.amd_cause, report.ivr_digits) == (
            expected
        )
