"""What our dialplan does with an answered call, and what it reports back.

A campaign's mode picks where an answered call enters the dialplan: IVR
campaigns go to ``dialing.ivr_context`` ([dialer-ivr]: a prompt, one key read),
the others to ``dialing.context`` ([dialer-answered]). Channel variables steer
the shipped contexts: ``DIALER_AMD=1`` runs answering-machine detection first
([dialer-amd]), ``DIALER_PLAYBACK`` is the campaign's prompt or message,
``DIALER_MACHINE_MESSAGE`` what is left on a machine.

The dialplan reports back with AMI UserEvents, each naming its attempt:

    UserEvent: DialerAmd   AttemptId: <attempt id>  Status: MACHINE  Cause: LONGGREETING-1500-1500
    UserEvent: DialerIvr   AttemptId: <attempt id>  Digits: 1        Status: OK

Both arrive before the call's Hangup. ``AnsweredCalls`` hands them to the
CallTracker, so the call's result carries them: an AMD verdict of MACHINE makes
the outcome ``machine`` (which the campaign's strategy acts on), and the verdict
and the digits are stored on the attempt with its result, in one transaction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from .ami import Event
from .config import DialingConfig
from .db import query
from .originate import CallResult, CallTracker

logger = logging.getLogger(__name__)

AMD_EVENT = "DialerAmd"
IVR_EVENT = "DialerIvr"
# AMDSTATUS values (app_amd); HANGUP never reaches us: the dialplan stops first.
AMD_STATUSES = ("MACHINE", "HUMAN", "NOTSURE", "HANGUP")
# A key pad has 16 keys; Read() gives at most what the dialplan asks for.
_DIGITS = frozenset("0123456789*#ABCD")
_MAX_DIGITS = 32


@dataclasses.dataclass(frozen=True)
class Dialplan:
    """Where a campaign's answered calls go, and the variables that steer them."""

    context: str
    variables: Mapping[str, str] = dataclasses.field(default_factory=dict)


def dialplan_for(campaign: Mapping[str, Any], dialing: DialingConfig) -> Dialplan:
    """The dialplan of a campaign row (``mode``, ``amd``, ``ivr_playback``, ``machine_message``).

    Modes other than ``ivr`` (automated, and the agent modes) use ``dialing.context``.
    """
    context = dialing.ivr_context if campaign.get("mode") == "ivr" else dialing.context
    variables: dict[str, str] = {}
    if campaign.get("amd"):
        variables["DIALER_AMD"] = "1"
    if campaign.get("ivr_playback"):
        variables["DIALER_PLAYBACK"] = str(campaign["ivr_playback"])
    if campaign.get("machine_message"):
        variables["DIALER_MACHINE_MESSAGE"] = str(campaign["machine_message"])
    return Dialplan(context, variables)


@dataclasses.dataclass(frozen=True)
class DialplanReport:
    """One UserEvent of our dialplan about an answered call."""

    attempt_id: str
    amd_status: str | None = None
    amd_cause: str | None = None
    ivr_digits: str | None = None


def report_from_event(event: Mapping[str, str]) -> DialplanReport | None:
    """The report in a DialerAmd or DialerIvr UserEvent; None for any other event.

    The attempt is the event's ``AttemptId`` (our DIALER_ATTEMPT_ID), else its
    ``Uniqueid``, which our Originate set to the attempt id too. An unknown AMD
    status or digits that no key pad sends are logged and dropped.
    """
    headers = {str(key).lower(): str(value).strip() for key, value in event.items()}
    if headers.get("event", "").lower() != "userevent":
        return None
    kind = headers.get("userevent", "").lower()
    if kind not in (AMD_EVENT.lower(), IVR_EVENT.lower()):
        return None
    attempt_id = headers.get("attemptid") or headers.get("uniqueid") or ""
    if not attempt_id:
        logger.warning("%s without an attempt id ignored", headers.get("userevent"))
        return None
    if kind == AMD_EVENT.lower():
        status = headers.get("status", "").upper()
        if status not in AMD_STATUSES:
            logger.warning(
                "unknown AMD status %r ignored",
                status,
                extra={"action": "amd", "attempt_id": attempt_id},
            )
            return None
        return DialplanReport(attempt_id, amd_status=status, amd_cause=headers.get("cause") or None)
    digits = headers.get("digits", "")
    if len(digits) > _MAX_DIGITS or not set(digits) <= _DIGITS:
        logger.warning(
            "IVR digits %r ignored",
            digits[:_MAX_DIGITS],
            extra={"action": "ivr", "attempt_id": attempt_id},
        )
        return None
    # No key pressed (Read() timed out) is a report too: an empty string.
    return DialplanReport(attempt_id, ivr_digits=digits)


class AnsweredCalls:
    """AMI event handler: gives each DialerAmd / DialerIvr report to the call it is about.

    Subscribe ``handle_event`` to the AmiClient that originates the calls. Reports
    of calls the tracker does not follow (another daemon's) are ignored: that
    daemon gets the same event and records it.
    """

    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker

    def handle_event(self, event: Event) -> None:
        report = report_from_event(event)
        if report is None:
            return
        if not self.tracker.note_dialplan(
            report.attempt_id, amd_status=report.amd_status, ivr_digits=report.ivr_digits
        ):
            return
        if report.amd_status is not None:
            logger.info(
                "AMD: %s (%s)",
                report.amd_status,
                report.amd_cause or "no cause",
                extra={"action": "amd", "attempt_id": report.attempt_id},
            )
        else:
            logger.info(
                "IVR keys: %r",
                report.ivr_digits,
                extra={"action": "ivr", "attempt_id": report.attempt_id},
            )


async def record_report(conn: Any, result: CallResult) -> None:
    """Store a call's AMD verdict and IVR keys on its attempt (when it has any).

    Called in the transaction that records the call's result (results.record_call),
    before the attempt ends: the attempt.result webhook reads them from the row.
    An attempt already ended is left as it is.
    """
    if result.amd_status is None and result.ivr_digits is None:
        return
    await conn.execute(
        query("record_dialplan_report"), result.attempt_id, result.amd_status, result.ivr_digits
    )
