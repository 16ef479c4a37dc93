"""Call recordings: a campaign's settings (/api/v1/campaigns/{id}/recording) and a call's
recording (/api/v1/attempts/{id}/recording, served with range requests)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..accounts.roles import WRITERS
from ..campaigns import recordings
from .common import CONTEXT, Operation, note, path_id, read_json, respond, transaction
from .schemas import common as s
from .schemas import recordings as schemas


async def get_settings(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        settings = await recordings.get_settings(conn, campaign_id)
    return respond(settings)


async def put_settings(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.SETTINGS_PUT)
    async with transaction(request) as conn:
        before = await recordings.get_settings(conn, campaign_id)
        after = await recordings.put_settings(conn, campaign_id, body)
        note(
            request,
            "campaign",
            campaign_id,
            before={"recording": before},
            after={"recording": after},
        )
    return respond(after)


async def get_recording(request: web.Request) -> web.StreamResponse:
    try:
        attempt_id = str(uuid.UUID(request.match_info["attempt_id"]))
    except ValueError:
        raise web.HTTPNotFound() from None
    async with transaction(request) as conn:
        path = await recordings.file_of(conn, attempt_id, request.app[CONTEXT].config.recording)
    # FileResponse answers Range and If-Range requests itself (206, 416), off the loop.
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Content-Disposition": f'attachment; filename="{recordings.file_name(attempt_id)}"',
        },
    )


_SETTINGS = r"/api/v1/campaigns/{campaign_id:\d+}/recording"

OPERATIONS = [
    Operation(
        "GET",
        _SETTINGS,
        get_settings,
        "getCampaignRecording",
        "Whether the campaign records its answered calls, its announcement and retention",
        "recordings",
        parameters=(s.CAMPAIGN_ID,),
        responses={"200": s.ok(s.ref("RecordingSettings")), **s.errors("401", "404", "503")},
    ),
    Operation(
        "PUT",
        _SETTINGS,
        put_settings,
        "putCampaignRecording",
        "Record the campaign's answered calls (or stop), with an optional announcement",
        "recordings",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.SETTINGS_PUT),
        responses={
            "200": s.ok(s.ref("RecordingSettings")),
            **s.errors("400", "401", "403", "404", "413", "415", "422", "503"),
        },
        description="enabled: our dialplan records each answered call from its answer to "
        "its hangup (MixMonitor), named by attempt id; announcement: a sound name played to "
        "the callee once answering-machine detection is done (kept in the recording); "
        "retention_days: deleted after this (null: [recording] retention_days). Calls "
        "placed from the engine's next tick follow them.",
    ),
    Operation(
        "GET",
        r"/api/v1/attempts/{attempt_id:[0-9a-fA-F-]+}/recording",
        get_recording,
        "getAttemptRecording",
        "A call's recording (WAV), with range requests",
        "recordings",
        parameters=(s.path_param("attempt_id", {"type": "string", "format": "uuid"}),),
        responses={
            "200": {
                "description": "The WAV file (8 kHz, 16-bit, mono)",
                "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
            },
            "206": {
                "description": "The range asked for (Range: bytes=...)",
                "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
            },
            **s.errors("401", "403", "404", "503"),
        },
        roles=(*WRITERS,),
        description="404 no_recording (not recorded, or not found yet), recording_deleted "
        "(retention, or an erasure), recording_not_reachable (the file is not in this "
        "dialer's [recording] dir: when the PBX runs elsewhere, its recordings must be on "
        "storage shared with the dialer). Admins, supervisors and integrations (a CRM).",
    ),
]
