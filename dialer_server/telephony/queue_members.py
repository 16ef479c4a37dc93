"""Agents joining, leaving and pausing in Asterisk queues: AMI QueueAdd, QueueRemove, QueuePause.

The agent desk's actions. A member is the agent's PJSIP endpoint
(``PJSIP/agent21``) with its endpoint name as member name, which is the
agent's name in the dialer (the roster, attempts, callbacks). Asterisk's
answer is the truth: joining twice or leaving a queue one is not in changes
nothing and is no error; any other refusal is ``QueueActionRefused`` with
Asterisk's message. The roster learns the result from the queue events that
follow, like any other change.
"""

from __future__ import annotations

from ..errors import AmiError
from .ami import AmiClient

WRAPUP_REASON = "wrap-up"
# Asterisk's messages for "nothing to do" (app_queue.c).
_ALREADY = ("already there",)
_NOT_THERE = ("not there",)


class QueueActionRefused(AmiError):
    """Asterisk refused the queue action."""


def interface(agent: str) -> str:
    return f"PJSIP/{agent}"


async def _send(ami: AmiClient, action: dict[str, str], harmless: tuple[str, ...]) -> bool:
    """True when Asterisk did it, False when there was nothing to do."""
    reply = await ami.send_action(action, as_list=False)
    first = reply[0] if reply else {}
    if first.get("Response") == "Success":
        return True
    message = str(first.get("Message") or "no reply")
    if any(text in message.lower() for text in harmless):
        return False
    raise QueueActionRefused(f"{action['Action']} refused by Asterisk: {message}")


async def join(ami: AmiClient, queue: str, agent: str) -> bool:
    """Add the agent's endpoint to ``queue`` (unpaused); False if it was a member already."""
    return await _send(
        ami,
        {
            "Action": "QueueAdd",
            "Queue": queue,
            "Interface": interface(agent),
            "MemberName": agent,
            "StateInterface": interface(agent),
            "Paused": "false",
        },
        _ALREADY,
    )


async def leave(ami: AmiClient, queue: str, agent: str) -> bool:
    """Remove the agent's endpoint from ``queue``; False if it was not a member."""
    return await _send(
        ami, {"Action": "QueueRemove", "Queue": queue, "Interface": interface(agent)}, _NOT_THERE
    )


async def pause(ami: AmiClient, agent: str, paused: bool, reason: str = "") -> bool:
    """Pause (with a reason code) or resume the agent in every queue they are in.

    False when the agent is in no queue.
    """
    action = {"Action": "QueuePause", "Interface": interface(agent), "Paused": str(paused).lower()}
    if paused and reason:
        action["Reason"] = reason
    return await _send(ami, action, (*_NOT_THERE, "interface not found"))
