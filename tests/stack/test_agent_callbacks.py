"""A due personal callback is dialled to its owner, through real Asterisk: the
callee is connected to that agent's phone (sipp), not to whoever is free first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dialer_server.config import Config

from ..support.campaign_setup import add_campaign, engine_config, running_daemon
from ..support.sipp_agents import QUEUE, SippAgents, TalkTime
from ..support.sql import sql

pytestmark = pytest.mark.stack

ONE_CALL = {"name": "callback-call", "version": 1, "attempts": [{"phone": 1, "max_tries": 2}]}
# The far end answers and would stay 60 s: the agent (talking 1 s) ends the call.
ANSWERS = "12025550260"


@pytest.fixture
async def agents(stack: Any) -> AsyncIterator[SippAgents]:
    async with SippAgents(talk=TalkTime(min_s=1.0, spread_s=0.0)) as sipp:
        await sipp.register(["agent01", "agent02"])
        yield sipp


async def test_a_personal_callback_reaches_its_own_agent(
    config: Config, database_url: str, agents: SippAgents
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # An automated campaign: its other calls never see an agent, its callbacks do.
        campaign_id, (contact_id,) = await add_campaign(
            conn, "callback-call", ONE_CALL, [[ANSWERS]], start=False
        )
        await conn.execute(
            sql("disposition_reopen_contact"),
            contact_id,
            "$follow_up_personal",
            datetime.now(UTC) - timedelta(seconds=1),
            0,
            "call",
            1,
            "agent02",
        )
        async with running_daemon(engine_config(config)) as daemon:
            async with asyncio.timeout(15):
                while not (daemon.roster.ready and len(daemon.roster.free_agents(QUEUE)) == 2):
                    await asyncio.sleep(0.05)
            await conn.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)

            async with asyncio.timeout(60):
                while (
                    attempt := await conn.fetchrow(
                        "SELECT outcome, agent, abandoned FROM attempts "
                        "WHERE contact_id = $1 AND state = 'ended'",
                        contact_id,
                    )
                ) is None:
                    await asyncio.sleep(0.1)
        assert dict(attempt) == {"outcome": "answered", "agent": "agent02", "abandoned": False}
        contact = await conn.fetchrow(
            "SELECT state, callback_agent FROM contacts WHERE id = $1", contact_id
        )
        assert dict(contact) == {"state": "connected", "callback_agent": None}
    finally:
        await conn.close()
