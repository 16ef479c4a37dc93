"""A campaign completes only when every contact is closed, even while another
transaction is reopening one or adding one (real PostgreSQL, READ COMMITTED)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from dialer_server.contacts import operations as contacts
from dialer_server.engine import store

from ..support.campaign_setup import add_campaign
from ..support.sql import sql

pytestmark = pytest.mark.stack

ONE_CALL = {"name": "completion", "version": 1, "attempts": [{"phone": 1}]}


async def closed_campaign(conn: Any) -> tuple[int, int]:
    """A running campaign whose only contact is closed: ready to complete."""
    campaign_id, (contact_id,) = await add_campaign(
        conn, "completion", ONE_CALL, [["+12025550100"]]
    )
    await conn.execute(sql("close_contact"), contact_id, "connected", "success", "$none")
    return campaign_id, contact_id


async def campaign_state(conn: Any, campaign_id: int) -> str:
    state: str = await conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
    return state


async def test_a_campaign_with_only_closed_contacts_completes(pool: Any) -> None:
    async with pool.acquire() as conn:
        campaign_id, _ = await closed_campaign(conn)
        assert await store.complete_campaign_if_done(conn, campaign_id)
        assert await campaign_state(conn, campaign_id) == "completed"
        # Completing twice is a no-op.
        assert not await store.complete_campaign_if_done(conn, campaign_id)


async def test_completion_waits_for_a_reschedule_in_flight(pool: Any) -> None:
    async with pool.acquire() as setup:
        campaign_id, contact_id = await closed_campaign(setup)
    async with pool.acquire() as reopener, pool.acquire() as completer:
        tx = reopener.transaction()
        await tx.start()
        await contacts.reschedule(reopener, contact_id, at=datetime.now(UTC), step=None)
        # The reopening is not committed yet: completion must wait for it, then see it.
        completing = asyncio.create_task(store.complete_campaign_if_done(completer, campaign_id))
        await asyncio.sleep(0.3)
        assert not completing.done()
        await tx.commit()
        assert await asyncio.wait_for(completing, 10) is False
        assert await campaign_state(completer, campaign_id) == "running"


async def test_completion_waits_for_a_contact_being_added(pool: Any) -> None:
    async with pool.acquire() as setup:
        campaign_id, _ = await closed_campaign(setup)
    async with pool.acquire() as importer, pool.acquire() as completer:
        tx = importer.transaction()
        await tx.start()
        await store.insert_contact(
            importer, campaign_id, phones=["+12025550101"], external_id="late", params=[]
        )
        completing = asyncio.create_task(store.complete_campaign_if_done(completer, campaign_id))
        await asyncio.sleep(0.3)
        assert not completing.done()
        await tx.commit()
        assert await asyncio.wait_for(completing, 10) is False
        assert await campaign_state(completer, campaign_id) == "running"


async def test_completion_committed_first_is_seen_by_the_reopener(pool: Any) -> None:
    async with pool.acquire() as conn:
        campaign_id, contact_id = await closed_campaign(conn)
        assert await store.complete_campaign_if_done(conn, campaign_id)
        async with conn.transaction():
            await contacts.reschedule(conn, contact_id, at=datetime.now(UTC), step=None)
        # A reschedule does not restart a completed campaign by itself (start does):
        # the contact is open and waits for it.
        assert await campaign_state(conn, campaign_id) == "completed"
        assert (
            await conn.fetchval("SELECT closed_at FROM contacts WHERE id = $1", contact_id) is None
        )
