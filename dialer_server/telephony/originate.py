"""Placing one call through Asterisk and following it to its outcome.

Each call is originated with ``ChannelId`` = our attempt id, which becomes the
channel's Uniqueid: every event of the call names the attempt it belongs to, so
nothing depends on panoramisk's ActionIDs or on channel names. The Originate
also pushes our hangup handler on the new channel (``pbx_results.py``), so the
PBX records how the call ended even when no daemon is there to see it.

Every CallResult says how it was learned (``source``): ``live`` from the call's
own AMI events, ``pbx`` from the record the PBX kept, ``lost`` when neither
exists (the PBX itself lost the call: it is answered if it was seen answered,
else dangling).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from ..errors import AmiError
from .ami import AmiClient, Event
from .outcomes import Outcome, classify
from .pbx_results import PbxResult, hangup_handler_variable

logger = logging.getLogger(__name__)

# After a failed OriginateResponse, how long the channel's Hangup (which holds
# the telling cause) may lag behind it.
HANGUP_GRACE_S = 3.0


@dataclasses.dataclass(frozen=True)
class CallRequest:
    attempt_id: str
    number: str
    trunk: str
    context: str
    extension: str = "s"
    ring_timeout_s: float = 30.0
    caller_id: str = ""
    # Channel variables for the dialplan (DIALER_PLAYBACK, DIALER_MAX_CALL_S...).
    variables: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # An answered call is followed until it hangs up, at most this long.
    max_call_s: float = 3600.0
    # No verdict from Asterisk this long after the ring timeout: left to reconciliation.
    result_margin_s: float = 15.0
    # Our hangup handler's context ([dialer-call-end]); empty: none is pushed.
    call_end_context: str = ""


@dataclasses.dataclass(frozen=True)
class CallResult:
    attempt_id: str
    outcome: Outcome
    originate_response: str | None
    originate_reason: int | None
    hangup_cause: int | None
    hangup_cause_text: str | None
    answered_at: datetime | None
    ended_at: datetime
    # What our dialplan reported (answered_calls.py): AMD's verdict, IVR keys.
    amd_status: str | None = None
    ivr_digits: str | None = None
    # Agent modes (DialerAgent / DialerAbandon): who took the call and when, or
    # that it was abandoned (None: no report, not an agent-mode call) and why;
    # how long the caller waited.
    agent: str | None = None
    agent_connected_at: datetime | None = None
    abandoned: bool | None = None
    abandon_reason: str | None = None
    agent_wait_s: float | None = None
    # The far end's last SIP status (603, 403...), when Asterisk told it.
    sip_code: int | None = None
    # How the result was learned: "live", "pbx" or "lost" (module docstring).
    source: str = "live"


@dataclasses.dataclass
class _Call:
    hangup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    cause: int | None = None
    cause_text: str | None = None
    sip_code: int | None = None
    ended_at: datetime | None = None
    # Set when the end came from the PBX's record, or was lost with the channel.
    source: str = "live"
    # Seen answered by a Newstate event (only needed for calls we adopt).
    answered_at: datetime | None = None
    amd_status: str | None = None
    ivr_digits: str | None = None
    agent: str | None = None
    agent_connected_at: datetime | None = None
    abandoned: bool | None = None
    abandon_reason: str | None = None
    agent_wait_s: float | None = None


class CallTracker:
    """Collects the events of calls we originated, keyed by attempt id."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}

    def handle_event(self, event: Event) -> None:
        """AMI event handler (subscribe it to the AmiClient)."""
        name = event.get("Event")
        if name not in ("Hangup", "Newstate"):
            return
        call = self._calls.get(event.get("Uniqueid", ""))
        if call is None:
            return
        if name == "Newstate":
            if event.get("ChannelStateDesc") == "Up" and call.answered_at is None:
                call.answered_at = datetime.now(UTC)
            return
        if call.hangup.is_set():
            return  # ended already, from the PBX's record
        call.cause = _int_or_none(event.get("Cause"))
        call.cause_text = event.get("Cause-txt") or None
        # Asterisk 22.7+ adds the SIP status of calls that failed (603, 403...).
        call.sip_code = _int_or_none(event.get("TechCause"))
        call.ended_at = datetime.now(UTC)
        call.hangup.set()

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def note_dialplan(
        self, attempt_id: str, *, amd_status: str | None = None, ivr_digits: str | None = None
    ) -> bool:
        """Keep what our dialplan reported for a call (answered_calls.AnsweredCalls).

        An AMD status of MACHINE makes an answered call's outcome ``machine``.
        False if the call is not one we follow.
        """
        call = self._calls.get(attempt_id)
        if call is None:
            return False
        call.amd_status = amd_status or call.amd_status
        call.ivr_digits = call.ivr_digits if ivr_digits is None else ivr_digits
        return True

    def note_agent(
        self,
        attempt_id: str,
        *,
        agent: str | None = None,
        abandon_reason: str | None = None,
        waited_s: float | None = None,
    ) -> bool:
        """Keep an agent-mode call's fate: taken by ``agent``, or abandoned.

        The first report stands (the dialplan sends one; a second would be a
        bug there). An abandoned answered call's outcome is ``abandoned``.
        False if the call is not one we follow.
        """
        call = self._calls.get(attempt_id)
        if call is None:
            return False
        if call.abandoned is not None:
            return True
        call.agent_wait_s = waited_s
        if agent is not None:
            call.agent = agent
            call.agent_connected_at = datetime.now(UTC)
            call.abandoned = False
        else:
            call.abandoned = True
            call.abandon_reason = abandon_reason
        return True

    def agent_settled(self, attempt_id: str) -> bool:
        """Whether an agent-mode call we follow is settled: taken, abandoned, or hung up.

        False for a call not (yet) followed: until its Originate goes out it is
        a call that may still need an agent.
        """
        call = self._calls.get(attempt_id)
        return call is not None and (call.abandoned is not None or call.hangup.is_set())

    def agent_fate(self, attempt_id: str) -> tuple[bool, str | None]:
        """(settled, agent) of an agent-mode call: ``agent_settled``, and who took it."""
        call = self._calls.get(attempt_id)
        return self.agent_settled(attempt_id), call.agent if call is not None else None

    def watch(self, attempt_id: str) -> None:
        """Start collecting a call's events before we know whether it still exists.

        Reconciliation watches first and lists Asterisk's channels second, so a
        Hangup between the two is caught rather than lost.
        """
        self._calls.setdefault(attempt_id, _Call())

    def unwatch(self, attempt_id: str) -> None:
        self._calls.pop(attempt_id, None)

    def is_answered(self, attempt_id: str) -> bool:
        """Whether a call we follow was answered and has not ended."""
        call = self._calls.get(attempt_id)
        return call is not None and call.answered_at is not None and not call.hangup.is_set()

    def end_lost(self, attempt_id: str) -> None:
        """Asterisk no longer has this call and kept no record of its end: it was
        lost with the PBX (a restart). A watcher gets a result whose source is
        ``lost``."""
        call = self._calls.get(attempt_id)
        if call is not None and not call.hangup.is_set():
            call.source = "lost"
            call.ended_at = datetime.now(UTC)
            call.hangup.set()

    def end_with_record(self, attempt_id: str, record: PbxResult) -> None:
        """The PBX recorded the end of a call whose Hangup we missed (AMI was down):
        end it with that record. A call already ended is left as it is."""
        call = self._calls.get(attempt_id)
        if call is None or call.hangup.is_set():
            return
        _apply_record(call, record)
        call.hangup.set()

    def hung_up(self, attempt_id: str, *, answered: bool = False) -> CallResult | None:
        """The result of a watched call whose Hangup already arrived, else None.

        ``answered``: the call is known to have been answered (its attempt row
        says so, or its channel was up): its OriginateResponse went to a daemon
        that is gone, and its hangup cause alone (16, normal clearing) would
        make it a failed call.
        """
        call = self._calls.get(attempt_id)
        if call is None or not call.hangup.is_set():
            return None
        return self._adopted_result(attempt_id, call, answered=answered)

    async def follow(
        self, attempt_id: str, *, answered: bool, timeout_s: float
    ) -> CallResult | None:
        """Wait for the end of a call someone else originated (a watched attempt).

        Returns None if it has not ended within ``timeout_s``: the caller decides
        (dangling). ``answered`` says whether the channel was already up.
        """
        call = self._calls.setdefault(attempt_id, _Call())
        try:
            await asyncio.wait_for(call.hangup.wait(), timeout_s)
        except TimeoutError:
            return None
        finally:
            self._calls.pop(attempt_id, None)
        return self._adopted_result(attempt_id, call, answered=answered)

    @staticmethod
    def _adopted_result(attempt_id: str, call: _Call, *, answered: bool) -> CallResult:
        # The OriginateResponse went to a connection that is gone: whether the
        # call was answered comes from what we know of it (its row, its channel
        # state, a Newstate, the PBX's record), the rest from the cause.
        answered = answered or call.answered_at is not None
        response = "Success" if answered else None
        return call_result(attempt_id, call, response, None, answered_at=call.answered_at)

    def lost_answered(self, attempt_id: str) -> CallResult:
        """The result of an answered call whose channel is gone and whose Hangup
        was lost with it (Asterisk restarted): answered, ended now, cause unknown."""
        call = self._calls.get(attempt_id) or _Call()
        call.source = "lost"
        return call_result(attempt_id, call, "Success", None, answered_at=call.answered_at)

    async def place_call(
        self,
        ami: AmiClient,
        request: CallRequest,
        on_sent: Callable[[], Awaitable[None]] | None = None,
        on_answered: Callable[[], Awaitable[None]] | None = None,
    ) -> CallResult:
        """Originate one call and wait for its outcome.

        ``on_sent`` runs once Asterisk has the Originate, ``on_answered`` when
        the callee answers. Raises AmiDisconnected if the link drops before the
        outcome is known: the call may still exist, and only reconciliation
        with Asterisk (not a resend) may settle it.
        """
        if request.attempt_id in self._calls:
            raise ValueError(f"attempt {request.attempt_id} is already being dialled")
        call = self._calls[request.attempt_id] = _Call()
        try:
            return await self._place(ami, request, call, on_sent, on_answered)
        finally:
            del self._calls[request.attempt_id]

    async def _place(
        self,
        ami: AmiClient,
        request: CallRequest,
        call: _Call,
        on_sent: Callable[[], Awaitable[None]] | None,
        on_answered: Callable[[], Awaitable[None]] | None,
    ) -> CallResult:
        action: dict[str, str | list[str]] = {
            "Action": "Originate",
            "Channel": f"PJSIP/{request.number}@{request.trunk}",
            "Context": request.context,
            "Exten": request.extension,
            "Priority": "1",
            "Timeout": str(int(request.ring_timeout_s * 1000)),
            "ChannelId": request.attempt_id,
            "Async": "true",
        }
        if request.caller_id:
            action["CallerID"] = request.caller_id
        variables = [f"{k}={v}" for k, v in request.variables.items()]
        if request.call_end_context:
            variables.append(hangup_handler_variable(request.call_end_context))
        if variables:
            action["Variable"] = variables
        # Written now (AmiDisconnected now if there is no link); the reply is awaited
        # below, once on_sent has run.
        originate = ami.begin_action(
            action, timeout=request.ring_timeout_s + request.result_margin_s
        )
        if on_sent is not None:
            try:
                await on_sent()
            except BaseException:
                originate.close()  # never awaited: the reply goes unread
                raise
        try:
            reply = await originate
        except AmiError:
            raise
        except TimeoutError:
            # No verdict from Asterisk: the caller decides (reconcile or dangling).
            raise AmiError(f"no OriginateResponse for attempt {request.attempt_id}") from None

        first = reply[0]
        if first.get("Response") == "Error":
            # Asterisk refused the action itself (unknown endpoint, bad channel id...).
            return call_result(request.attempt_id, call, "Error", None, answered_at=None)
        final = next((m for m in reply if m.get("Event") == "OriginateResponse"), None)
        response = final.get("Response") if final is not None else None
        reason = _int_or_none(final.get("Reason")) if final is not None else None

        if response == "Success":
            answered_at = call.answered_at = call.answered_at or datetime.now(UTC)
            if on_answered is not None:
                await on_answered()
            try:
                # A timeout, not wait_for: no task of its own for each call's wait.
                async with asyncio.timeout(request.max_call_s + request.result_margin_s):
                    await call.hangup.wait()
            except TimeoutError:
                logger.warning(
                    "answered call outlived its maximum duration",
                    extra={
                        "action": "originate",
                        "attempt_id": request.attempt_id,
                        "campaign_id": _int_or_none(request.variables.get("DIALER_CAMPAIGN_ID")),
                        "contact_id": _int_or_none(request.variables.get("DIALER_CONTACT_ID")),
                    },
                )
            return call_result(request.attempt_id, call, response, reason, answered_at=answered_at)

        try:
            async with asyncio.timeout(HANGUP_GRACE_S):
                await call.hangup.wait()
        except TimeoutError:
            pass  # no channel was ever created: the Reason code is all there is
        return call_result(request.attempt_id, call, response, reason, answered_at=None)


def call_result(
    attempt_id: str,
    call: _Call,
    response: str | None,
    reason: int | None,
    *,
    answered_at: datetime | None,
) -> CallResult:
    """The one place a call's result is built: from what Asterisk and our dialplan reported."""
    return CallResult(
        attempt_id=attempt_id,
        outcome=_outcome(call, response, reason),
        originate_response=response,
        originate_reason=reason,
        hangup_cause=call.cause,
        hangup_cause_text=call.cause_text,
        answered_at=answered_at,
        ended_at=call.ended_at or datetime.now(UTC),
        amd_status=call.amd_status,
        ivr_digits=call.ivr_digits,
        agent=call.agent,
        agent_connected_at=call.agent_connected_at,
        abandoned=call.abandoned,
        abandon_reason=call.abandon_reason,
        agent_wait_s=call.agent_wait_s,
        sip_code=call.sip_code,
        source=call.source,
    )


def pbx_result(record: PbxResult, *, answered: bool = False) -> CallResult:
    """A call's result from the record the PBX kept of its end (source ``pbx``).

    ``answered``: known answered otherwise (the attempt row says so), should
    the record not show it.
    """
    call = _Call()
    _apply_record(call, record)
    response = "Success" if answered or record.answered else None
    return call_result(record.attempt_id, call, response, None, answered_at=call.answered_at)


def _apply_record(call: _Call, record: PbxResult) -> None:
    call.source = "pbx"
    call.cause = record.cause if record.cause is not None else call.cause
    call.sip_code = record.sip_code if record.sip_code is not None else call.sip_code
    call.ended_at = record.ended_at or datetime.now(UTC)
    if record.answered:
        call.answered_at = call.answered_at or record.answered_at or call.ended_at
    call.amd_status = call.amd_status or record.amd_status
    call.ivr_digits = call.ivr_digits if call.ivr_digits is not None else record.ivr_digits
    if call.abandoned is None and record.abandoned is not None:
        call.abandoned = record.abandoned
        call.agent = call.agent or record.agent
    elif call.agent is None:
        call.agent = record.agent


def _outcome(call: _Call, response: str | None, reason: int | None) -> Outcome:
    outcome = classify(response, reason, call.cause, call.sip_code)
    # Answered, by a machine (AMD in our dialplan): the strategy's "machine" rule.
    if outcome is Outcome.ANSWERED and call.amd_status == "MACHINE":
        return Outcome.MACHINE
    # Answered by a person no agent took in time: the strategy's "abandoned" rule.
    if outcome is Outcome.ANSWERED and call.abandoned:
        return Outcome.ABANDONED
    return outcome


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


async def ring_agent(
    ami: AmiClient,
    *,
    attempt_id: str,
    agent: str,
    context: str,
    ring_timeout_s: float,
    wait_s: float,
    result_margin_s: float,
) -> str | None:
    """Ring an agent's phone for a preview call dialled agent-first; the agent's channel
    once they answer (it waits in ``context`` up to ``wait_s``), None if they did not.

    The agent leg's ChannelId is ``agent-`` and the attempt id: its events never
    reach the attempt's call, which is the customer's leg, dialled after this.
    (Not the attempt id with a suffix: Asterisk refuses a ChannelId that an
    existing channel's id starts with.)
    Raises AmiDisconnected like ``place_call``.
    """
    action: dict[str, str | list[str]] = {
        "Action": "Originate",
        "Channel": f"PJSIP/{agent}",
        "Context": context,
        "Exten": "s",
        "Priority": "1",
        "Timeout": str(int(ring_timeout_s * 1000)),
        "ChannelId": f"agent-{attempt_id}",
        "Async": "true",
        "Variable": [f"DIALER_ATTEMPT_ID={attempt_id}", f"DIALER_AGENT_WAIT_S={wait_s:g}"],
    }
    try:
        reply = await ami.send_action(action, timeout=ring_timeout_s + result_margin_s)
    except TimeoutError:
        raise AmiError(f"no OriginateResponse for the agent leg of {attempt_id}") from None
    final = next((m for m in reply if m.get("Event") == "OriginateResponse"), None)
    if final is None or final.get("Response") != "Success":
        return None
    channel = str(final.get("Channel") or "")
    return channel or None
