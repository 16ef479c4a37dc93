"""Results that outlive the daemon: how each call ended, as the PBX recorded it.

Every call we originate carries a hangup handler (``hangup_handler_variable``,
set by the Originate itself, so it runs for calls never answered as well as
answered ones). When the channel goes away, the handler (``[dialer-call-end]``
in our extensions.conf) writes one AstDB entry, family ``dialer``, key the
attempt id (the channel's Uniqueid)::

    v1|cause=21|sip=603|state=Down|answered=|ended=1735689600123|amd=|ivr=|digits=|agent=|reported=

- ``cause``: the Q.850 hangup cause; ``sip``: the far end's last SIP status
  (from ``HANGUPCAUSE(channel,tech)``), which tells a 603 Decline from a
  refused trunk (401/403/407) where the cause cannot. Only a final failure
  (300-699) is kept, as the Hangup event's TechCause gives it: 200 for an
  answered call and 180 for one we cancelled say nothing more than the cause;
- ``state``: the channel state when it hung up (``Up``: it was answered);
  ``answered`` and ``ended``: epoch milliseconds (``answered`` is set by our
  answer contexts, empty for a call never answered);
- what the answered call reported on the way, as its UserEvents do: ``amd``
  (AMDSTATUS), ``ivr`` and ``digits`` (READSTATUS and the keys), ``agent`` and
  ``reported`` (``agent`` or ``abandon``, agent modes).

Invariants:

- the handler runs before Asterisk removes the channel from its channel list,
  so a call missing from ``CoreShowChannels`` has its entry already (unless
  Asterisk itself lost the call: a restart ends calls without their handlers);
- an entry exists only for a call that ended; reading it is proof of the end;
- entries are removed (``DBDel``) once the attempt's result is committed:
  whatever reads an entry may find one already recorded, never a live call's.

Each PBX of a pool keeps the entries of its own calls, in its own AstDB: every
function here takes the AMI connection of one PBX, and the caller passes that
of the PBX the attempt was placed on (``pbx_pool.py``). Reconciliation
(``engine/scheduler.py``) reads every entry of a PBX with one ``DBGetTree``
before it decides anything about an attempt on it that it took over, so a call
that ended while no daemon followed it gets its real outcome instead of
``dangling``. Everything here but the AMI calls is pure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import AmiError
from .ami import AmiClient

logger = logging.getLogger(__name__)

FAMILY = "dialer"
VERSION = "v1"
# The values the dialplan writes, as they may be stored and logged.
_AMD = re.compile(r"[A-Z]{1,16}")
_WORD = re.compile(r"[A-Z_]{1,40}")
_DIGITS = re.compile(r"[0-9*#A-D]{0,32}")
_AGENT = re.compile(r"[A-Za-z0-9_.@/-]{1,80}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Bounds on the epoch milliseconds: after 2001, before 2286.
_MIN_MS, _MAX_MS = 10**12, 10**13
# Removing an entry must never hold up recording the next call.
FORGET_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True)
class PbxResult:
    """One call's end as the PBX recorded it (see the module docstring)."""

    attempt_id: str
    cause: int | None
    sip_code: int | None
    # The channel was up (answered) when it hung up, or our answer context ran.
    answered: bool
    answered_at: datetime | None
    ended_at: datetime | None
    amd_status: str | None = None
    # None: no IVR ran; "" : it ran and no key was pressed.
    ivr_digits: str | None = None
    agent: str | None = None
    # Agent modes: True when no agent took the answered call, False when one did.
    abandoned: bool | None = None


def hangup_handler_variable(context: str) -> str:
    """The Originate ``Variable`` that pushes our hangup handler on the new channel.

    Asterisk splits a Variable header at commas unless escaped: the backslashes
    keep ``context,s,1`` one value (and are removed by Asterisk).
    """
    return f"CHANNEL(hangup_handler_push)={context}\\,s\\,1"


def parse(attempt_id: str, value: str) -> PbxResult | None:
    """The record our hangup handler wrote for ``attempt_id``; None if it is not one.

    Unknown fields are ignored (a newer dialplan may add some); a field that
    does not hold what it should is treated as missing, never trusted.
    """
    parts = value.strip().split("|")
    if not parts or parts[0] != VERSION:
        return None
    fields: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, text = part.partition("=")
        if sep:
            fields[key.strip()] = text.strip()
    ended = _ms(fields.get("ended"))
    answered_at = _ms(fields.get("answered"))
    if ended is None:
        return None  # not written by the handler as the call ended
    reported = fields.get("reported", "")
    ivr = fields.get("ivr", "")
    digits = fields.get("digits", "")
    agent = fields.get("agent", "")
    return PbxResult(
        attempt_id=attempt_id,
        cause=_int(fields.get("cause"), 0, 127),
        # Only a final failure: 1xx is what a call we cancelled last heard, 2xx an answer.
        sip_code=_int(fields.get("sip"), 300, 699),
        answered=fields.get("state") == "Up" or answered_at is not None,
        answered_at=answered_at,
        ended_at=ended,
        amd_status=_match(_AMD, fields.get("amd", "")),
        ivr_digits=digits if _WORD.fullmatch(ivr) and _DIGITS.fullmatch(digits) else None,
        agent=agent if _AGENT.fullmatch(agent) else None,
        abandoned={"agent": False, "abandon": True}.get(reported),
    )


def parse_tree(messages: list[Mapping[str, Any]]) -> dict[str, PbxResult]:
    """The records in a ``DBGetTree`` reply (``DBGetTreeResponse`` events), by attempt id.

    Keys that are not attempt ids (UUIDs) are not ours and are skipped.
    """
    prefix = f"/{FAMILY}/"
    records: dict[str, PbxResult] = {}
    for message in messages:
        if message.get("Event") != "DBGetTreeResponse":
            continue
        key = str(message.get("Key", ""))
        attempt_id = key[len(prefix) :].lower()
        if not key.startswith(prefix) or not _UUID.fullmatch(attempt_id):
            continue
        record = parse(attempt_id, str(message.get("Val", "")))
        if record is None:
            logger.warning(
                "AstDB %s%s is not a call record of ours: left alone",
                prefix,
                attempt_id,
                extra={"action": "pbx_results", "attempt_id": attempt_id},
            )
            continue
        records[attempt_id] = record
    return records


async def read_all(ami: AmiClient) -> dict[str, PbxResult]:
    """Every call record the PBX holds, by attempt id. Raises AmiError or TimeoutError."""
    return parse_tree(await ami.send_action({"Action": "DBGetTree", "Family": FAMILY}))


async def read(ami: AmiClient, attempt_id: str) -> PbxResult | None:
    """The record of one call, None when there is none. Raises AmiError or TimeoutError."""
    reply = await ami.send_action({"Action": "DBGet", "Family": FAMILY, "Key": attempt_id})
    for message in reply:
        if message.get("Event") == "DBGetResponse":
            return parse(attempt_id, str(message.get("Val", "")))
    return None


async def forget(ami: AmiClient, attempt_id: str) -> None:
    """Remove a call's record once its result is committed (best effort, bounded).

    A record left behind (AMI down now) is removed by the next reconciliation,
    which finds its attempt ended.
    """
    with contextlib.suppress(AmiError, TimeoutError):
        await ami.send_action(
            {"Action": "DBDel", "Family": FAMILY, "Key": attempt_id}, timeout=FORGET_TIMEOUT_S
        )


def forget_soon(ami: AmiClient, attempt_id: str) -> None:
    """``forget``, without waiting for Asterisk's reply: what every call's end does. A
    record left behind (the link dropped) is removed by the next reconciliation."""
    with contextlib.suppress(AmiError):
        ami.post_action({"Action": "DBDel", "Family": FAMILY, "Key": attempt_id})


# What the hangup handler needs besides its context (modules.conf).
HANDLER_MODULES = ("func_db", "func_hangupcause")


async def missing_setup(ami: AmiClient, context: str) -> list[str]:
    """What the PBX lacks for our hangup handler to record calls; empty when nothing.

    Raises AmiError or TimeoutError when Asterisk could not be asked.
    """
    missing: list[str] = []
    reply = await ami.send_action({"Action": "ShowDialPlan", "Context": context})
    if not reply or reply[0].get("Response") == "Error":
        missing.append(f"the dialplan context [{context}] (extensions.conf)")
    for module in HANDLER_MODULES:
        reply = await ami.send_action({"Action": "ModuleCheck", "Module": module})
        if not reply or reply[0].get("Response") == "Error":
            missing.append(f"the module {module}.so (modules.conf)")
    return missing


def _ms(text: str | None) -> datetime | None:
    if not text or not text.isdigit():
        return None
    value = int(text)
    if not _MIN_MS <= value < _MAX_MS:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _int(text: str | None, low: int, high: int) -> int | None:
    if not text or not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def _match(pattern: re.Pattern[str], text: str) -> str | None:
    return text if pattern.fullmatch(text) else None
