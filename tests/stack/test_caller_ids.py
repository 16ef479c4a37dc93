"""Caller-ID pools, checked by the caller ID the sipp far end receives: round robin, local
presence (area, then country), the daily cap; the attempt records the one it used."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from dialer_server.config import Config
from dialer_server.engine import store

from ..support.api_client import api_config, api_server
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.far_end_log import callers_of

pytestmark = pytest.mark.stack

# One try; the far end answers ...486 with 486 Busy at once (a call in no time).
ONE_TRY = {
    "name": "caller-id-one-try",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
POOL = ["+12025550100", "+14155550100", "+442079460000"]


async def run_campaign(
    config: Config, pool: Any, name: str, phones: list[str], body: dict[str, Any]
) -> int:
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(
            conn, name, ONE_TRY, [[p] for p in phones], start=False, max_concurrent_calls=10
        )
    async with api_server(api_config(config)) as api:
        await api.ok("PUT", f"/api/v1/campaigns/{campaign_id}/caller-ids", body)
    async with pool.acquire() as conn:
        await store.set_campaign_state(conn, campaign_id, "running")
    async with running_daemon(engine_config(config)):
        await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=60)
    return int(campaign_id)


async def attempt_callers(pool: Any, campaign_id: int) -> dict[str, str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT number, caller_id FROM attempts WHERE campaign_id = $1", campaign_id
        )
    return {r["number"]: r["caller_id"] for r in rows}


async def test_round_robin_gives_each_number_its_turn_as_the_far_end_sees(
    stack: Any, config: Config, pool: Any
) -> None:
    phones = [f"+1202555{i}486" for i in range(1, 7)]
    campaign_id = await run_campaign(
        config, pool, "round-robin", phones, {"numbers": POOL, "rotation": "round_robin"}
    )
    seen = await callers_of(stack, set(phones))
    assert Counter(seen.values()) == {n: 2 for n in POOL}
    # The attempt records the caller ID the far end got.
    assert await attempt_callers(pool, campaign_id) == seen


async def test_local_presence_prefers_the_area_then_the_country(
    stack: Any, config: Config, pool: Any
) -> None:
    local = {
        "+14155551486": "+14155550100",  # San Francisco: the 415 number
        "+14155552486": "+14155550100",
        "+12025553486": "+12025550100",  # Washington: the 202 number
        "+447911123486": "+442079460000",  # a UK mobile: the UK number (same country)
    }
    chicago = "+13125554486"  # no number of its area: one of its country
    campaign_id = await run_campaign(
        config,
        pool,
        "local",
        [*local, chicago],
        {"numbers": POOL, "local_presence": True},
    )
    seen = await callers_of(stack, {*local, chicago})
    assert {n: seen[n] for n in local} == local
    assert seen[chicago] in ("+12025550100", "+14155550100")
    assert await attempt_callers(pool, campaign_id) == seen


async def test_a_daily_cap_holds_and_leaves_the_rest_for_tomorrow(
    stack: Any, config: Config, pool: Any
) -> None:
    phones = ["+12025556486", "+12025557486", "+12025558486"]
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(
            conn, "capped", ONE_TRY, [[p] for p in phones], start=False, timezone="Europe/Paris"
        )
    async with api_server(api_config(config)) as api:
        path = f"/api/v1/campaigns/{campaign_id}/caller-ids"
        body = {"numbers": POOL[:2], "rotation": "least_used", "daily_cap": 1}
        await api.ok("PUT", path, body)
        async with pool.acquire() as conn:
            await store.set_campaign_state(conn, campaign_id, "running")
        async with running_daemon(engine_config(config)):
            async with asyncio.timeout(60):
                while True:
                    async with pool.acquire() as conn:
                        waiting = await conn.fetchrow(
                            "SELECT next_attempt_at, (date_trunc('day', now() AT TIME ZONE "
                            "'Europe/Paris') + interval '1 day') AT TIME ZONE 'Europe/Paris' "
                            "AS tomorrow FROM contacts WHERE campaign_id = $1 AND closed_at "
                            "IS NULL AND next_attempt_at > now() + interval '1 minute'",
                            campaign_id,
                        )
                        closed = await conn.fetchval(
                            "SELECT count(*) FROM contacts WHERE campaign_id = $1 "
                            "AND closed_at IS NOT NULL",
                            campaign_id,
                        )
                    if waiting is not None and closed == 2:
                        break
                    await asyncio.sleep(0.2)
        shown = await api.ok("GET", path)
    assert waiting["next_attempt_at"] == waiting["tomorrow"]
    callers = await attempt_callers(pool, campaign_id)
    assert sorted(callers.values()) == sorted(POOL[:2])  # one call each: the cap
    assert sorted((n["number"], n["calls_today"]) for n in shown["numbers"]) == [
        (POOL[0], 1),
        (POOL[1], 1),
    ]


async def test_the_pool_over_the_api(config: Config) -> None:
    async with api_server(api_config(config)) as api:
        await api.new_strategy()
        campaign = await api.new_campaign("pooled")
        path = f"/api/v1/campaigns/{campaign['id']}/caller-ids"
        assert (await api.get(path)).status == 404
        made = await api.ok(
            "PUT", path, {"numbers": ["+1 202 555 0100", "+14155550100", "+12025550100"]}
        )
        assert [n["number"] for n in made["numbers"]] == ["+12025550100", "+14155550100"]
        assert [n["area_prefix"] for n in made["numbers"]] == ["+1202", "+1415"]
        assert made["rotation"] == "round_robin" and made["daily_cap"] is None
        for bad in (
            {"numbers": []},
            {"numbers": ["2025550100"]},
            {"numbers": ["+1202"]},
            {"numbers": ["+12025550100"], "rotation": "random"},
            {"numbers": ["+12025550100"], "daily_cap": 0},
        ):
            reply = await api.put(path, bad)
            assert reply.status == 422, (bad, reply.body)
        assert (await api.delete(path)).status == 204
        assert (await api.delete(path)).status == 204
        assert (await api.get(path)).status == 404
