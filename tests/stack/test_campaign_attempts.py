"""Attempts across a campaign: filters, pages that stay put while attempts are written, and
the CSV and XLSX exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest

from dialer_server.config import Config

from ..support.api_client import api_config, api_server

pytestmark = pytest.mark.stack

# (outcome, hangup cause, channel, agent, disposition)
KINDS = [
    ("answered", 16, "call", "agent07", "interested"),
    ("busy", 17, "call", None, None),
    ("no_answer", 19, "call", None, None),
    ("answered", 16, "call", "agent09", "call_again"),
    ("sent", None, "sms", None, None),
]


async def seed(api: Any, pool: Any, contacts: int = 5) -> tuple[int, list[int]]:
    await api.new_strategy()
    campaign = await api.new_campaign("listed")
    await api.upload(
        campaign["id"],
        [{"external_id": f"=x{i}", "phone1": f"+1202555{i:04d}"} for i in range(contacts)],
    )
    async with pool.acquire() as conn:
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM contacts WHERE campaign_id = $1 ORDER BY id", campaign["id"]
            )
        ]
    return campaign["id"], ids


async def add_attempts(pool: Any, campaign_id: int, contact_ids: list[int], count: int) -> None:
    """``count`` ended attempts, the kinds of KINDS in turn, one minute apart."""
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        for n in range(count):
            outcome, cause, channel, agent, disposition = KINDS[n % len(KINDS)]
            contact = contact_ids[n % len(contact_ids)]
            at = start + timedelta(minutes=n)
            attempt = await conn.fetchval(
                "INSERT INTO attempts (campaign_id, contact_id, channel, phone_slot, number, "
                "state, outcome, hangup_cause, agent, created_at, answered_at, ended_at) "
                "VALUES ($1, $2, $3, 1, '+12025550000', 'ended', $4, $5, $6, $7::timestamptz, "
                "CASE WHEN $4 = 'answered' THEN $7::timestamptz + interval '5 seconds' END, "
                "$7::timestamptz + interval '35 seconds') RETURNING id",
                campaign_id,
                contact,
                channel,
                outcome,
                cause,
                agent,
                at,
            )
            if disposition is not None:
                await conn.execute(
                    "INSERT INTO attempt_dispositions (attempt_id, campaign_id, contact_id, "
                    "disposition_id, name, action, agent) SELECT $1, $2, $3, id, name, action, "
                    "$5 FROM dispositions WHERE campaign_id = $2 AND name = $4",
                    attempt,
                    campaign_id,
                    contact,
                    disposition,
                    agent,
                )


async def all_pages(
    api: Any,
    campaign_id: int,
    limit: int,
    between: Callable[[], Awaitable[None]] | None = None,
    **params: str,
) -> list[dict[str, Any]]:
    """Every page of the campaign's attempts; ``between()`` runs after each page."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = {**params, "limit": str(limit)}
        if after is not None:
            query["after"] = after
        page = await api.ok("GET", f"/api/v1/campaigns/{campaign_id}/attempts", params=query)
        items += page["items"]
        after = page["next_after"]
        if after is None:
            return items
        if between is not None:
            await between()


async def test_attempts_are_listed_with_every_filter(config: Config, pool: Any) -> None:
    async with api_server(api_config(config)) as api:
        campaign_id, contacts = await seed(api, pool)
        await add_attempts(pool, campaign_id, contacts, 50)
        every = await all_pages(api, campaign_id, 7)
        assert len(every) == 50
        assert [a["created_at"] for a in every] == sorted(a["created_at"] for a in every)
        answered = every[0]
        assert answered["outcome"] == "answered" and answered["talk_s"] == 30.0
        assert answered["external_id"] == "=x0" and answered["disposition"] == "interested"

        async def count(**params: str) -> int:
            return len(await all_pages(api, campaign_id, 100, **params))

        assert await count(outcome="answered") == 20
        assert await count(outcome="busy,no_answer") == 20
        assert await count(cause="17") == 10
        assert await count(channel="sms") == 10
        assert await count(agent="agent07") == 10
        assert await count(disposition="call_again") == 10
        assert await count(outcome="answered", agent="agent09") == 10
        # [from, to): minutes 10 to 19.
        window = {"from": "2025-03-01T09:10:00+00:00", "to": "2025-03-01T09:20:00Z"}
        assert await count(**window) == 10
        for bad in (
            {"outcome": "Answered"},
            {"cause": "x"},
            {"channel": "fax"},
            {"from": "yesterday"},
            {"after": "bm90IGEgY3Vyc29y"},
            {"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"},
            {"agent": "a b"},
        ):
            reply = await api.get(f"/api/v1/campaigns/{campaign_id}/attempts", params=bad)
            assert reply.status == 422, (bad, reply.body)
        assert (await api.get("/api/v1/campaigns/999/attempts")).status == 404


async def test_pages_stay_put_while_attempts_are_written(config: Config, pool: Any) -> None:
    """Every attempt there before the first page is seen exactly once, in order, however
    many attempts are written while the pages are read."""
    async with api_server(api_config(config)) as api:
        campaign_id, contacts = await seed(api, pool, contacts=20)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO attempts (campaign_id, contact_id, channel, number, created_at) "
                "SELECT $1, ($2::bigint[])[1 + n % 20], 'call', '+12025550000', "
                "now() - interval '1 hour' + n * interval '1 millisecond' "
                "FROM generate_series(1, 3000) AS n",
                campaign_id,
                contacts,
            )
            before = {
                str(r["id"])
                for r in await conn.fetch(
                    "SELECT id FROM attempts WHERE campaign_id = $1", campaign_id
                )
            }
        written = 0

        async def write() -> None:
            # Between two pages, as claims would: one attempt per transaction, each
            # stamped when written (a page is read on one snapshot: what matters is what
            # was committed between one page and the next, whatever the machine's speed).
            nonlocal written
            for _ in range(3):
                async with pool.acquire() as conn:
                    await conn.execute(
                        "INSERT INTO attempts (campaign_id, contact_id, channel, number, "
                        "created_at) VALUES ($1, $2, 'call', '+12025550000', clock_timestamp())",
                        campaign_id,
                        contacts[written % len(contacts)],
                    )
                written += 1

        seen = await all_pages(api, campaign_id, 97, write)
    ids = [a["id"] for a in seen]
    assert written > 50  # the pages really were read while attempts were written
    assert len(ids) == len(set(ids)), "an attempt was shown twice"
    assert before <= set(ids), "an attempt there all along was skipped"
    keys = [(a["created_at"], a["id"]) for a in seen]
    assert keys == sorted(keys)


async def test_the_export_streams_every_match_as_csv_and_xlsx(config: Config, pool: Any) -> None:
    async with api_server(api_config(config)) as api:
        campaign_id, contacts = await seed(api, pool)
        await add_attempts(pool, campaign_id, contacts, 12_000)
        listed = await all_pages(api, campaign_id, 1000, outcome="answered")
        path = f"/api/v1/campaigns/{campaign_id}/attempts/export"

        reply = await api.get(path, params={"outcome": "answered"})
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/csv")
        assert 'filename="campaign-' in reply.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(reply.raw.decode())))
        assert len(rows) == len(listed) == 4800
        assert [r["attempt_id"] for r in rows] == [a["id"] for a in listed]
        # CRM text that a spreadsheet would run is guarded.
        assert rows[0]["external_id"] == "'=x0" and rows[0]["talk_s"] == "30.0"

        reply = await api.get(path, params={"format": "xlsx", "outcome": "answered"})
        assert reply.status == 200
        book = openpyxl.load_workbook(io.BytesIO(reply.raw), read_only=True)
        sheet = [[c.value for c in r] for r in book["attempts"].iter_rows()]
        assert sheet[0] == list(rows[0].keys())
        assert [r[0] for r in sheet[1:]] == [a["id"] for a in listed]
        assert sheet[1][2] == "=x0"  # a text cell: never a formula
        assert (await api.get(path, params={"format": "pdf"})).status == 422
        assert (await api.get("/api/v1/campaigns/999/attempts/export")).status == 404

        # The results export (a row per contact) streams its XLSX the same way.
        results = await api.get(
            f"/api/v1/campaigns/{campaign_id}/results", params={"format": "xlsx"}
        )
        book = openpyxl.load_workbook(io.BytesIO(results.raw), read_only=True)
        assert len(list(book["results"].iter_rows())) == 1 + len(contacts)
