"""/api/v1/campaigns/{id}/caller-ids: a campaign's caller-ID pool."""

from __future__ import annotations

from aiohttp import web

from ..campaigns import caller_id_pools
from .common import Operation, note, path_id, read_json, respond, transaction
from .schemas import caller_ids as schemas
from .schemas import common as s


async def get_pool(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        pool = await caller_id_pools.get(conn, campaign_id)
    return respond(pool)


async def put_pool(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    body = await read_json(request, schemas.POOL_PUT)
    async with transaction(request) as conn:
        pool = await caller_id_pools.put(conn, campaign_id, body)
        note(request, "campaign", campaign_id, after={"caller_id_pool": body})
    return respond(pool)


async def delete_pool(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    async with transaction(request) as conn:
        before = await caller_id_pools.delete(conn, campaign_id)
        note(request, "campaign", campaign_id, before={"caller_id_pool": before})
    return web.Response(status=204)


_PATH = r"/api/v1/campaigns/{campaign_id:\d+}/caller-ids"

OPERATIONS = [
    Operation(
        "GET",
        _PATH,
        get_pool,
        "getCallerIdPool",
        "The campaign's caller-ID pool: its numbers, their calls today, how they rotate",
        "campaigns",
        parameters=(s.CAMPAIGN_ID,),
        responses={"200": s.ok(s.ref("CallerIdPool")), **s.errors("401", "404", "503")},
    ),
    Operation(
        "PUT",
        _PATH,
        put_pool,
        "putCallerIdPool",
        "Give the campaign a pool of caller IDs instead of one",
        "campaigns",
        parameters=(s.CAMPAIGN_ID,),
        body=s.json_body(schemas.POOL_PUT),
        responses={
            "200": s.ok(s.ref("CallerIdPool")),
            **s.errors("400", "401", "403", "404", "413", "415", "422", "503"),
        },
        description="rotation round_robin (each number in turn) or least_used (the fewest "
        "calls today); daily_cap: calls per number per day, in the campaign's time zone (at "
        "the cap of every number, contacts wait for the next day); local_presence: prefer a "
        "number of the called number's area code, then of its country. Numbers kept keep "
        "their counts. Each attempt records the caller ID it used.",
    ),
    Operation(
        "DELETE",
        _PATH,
        delete_pool,
        "deleteCallerIdPool",
        "Remove the pool: the campaign calls from its caller_id again",
        "campaigns",
        parameters=(s.CAMPAIGN_ID,),
        responses={"204": s.no_content("Removed"), **s.errors("401", "403", "404", "503")},
        description="Idempotent.",
    ),
]
