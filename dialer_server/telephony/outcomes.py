"""What happened to a call: Asterisk's report mapped to one normalised outcome.

Asterisk reports an originated call twice: OriginateResponse (Success or
Failure, plus an old control-frame ``Reason`` code that cannot tell busy from
congestion from a wrong number) and the Hangup of the channel, whose Q.850
cause can. So the cause decides, and the Reason is only a fallback for calls
whose channel never existed or whose Hangup was lost.

One Q.850 cause hides two different things: 21 (call rejected) is what PJSIP
makes of a person's 603 Decline and of the carrier refusing our trunk (401,
403, 407). The far end's SIP status tells them apart: the Hangup event's
``TechCause`` (Asterisk 22.7 and later) or the SIP status our dialplan's hangup
handler records (``pbx_results.py``). When it is known it decides first.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    INVALID_NUMBER = "invalid_number"
    FAILED = "failed"
    # Set by answering-machine detection (AMD in our dialplan), never by causes.
    MACHINE = "machine"
    # Agent modes: answered by a person, who reached no agent within the grace
    # time or hung up first (our dialplan's DialerAbandon). Never by causes.
    ABANDONED = "abandoned"
    # Sent, but no result arrived in time: never redialled automatically.
    DANGLING = "dangling"
    # The callee declined the call (SIP 603 Decline): a person said no, now.
    REJECTED = "rejected"
    # The carrier refused our trunk (SIP 401, 402, 403, 407): nothing about the
    # contact, so it never counts against them (strategy.py).
    TRUNK_ERROR = "trunk_error"


# SIP statuses with which a carrier refuses the call itself, whoever was dialled:
# authentication required or failed, payment required, forbidden.
TRUNK_ERROR_SIP_CODES = frozenset({401, 402, 403, 407})
DECLINE_SIP_CODE = 603


# Q.850 cause codes, as PJSIP maps SIP responses to them:
# 486/600 -> 17, 408 -> 18, 480/483 -> 19, 404/485/604 -> 1, 484 -> 28,
# 401/403/407/603 -> 21, 503 -> 34.
_BY_CAUSE: dict[int, Outcome] = {
    17: Outcome.BUSY,  # user busy
    # A 603 Decline, or (without the SIP status to tell) a refusal of our trunk:
    # not busy either way. With the SIP status known, classify() decides first.
    21: Outcome.REJECTED,  # call rejected
    18: Outcome.NO_ANSWER,  # no user responding
    19: Outcome.NO_ANSWER,  # user alerting, no answer
    20: Outcome.NO_ANSWER,  # subscriber absent (phone off, out of coverage)
    1: Outcome.INVALID_NUMBER,  # unallocated number
    2: Outcome.INVALID_NUMBER,  # no route to specified transit network
    3: Outcome.INVALID_NUMBER,  # no route to destination
    22: Outcome.INVALID_NUMBER,  # number changed
    28: Outcome.INVALID_NUMBER,  # invalid number format
    34: Outcome.CONGESTION,  # no circuit/channel available
    38: Outcome.CONGESTION,  # network out of order
    41: Outcome.CONGESTION,  # temporary failure
    42: Outcome.CONGESTION,  # switching equipment congestion
    44: Outcome.CONGESTION,  # requested channel not available
    47: Outcome.CONGESTION,  # resource unavailable
}

# OriginateResponse Reason codes (AST_CONTROL_*): used only when no cause is known.
_BY_REASON: dict[int, Outcome] = {
    3: Outcome.NO_ANSWER,  # ringing until the originate timeout
    4: Outcome.ANSWERED,
    5: Outcome.BUSY,
    8: Outcome.CONGESTION,
}


def classify(
    originate_response: str | None,
    originate_reason: int | None,
    hangup_cause: int | None,
    sip_code: int | None = None,
) -> Outcome:
    """The outcome of an originated call from what Asterisk reported.

    ``originate_response`` is OriginateResponse's Response header ("Success" or
    "Failure"), or None when it never arrived. ``sip_code`` is the far end's
    final SIP status when known (the Hangup's TechCause, or our hangup
    handler's record): a refused trunk or a 603 Decline decides before the
    cause. Causes 0 (unknown), 16 (normal clearing) and 127 (interworking) say
    nothing about why a call failed, so they defer to the Reason code.
    """
    if originate_response == "Success":
        return Outcome.ANSWERED
    if sip_code in TRUNK_ERROR_SIP_CODES:
        return Outcome.TRUNK_ERROR
    if sip_code == DECLINE_SIP_CODE:
        return Outcome.REJECTED
    if hangup_cause is not None and hangup_cause in _BY_CAUSE:
        return _BY_CAUSE[hangup_cause]
    if originate_reason is not None and originate_reason in _BY_REASON:
        reason_outcome = _BY_REASON[originate_reason]
        # Reason 4 without a Success response is Asterisk contradicting itself.
        if reason_outcome is not Outcome.ANSWERED:
            return reason_outcome
    return Outcome.FAILED
