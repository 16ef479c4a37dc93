"""/api/v1/campaigns/{id}/webhook: a campaign's own webhook (URL, secret, events)."""

from __future__ import annotations

from aiohttp import web

from ..campaigns import hooks
from ..config import AllowedHosts
from .common import CONTEXT, Operation, note, path_id, read_json, respond, transaction
from .schemas import common as s
from .schemas import hooks as schemas


def _allowed(request: web.Request) -> AllowedHosts:
    return AllowedHosts.parse(request.app[CONTEXT].config.webhooks.allowed_hosts)


async def get_hook(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        row = await hooks.get(conn, campaign_id)
    return respond(hooks.hook_json(row))


async def put_hook(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.HOOK_PUT)
    async with transaction(request) as conn:
        row, before, made = await hooks.put(conn, campaign_id, body, allowed=_allowed(request))
        after = hooks.hook_json(row)
        note(
            request,
            "campaign",
            campaign_id,
            before={"webhook": hooks.shown(before)},
            after={
                "webhook": after,
                "secret_changed": before is None or body.get("secret") is not None,
            },
        )
    return respond({"webhook": after, "secret": made}, status=201 if before is None else 200)


async def rotate_secret(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.HOOK_ROTATE) if request.can_read_body else {}
    async with transaction(request) as conn:
        row, secret = await hooks.rotate(
            conn,
            campaign_id,
            secret=body.get("secret"),
            grace_s=int(body.get("grace_s", hooks.DEFAULT_GRACE_S)),
        )
        after = hooks.hook_json(row)
        note(request, "campaign", campaign_id, after={"webhook": after, "secret_rotated": True})
    # The new secret is shown once: the CRM stores it now.
    return respond({"webhook": after, "secret": secret})


async def delete_hook(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        before = await hooks.delete(conn, campaign_id)
        note(request, "campaign", campaign_id, before={"webhook": hooks.shown(before)})
    return web.Response(status=204)


_PATH = r"/api/v1/campaigns/{campaign_id:\d+}/webhook"
_WRITE_ERRORS = ("400", "401", "403", "404", "413", "415", "422", "503")

OPERATIONS = [
    Operation(
        "GET",
        _PATH,
        get_hook,
        "getCampaignWebhook",
        "The campaign's own webhook (never its secret)",
        "webhooks",
        parameters=(s.CAMPAIGN_ID,),
        responses={"200": s.ok(s.ref("CampaignWebhook")), **s.errors("401", "404", "503")},
        description="404 when the campaign has none: its events go to the daemon's "
        "[webhooks] url, if it has one.",
    ),
    Operation(
        "PUT",
        _PATH,
        put_hook,
        "putCampaignWebhook",
        "Give the campaign a webhook of its own: URL, secret, event types",
        "webhooks",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.HOOK_PUT),
        responses={
            "200": s.ok(s.ref("CampaignWebhookSet"), "Changed"),
            "201": s.ok(s.ref("CampaignWebhookSet"), "Created"),
            **s.errors(*_WRITE_ERRORS),
        },
        description="Its events go to url, signed with its secret, from the next event on; "
        "events (null: every type) filters them. Without a secret, a new hook gets one made "
        "here, shown once in the answer (secret), and an existing hook keeps its own. The "
        "url must be http(s), and may not lead to a loopback, link-local or cloud-metadata "
        "address unless [webhooks] allowed_hosts allows it (422 webhook_url_refused).",
    ),
    Operation(
        "POST",
        _PATH + "/rotate",
        rotate_secret,
        "rotateCampaignWebhookSecret",
        "A new secret for the campaign's webhook; the old one stays valid for a grace period",
        "webhooks",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.HOOK_ROTATE, required=False),
        responses={
            "200": s.ok(s.ref("CampaignWebhookSet"), "Rotated: secret is the new one"),
            **s.errors(*_WRITE_ERRORS, "409"),
        },
        description="Until the grace period ends (grace_s, default 86400), every delivery "
        "carries two signatures, the new secret's first: a receiver may switch to the new "
        "secret at any moment. Without a secret, one is made and shown once.",
    ),
    Operation(
        "DELETE",
        _PATH,
        delete_hook,
        "deleteCampaignWebhook",
        "Remove the campaign's own webhook: its events go to the daemon's from now on",
        "webhooks",
        parameters=(s.CAMPAIGN_ID,),
        responses={"204": s.no_content("Removed"), **s.errors("401", "403", "404", "503")},
        description="Events written for its own hook and not yet delivered are dropped, "
        "never sent to another hook. Idempotent.",
    ),
]
