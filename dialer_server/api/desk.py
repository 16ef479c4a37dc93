"""The agent desk's API (/api/v1/desk...): an agent user's own state, queues, pauses,
calls, callbacks and preview contacts. Agents only: everything acts on the
endpoint of the user the session belongs to.

Joining and leaving are AMI QueueAdd/QueueRemove of the agent's endpoint in the
campaign's queue; pausing is QueuePause with a reason code (``[desk]
pause_reasons``). Each is audited (via ``desk``) and published as an
``agent.state`` event.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from aiohttp import web

from ..accounts.roles import AGENTS, Principal
from ..campaigns import desk
from ..errors import AmiError, Conflict, InvalidInput, RequestError
from ..events import publish
from ..telephony import queue_members
from ..telephony.ami import AmiClient
from ..telephony.pbx_pool import PbxPool
from .common import (
    CONTEXT,
    PRINCIPAL,
    Operation,
    ServiceUnavailable,
    note,
    query_text,
    read_json,
    respond,
    transaction,
)
from .contacts import contact_json
from .dispositions import _attempt_id, disposition_json
from .schemas import common as s
from .schemas import users as schemas

logger = logging.getLogger(__name__)

# Desk states, as the state line shows them.
LOGGED_OUT, READY, RINGING, ON_CALL, WRAP_UP, PAUSED = (
    "logged_out",
    "ready",
    "ringing",
    "on_call",
    "wrap_up",
    "paused",
)


class Member(Protocol):
    @property
    def queue(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def paused(self) -> bool: ...
    @property
    def pause_reason(self) -> str: ...


class DeskRoster(Protocol):
    @property
    def ready(self) -> bool: ...
    def agent(self, name: str) -> Sequence[Member]: ...
    def queues(self) -> Sequence[str]: ...
    def members(self, queue: str) -> Sequence[Any]: ...


ROSTER = web.AppKey("desk_roster", object)
# The daemon's PBXs: an agent is acted on through the PBX their phone is on.
PBXS = web.AppKey("desk_pbxs", PbxPool)


class AsteriskUnavailable(ServiceUnavailable):
    """Asterisk cannot be asked now."""


def desk_state(memberships: Sequence[Member]) -> tuple[str, str]:
    """(the state line, the pause reason) of an agent from their queue memberships.

    In no queue, or their phone unavailable: logged out. On a call wins over a
    pause (a wrap-up pause starts while the call is up); then ringing; then a
    pause (wrap-up when its reason is wrap-up); else ready.
    """
    present = [m for m in memberships if m.status != "unavailable"]
    if not present:
        return LOGGED_OUT, ""
    statuses = {m.status for m in present}
    paused = next((m for m in present if m.paused), None)
    if "busy" in statuses or any(getattr(m, "in_call", False) for m in present):
        return ON_CALL, ""
    if "ringing" in statuses:
        return RINGING, ""
    if paused is not None:
        if paused.pause_reason == queue_members.WRAPUP_REASON:
            return WRAP_UP, paused.pause_reason
        return PAUSED, paused.pause_reason
    return READY, ""


def _agent(request: web.Request) -> tuple[Principal, str]:
    principal = request[PRINCIPAL]
    assert principal.agent is not None  # an agent user has an endpoint
    return principal, principal.agent


def _roster(request: web.Request) -> DeskRoster | None:
    roster = request.app.get(ROSTER)
    return roster if roster is not None else None  # type: ignore[return-value]


def _ami(request: web.Request, agent: str, queue: str | None = None) -> AmiClient:
    """The AMI connection to act on ``agent`` through (PbxPool.for_agent)."""
    pbxs = request.app.get(PBXS)
    pbx = pbxs.for_agent(agent, queue) if pbxs is not None else None
    if pbx is None:
        raise AsteriskUnavailable("Asterisk (AMI) is not connected: try again")
    return pbx.ami


def _state(request: web.Request, agent: str) -> dict[str, Any]:
    roster = _roster(request)
    memberships = list(roster.agent(agent)) if roster is not None and roster.ready else []
    state, reason = desk_state(memberships)
    return {
        "state": state,
        "pause_reason": reason,
        "queues": sorted(m.queue for m in memberships),
        "roster_ready": roster is not None and roster.ready,
    }


async def _published(conn: Any, agent: str, state: dict[str, Any], action: str) -> None:
    await publish(
        conn,
        "agent.state",
        {"agent": {"name": agent}, "action": action, **state},
        campaign_id=None,
        agent=agent,
    )


def _in_wrapup(request: web.Request, agent: str) -> bool:
    """Whether a disposition ends the agent's wrap-up: with [desk] wrapup on, unless they
    paused for another reason meanwhile. Not read from the roster's wrap-up alone: the
    pause's queue event may still be on its way when a quick agent saves."""
    if not request.app[CONTEXT].config.desk.wrapup:
        return False
    roster = _roster(request)
    memberships = list(roster.agent(agent)) if roster is not None and roster.ready else []
    return not any(
        m.paused and m.pause_reason not in ("", queue_members.WRAPUP_REASON) for m in memberships
    )


async def get_desk(request: web.Request) -> web.Response:
    principal, agent = _agent(request)
    tz = _zone(request)
    now = datetime.now(UTC)
    start = datetime.combine(now.astimezone(tz).date(), time(), tz).astimezone(UTC)
    async with transaction(request) as conn:
        campaigns = await desk.joinable_campaigns(conn)
        call = await desk.current_call(conn, agent)
        preview = await desk.current_preview(conn, agent)
        preview_card = None if preview is None else await desk.contact_card(conn, preview["id"])
        callbacks = await desk.callbacks_due(conn, agent, start, start + timedelta(days=1))
    state = _state(request, agent)
    if call is not None and state["state"] in (READY, PAUSED):
        # The call ended without a disposition: the agent is still finishing it.
        state["state"] = WRAP_UP
    return respond(
        {
            "agent": agent,
            "user": principal.username,
            **state,
            "pause_reasons": list(request.app[CONTEXT].config.desk.reasons),
            "campaigns": [{**c, "joined": c["queue"] in state["queues"]} for c in campaigns],
            "call": call,
            "preview": preview_card,
            "callbacks": callbacks,
        }
    )


def _zone(request: web.Request) -> zoneinfo.ZoneInfo:
    name = query_text(request, "tz", max_len=64) or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"tz must be an IANA time zone, got {name!r}",
            details=[{"field": "tz", "message": "unknown time zone"}],
        ) from None


async def _queue_action(request: web.Request, action: str) -> web.Response:
    _, agent = _agent(request)
    body = await read_json(request, schemas.JOIN)
    async with transaction(request) as conn:
        campaign = await desk.campaign_queue(conn, body["campaign_id"])
        ami = _ami(request, agent, campaign["queue"])
        before = _state(request, agent)
        try:
            if action == "join":
                changed = await queue_members.join(ami, campaign["queue"], agent)
            else:
                changed = await queue_members.leave(ami, campaign["queue"], agent)
                await desk.release_previews(conn, agent)
        except (AmiError, TimeoutError) as exc:
            raise AsteriskUnavailable(f"Asterisk did not do it: {exc!r}") from None
        after = {**before, "queue": campaign["queue"], "changed": changed}
        note(request, "agent", agent, before=before, after=after)
        await _published(conn, agent, after, action)
    return respond({"agent": agent, "queue": campaign["queue"], "changed": changed})


async def join(request: web.Request) -> web.Response:
    return await _queue_action(request, "join")


async def leave(request: web.Request) -> web.Response:
    return await _queue_action(request, "leave")


async def set_pause(
    request: web.Request, agent: str, paused: bool, reason: str, *, check_reason: bool = True
) -> dict[str, Any]:
    """Pause or resume ``agent`` (in every queue), audited and published; the new state."""
    if paused and check_reason and reason not in request.app[CONTEXT].config.desk.reasons:
        known = ", ".join(request.app[CONTEXT].config.desk.reasons)
        raise InvalidInput(
            f"reason must be one of {known}", details=[{"field": "reason", "message": "unknown"}]
        )
    ami = _ami(request, agent)
    before = _state(request, agent)
    try:
        found = await queue_members.pause(ami, agent, paused, reason)
    except (AmiError, TimeoutError) as exc:
        raise AsteriskUnavailable(f"Asterisk did not do it: {exc!r}") from None
    if not found:
        raise Conflict(f"{agent} is in no queue: join a campaign first", code="not_in_a_queue")
    after = {
        **before,
        "state": PAUSED if paused else READY,
        "pause_reason": reason if paused else "",
    }
    async with transaction(request) as conn:
        note(request, "agent", agent, before=before, after=after)
        await _published(conn, agent, after, "pause" if paused else "resume")
    return after


async def pause(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    body = await read_json(request, schemas.PAUSE)
    return respond(await set_pause(request, agent, True, body["reason"]))


async def resume(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    return respond(await set_pause(request, agent, False, ""))


async def get_call(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    async with transaction(request) as conn:
        card = await desk.call_card(conn, _attempt_id(request), agent)
    return respond(card)


async def set_call_disposition(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    attempt_id = _attempt_id(request)
    body = await read_json(request, schemas.DESK_DISPOSITION)
    async with transaction(request) as conn:
        disposition, contact = await desk.set_call_disposition(
            conn,
            attempt_id,
            agent,
            status=body["status"],
            note=body.get("note"),
            callback_local=body.get("callback_local"),
            now=datetime.now(UTC),
        )
        note(request, "attempt", attempt_id, after=disposition_json(disposition))
    # The wrap-up pause (taken when the call reached the agent) ends with the disposition.
    if _in_wrapup(request, agent):
        try:
            await queue_members.pause(_ami(request, agent), agent, False)
        except (AmiError, TimeoutError, RequestError) as exc:
            logger.warning(
                "could not end the wrap-up of %s: %s", agent, exc, extra={"action": "wrapup"}
            )
    return respond(
        {"disposition": disposition_json(disposition), "contact": contact_json(contact)},
        status=201,
    )


async def get_callbacks(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    tz = _zone(request)
    now = datetime.now(UTC)
    start = datetime.combine(now.astimezone(tz).date(), time(), tz).astimezone(UTC)
    async with transaction(request) as conn:
        rows = await desk.callbacks_due(conn, agent, start, start + timedelta(days=1))
    return respond({"items": rows})


async def preview_next(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    body = await read_json(request, schemas.JOIN)
    async with transaction(request) as conn:
        contact = await desk.offer_preview(conn, body["campaign_id"], agent, datetime.now(UTC))
        card = None
        if contact is not None:
            card = await desk.contact_card(conn, contact["id"])
            note(request, "contact", contact["id"], after={"shown_to": agent})
    return respond({"contact": card})


async def preview_skip(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    body = await read_json(request, schemas.SKIP)
    reason = desk.check_reason(body["reason"])
    async with transaction(request) as conn:
        skipped = await desk.skip_preview(conn, agent, reason)
        note(request, "contact", skipped["contact_id"], after=skipped)
    return respond(skipped)


async def preview_call(request: web.Request) -> web.Response:
    _, agent = _agent(request)
    async with transaction(request) as conn:
        called = await desk.call_preview(conn, agent)
        note(request, "contact", called["contact_id"], after={"called_by": agent})
    return respond(called)


_DESK = "/api/v1/desk"
_CALL = _DESK + r"/calls/{attempt_id:[0-9a-fA-F-]+}"
_ATTEMPT_ID = s.path_param("attempt_id", {"type": "string", "format": "uuid"})
_VIEW = s.ok(s.ref("View"))
_WRITE = ("400", "401", "403", "404", "409", "413", "415", "422", "503")


def _op(method: str, path: str, handler: Any, op_id: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, handler, op_id, summary, "desk", roles=AGENTS, **kw)


OPERATIONS = [
    _op(
        "GET",
        _DESK,
        get_desk,
        "getDesk",
        "The agent's desk: state, queues, campaigns to join, open call, preview, callbacks",
        parameters=(
            s.query_param("tz", {"type": "string", "maxLength": 64}, "For today's callbacks"),
        ),
        responses={"200": _VIEW, **s.errors("401", "403", "422", "503")},
    ),
    _op(
        "POST",
        _DESK + "/join",
        join,
        "deskJoin",
        "Join a campaign's queue (AMI QueueAdd of the agent's endpoint)",
        body=s.json_body(schemas.JOIN),
        responses={"200": _VIEW, **s.errors(*_WRITE)},
    ),
    _op(
        "POST",
        _DESK + "/leave",
        leave,
        "deskLeave",
        "Leave a campaign's queue (AMI QueueRemove); a preview contact shown goes back",
        body=s.json_body(schemas.JOIN),
        responses={"200": _VIEW, **s.errors(*_WRITE)},
    ),
    _op(
        "POST",
        _DESK + "/pause",
        pause,
        "deskPause",
        "Pause with a reason code (AMI QueuePause): no call is offered while paused",
        body=s.json_body(schemas.PAUSE),
        responses={"200": _VIEW, **s.errors(*_WRITE)},
    ),
    _op(
        "POST",
        _DESK + "/resume",
        resume,
        "deskResume",
        "Resume: calls are offered again",
        responses={"200": _VIEW, **s.errors("401", "403", "409", "503")},
    ),
    _op(
        "GET",
        _CALL,
        get_call,
        "getDeskCall",
        "The screen pop of a call the agent took: contact, parameters, history, script",
        parameters=(_ATTEMPT_ID,),
        responses={"200": _VIEW, **s.errors("401", "403", "404", "503")},
    ),
    _op(
        "POST",
        _CALL + "/disposition",
        set_call_disposition,
        "setDeskDisposition",
        "Set the call's disposition, a note and a callback in the contact's local time",
        parameters=(_ATTEMPT_ID,),
        body=s.json_body(schemas.DESK_DISPOSITION),
        responses={"201": s.ok(s.ref("DispositionSet"), "Set"), **s.errors(*_WRITE)},
        description="As POST /api/v1/attempts/{id}/disposition with agent = the agent, and "
        "callback_local read in the contact's time zone. Ends a wrap-up pause.",
    ),
    _op(
        "GET",
        _DESK + "/callbacks",
        get_callbacks,
        "getDeskCallbacks",
        "The agent's personal callbacks due today",
        parameters=(s.query_param("tz", {"type": "string", "maxLength": 64}, "Whose today"),),
        responses={"200": _VIEW, **s.errors("401", "403", "422", "503")},
    ),
    _op(
        "POST",
        _DESK + "/preview/next",
        preview_next,
        "previewNext",
        "Preview: show the agent the next due contact of a preview campaign",
        body=s.json_body(schemas.JOIN),
        responses={"200": _VIEW, **s.errors(*_WRITE)},
        description="contact null when none is due. The contact is the agent's until they "
        "call or skip it (or the campaign's preview_timeout_s dials it).",
    ),
    _op(
        "POST",
        _DESK + "/preview/skip",
        preview_skip,
        "previewSkip",
        "Preview: skip the shown contact with a reason",
        body=s.json_body(schemas.SKIP),
        responses={"200": _VIEW, **s.errors(*_WRITE)},
    ),
    _op(
        "POST",
        _DESK + "/preview/call",
        preview_call,
        "previewCall",
        "Preview: dial the shown contact (agent-first or customer-first, per campaign)",
        responses={"200": _VIEW, **s.errors("401", "403", "409", "503")},
    ),
]
