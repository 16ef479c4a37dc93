"""What our dialplan does with an answered call, and what it reports back.

A campaign's mode picks where an answered call enters the dialplan: IVR
campaigns go to ``dialing.ivr_context`` ([dialer-ivr]: a prompt, one key read),
the agent modes (progressive, power, predictive) to ``dialing.agent_context``
([dialer-agents]: the campaign's queue), the others to ``dialing.context``
([dialer-answered]). Channel variables steer the shipped contexts:
``DIALER_AMD=1`` runs answering-machine detection first ([dialer-amd]),
``DIALER_PLAYBACK`` is the campaign's prompt or message,
``DIALER_MACHINE_MESSAGE`` what is left on a machine; ``DIALER_QUEUE``,
``DIALER_AGENT_WAIT_S`` (the grace time) and ``DIALER_ABANDON_MESSAGE`` steer
the agent context.

The dialplan reports back with AMI UserEvents, each naming its attempt:

    UserEvent: DialerAmd      AttemptId: <id>  Status: MACHINE  Cause: LONGGREETING-1500-1500
    UserEvent: DialerIvr      AttemptId: <id>  Digits: 1        Status: OK
    UserEvent: DialerAgent    AttemptId: <id>  Agent: agent07   Waited: 0.84
    UserEvent: DialerAbandon  AttemptId: <id>  Waited: 2.01     Reason: TIMEOUT

All arrive before the call's Hangup. ``AnsweredCalls`` hands them to the
CallTracker, so the call's result carries them: an AMD verdict of MACHINE makes
the outcome ``machine``, an abandon the outcome ``abandoned`` (both acted on by
the campaign's strategy), and what was reported is stored on the attempt with
its result, in one transaction (``results.record_calls``). In an agent mode each answered call that
reaches the queue gets exactly one of DialerAgent and DialerAbandon.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..config import DialingConfig
from ..telephony.ami import Event
from ..telephony.originate import CallTracker
from .agent_pacing import Mode

logger = logging.getLogger(__name__)

AMD_EVENT = "DialerAmd"
IVR_EVENT = "DialerIvr"
AGENT_EVENT = "DialerAgent"
ABANDON_EVENT = "DialerAbandon"
_EVENTS = {name.lower() for name in (AMD_EVENT, IVR_EVENT, AGENT_EVENT, ABANDON_EVENT)}
AGENT_MODES = tuple(mode.value for mode in Mode)
DEFAULT_QUEUE = "dialer-agents"
# A queue member name as queues.conf allows it, and abandon reasons as words:
# both are stored and logged, so nothing else gets through.
_AGENT_NAME = re.compile(r"[A-Za-z0-9_.@/-]{1,80}")
_REASON = re.compile(r"[A-Z_]{1,40}")
# Longer than any grace time (60 s at most) plus the queue's own delays.
_MAX_WAIT_S = 3600.0
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
    """The dialplan of a campaign row (``mode``, ``amd``, ``ivr_playback``, ``machine_message``,
    ``record_calls`` and ``recording_announcement``, and for the agent modes ``queue``,
    ``agent_wait_s``, ``abandon_message``).
    """
    mode = campaign.get("mode")
    variables: dict[str, str] = {}
    if mode == "ivr":
        context = dialing.ivr_context
    elif mode in AGENT_MODES:
        context = dialing.agent_context
        variables["DIALER_QUEUE"] = str(campaign.get("queue") or DEFAULT_QUEUE)
        variables["DIALER_AGENT_WAIT_S"] = _seconds(campaign.get("agent_wait_s") or 2)
        if campaign.get("abandon_message"):
            variables["DIALER_ABANDON_MESSAGE"] = str(campaign["abandon_message"])
    else:
        context = dialing.context
    if campaign.get("amd"):
        variables["DIALER_AMD"] = "1"
    if campaign.get("ivr_playback"):
        variables["DIALER_PLAYBACK"] = str(campaign["ivr_playback"])
    if campaign.get("machine_message"):
        variables["DIALER_MACHINE_MESSAGE"] = str(campaign["machine_message"])
    if campaign.get("record_calls"):
        # [dialer-record]: MixMonitor from the answer on (campaigns/recordings.py).
        variables["DIALER_RECORD"] = "1"
        if campaign.get("recording_announcement"):
            variables["DIALER_RECORDING_ANNOUNCEMENT"] = str(campaign["recording_announcement"])
    return Dialplan(context, variables)


def callback_dialplan(dialplan: Dialplan, dialing: DialingConfig) -> Dialplan:
    """Where a personal callback goes: the agent context whatever the campaign's mode,
    which connects it to its owner only (DIALER_AGENT, set by the scheduler)."""
    if dialplan.context == dialing.agent_context:
        return dialplan
    return Dialplan(dialing.agent_context, {"DIALER_AGENT_WAIT_S": "2", **dialplan.variables})


def _seconds(value: Any) -> str:
    """2 -> "2", Decimal("2.5") -> "2.5": a number the dialplan's expressions read."""
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


@dataclasses.dataclass(frozen=True)
class DialplanReport:
    """One UserEvent of our dialplan about an answered call."""

    attempt_id: str
    amd_status: str | None = None
    amd_cause: str | None = None
    ivr_digits: str | None = None
    # Agent modes: the member who took the call, or the abandon's reason.
    agent: str | None = None
    abandon_reason: str | None = None
    waited_s: float | None = None


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
    if kind not in _EVENTS:
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
    if kind in (AGENT_EVENT.lower(), ABANDON_EVENT.lower()):
        return _agent_report(kind, attempt_id, headers)
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


def _agent_report(kind: str, attempt_id: str, headers: Mapping[str, str]) -> DialplanReport | None:
    waited = _waited(headers.get("waited", ""))
    if kind == AGENT_EVENT.lower():
        agent = headers.get("agent", "")
        if not _AGENT_NAME.fullmatch(agent):
            logger.warning(
                "DialerAgent with agent %r ignored",
                agent[:80],
                extra={"action": "agent", "attempt_id": attempt_id},
            )
            return None
        return DialplanReport(attempt_id, agent=agent, waited_s=waited)
    reason = headers.get("reason", "").upper() or "UNKNOWN"
    if not _REASON.fullmatch(reason):
        reason = "UNKNOWN"
    return DialplanReport(attempt_id, abandon_reason=reason, waited_s=waited)


def _waited(text: str) -> float | None:
    """Seconds waited as the dialplan wrote them; None when missing or nonsense."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= _MAX_WAIT_S else None


class AnsweredCalls:
    """AMI event handler: gives each DialerAmd / DialerIvr report to the call it is about.

    Subscribe ``handle_event`` to the AmiClient that originates the calls. Reports
    of calls the tracker does not follow (another daemon's) are ignored: that
    daemon gets the same event and records it.
    """

    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        # Told (attempt id, agent) when an agent takes a call this daemon follows:
        # the attempt.connected event, the desk's wrap-up.
        self.on_connected: list[Callable[[str, str], None]] = []

    def handle_event(self, event: Event) -> None:
        # Every AMI event comes here; only UserEvents are worth reading in full.
        if event.get("Event") != "UserEvent":
            return
        report = report_from_event(event)
        if report is None:
            return
        if report.agent is not None or report.abandon_reason is not None:
            self._agent_report(report)
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

    def _agent_report(self, report: DialplanReport) -> None:
        if not self.tracker.note_agent(
            report.attempt_id,
            agent=report.agent,
            abandon_reason=report.abandon_reason,
            waited_s=report.waited_s,
        ):
            return
        if report.agent is not None:
            logger.info(
                "agent %s took the call after %s s",
                report.agent,
                report.waited_s,
                extra={"action": "agent", "attempt_id": report.attempt_id, "agent": report.agent},
            )
            for callback in self.on_connected:
                callback(report.attempt_id, report.agent)
        else:
            logger.info(
                "call abandoned after %s s (%s)",
                report.waited_s,
                report.abandon_reason,
                extra={"action": "abandon", "attempt_id": report.attempt_id},
            )
