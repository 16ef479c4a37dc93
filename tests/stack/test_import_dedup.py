"""Dedup on import, against a real PostgreSQL: duplicates by phone number within the file,
against the campaign or every running campaign, kept as failed/$duplicate or skipped,
listed in the import's report; and a kept duplicate is never dialled (real Asterisk)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

import pytest

from dialer_server.config import Config
from dialer_server.contacts import import_reports
from dialer_server.contacts.importer import CHUNK_ROWS, Dedup, import_contacts, import_file
from dialer_server.engine import store

from ..support.api_client import api_config, api_server
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)

pytestmark = pytest.mark.stack

ONE_CALL = {
    "name": "dedup-one-call",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


def number(n: int) -> str:
    return f"+1202555{n:04d}"


async def new_campaign(conn: Any, name: str, phones: list[list[str]], **kw: Any) -> int:
    campaign_id, _ = await add_campaign(conn, name, ONE_CALL, phones, start=False, **kw)
    return campaign_id


async def contacts_of(conn: Any, campaign_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT external_id, phone1, phone2, state, status, status_detail, next_attempt_at, "
        "closed_at FROM contacts WHERE campaign_id = $1 ORDER BY id",
        campaign_id,
    )
    return [dict(r) for r in rows]


async def report_lines(conn: Any, import_id: int) -> list[tuple[int, str, str]]:
    return [
        (p["row_number"], p["field"], p["reason"])
        async for page in import_reports.problems(conn, import_id)
        for p in page
    ]


async def test_duplicates_within_the_file_are_kept_as_failed_duplicate_and_listed(
    pool: Any,
) -> None:
    async with pool.acquire() as conn:
        campaign_id = await new_campaign(conn, "within", [])
        rows = [
            {"external_id": "a", "phone1": "(202) 555-0001"},
            {"external_id": "b", "phone1": "+1 202 555 0002", "phone2": "+12025550001"},
            {"external_id": "c", "phone1": "202-555-0003"},
            {"external_id": "d", "phone1": "555-0004"},  # a bad row: rejected, not a duplicate
            {"external_id": "e", "phone1": "2025550003"},
        ]
        report = await import_contacts(
            conn, campaign_id, rows, default_region="US", dedup=Dedup("campaign")
        )
        stored = await contacts_of(conn, campaign_id)
        lines = await report_lines(conn, report.import_id)
        saved = await import_reports.get(conn, report.import_id)
    assert (report.received, report.inserted, report.rejected_rows) == (5, 4, 1)
    assert report.duplicates == 2 and report.problems == 1
    assert [(d.row, d.field) for d in report.duplicate_rows] == [(2, "phone2"), (5, "phone1")]
    assert "+12025550001 is already in row 1" in report.duplicate_rows[0].reason
    assert "+12025550003 is already in row 3" in report.duplicate_rows[1].reason
    by_id = {c["external_id"]: c for c in stored}
    for kept in ("b", "e"):
        assert (by_id[kept]["state"], by_id[kept]["status"], by_id[kept]["status_detail"]) == (
            "not_connected",
            "failed",
            "$duplicate",
        )
        assert by_id[kept]["next_attempt_at"] is None and by_id[kept]["closed_at"] is not None
    for fresh in ("a", "c"):
        assert by_id[fresh]["status_detail"] == "$none" and by_id[fresh]["next_attempt_at"]
    # The report lists problems and duplicates together, in row order.
    assert [(row, field) for row, field, _ in lines] == [
        (2, "phone2"),
        (4, "phone1"),
        (5, "phone1"),
    ]
    assert saved["duplicates"] == 2 and saved["problems"] == 1
    assert json.loads(saved["options"]) == {"dedup": "campaign", "duplicates": "keep"}


async def test_duplicates_are_found_across_chunks_of_a_big_file(pool: Any) -> None:
    """Chunks are stored one after the other: a number of an earlier chunk is found in
    the database, already stored by this import."""
    total = CHUNK_ROWS * 2 + 500
    lines = ["external_id,phone1"]
    for i in range(total):
        # Rows CHUNK_ROWS.. repeat the numbers of rows 0.. : the second chunk is all duplicates.
        lines.append(f"x{i},{number(i % CHUNK_ROWS)}")
    data = ("\n".join(lines) + "\n").encode()
    async with pool.acquire() as conn:
        campaign_id = await new_campaign(conn, "chunks", [])
        report = await import_file(
            conn, campaign_id, "big.csv", data, dedup=Dedup("campaign", "skip"), workers=0
        )
        count = await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE campaign_id = $1", campaign_id
        )
        listed = await report_lines(conn, report.import_id)
    assert report.duplicates == total - CHUNK_ROWS
    assert report.inserted == count == CHUNK_ROWS
    assert report.problems == 0 and report.stored
    assert len(listed) == total - CHUNK_ROWS
    # Row 2 is the first data row of the CSV (the header is row 1).
    first = listed[0]
    assert first[0] == CHUNK_ROWS + 2 and "earlier row of this import" in first[2]
    assert first[2].endswith("(skipped)")
    assert [row for row, _, _ in listed] == sorted(row for row, _, _ in listed)


async def test_against_the_campaign_or_every_running_campaign(pool: Any) -> None:
    async with pool.acquire() as conn:
        target = await new_campaign(conn, "target", [[number(1)], [number(2), number(3)]])
        running = await new_campaign(conn, "running-one", [[number(10)]])
        await store.set_campaign_state(conn, running, "running")
        stopped = await new_campaign(conn, "stopped-one", [[number(20)]])
        rows = [
            {"phone1": number(3)},  # phone2 of a contact of the campaign
            {"phone1": number(10)},  # a running campaign's
            {"phone1": number(20)},  # a stopped campaign's: not a duplicate
            {"phone1": number(30)},
        ]
        only_campaign = await import_contacts(
            conn, target, rows, default_region="US", dedup=Dedup("campaign", "skip")
        )
        assert [d.row for d in only_campaign.duplicate_rows] == [1]
        assert "already contact" in only_campaign.duplicate_rows[0].reason
        assert f"campaign {target}" in only_campaign.duplicate_rows[0].reason

        everywhere = await import_contacts(
            conn, target, rows, default_region="US", dedup=Dedup("running", "skip")
        )
        # The rows stored by the first import are the campaign's now: all but row 3's
        # stopped-campaign number... which the first import stored in the target too.
        assert [d.row for d in everywhere.duplicate_rows] == [1, 2, 3, 4]
        third = await new_campaign(conn, "third", [])
        fresh = await import_contacts(
            conn, third, rows, default_region="US", dedup=Dedup("running", "skip")
        )
        assert [d.row for d in fresh.duplicate_rows] == [2]
        assert f"campaign {running}" in fresh.duplicate_rows[0].reason
        assert stopped


async def test_an_update_of_a_known_contact_is_never_a_duplicate_and_off_finds_none(
    pool: Any,
) -> None:
    async with pool.acquire() as conn:
        campaign_id = await new_campaign(conn, "updates", [])
        await import_contacts(
            conn, campaign_id, [{"external_id": "k1", "phone1": number(1)}], default_region="US"
        )
        again = await import_contacts(
            conn,
            campaign_id,
            [
                {"external_id": "k1", "phone1": number(1)},
                {"external_id": "k2", "phone1": number(2)},
            ],
            default_region="US",
            dedup=Dedup("campaign"),
        )
        assert (again.updated, again.inserted, again.duplicates) == (1, 1, 0)
        off = await import_contacts(
            conn, campaign_id, [{"phone1": number(1)}, {"phone1": number(1)}], default_region="US"
        )
        assert (off.inserted, off.duplicates) == (2, 0)


async def test_the_api_takes_the_options_and_its_report_lists_the_duplicates(
    config: Config,
) -> None:
    async with api_server(api_config(config)) as api:
        await api.new_strategy()
        campaign = await api.new_campaign("api-dedup")
        path = f"/api/v1/campaigns/{campaign['id']}"
        first = await api.upload(
            campaign["id"],
            [{"phone1": number(1)}, {"phone1": number(1)}],
            dedup="campaign",
            duplicates="skip",
        )
        assert (first["inserted"], first["duplicates"]) == (1, 1)
        assert first["duplicate_rows"][0]["row"] == 2
        csv_file = f"phone1\n{number(1)}\n{number(5)}\n".encode()
        reply = await api.request(
            "POST",
            path + "/contacts/file",
            data=csv_file,
            headers={"Content-Type": "text/csv"},
            params={"dedup": "campaign"},
        )
        assert reply.status == 200, reply.body
        assert (reply.body["inserted"], reply.body["duplicates"]) == (2, 1)
        report = await api.get(f"/api/v1/imports/{reply.body['import_id']}/report")
        rows = list(csv.reader(io.StringIO(report.raw.decode())))
        assert rows[0] == ["row", "field", "reason"]
        assert rows[1][:2] == ["2", "phone1"] and "kept as failed/$duplicate" in rows[1][2]
        bad = await api.post(path + "/contacts", {"contacts": [], "dedup": "everything"})
        assert bad.status == 422
        bad = await api.request(
            "POST", path + "/contacts/file", data=csv_file, params={"duplicates": "drop"}
        )
        assert bad.status == 422
        counted = await api.ok("GET", path)
        assert counted["contacts"]["by_status"]


@pytest.mark.stack
async def test_a_kept_duplicate_is_never_dialled(stack: Any, config: Config, pool: Any) -> None:
    async with pool.acquire() as conn:
        campaign_id = await new_campaign(conn, "dial-dedup", [])
        # ...201: the far end answers and hangs up after 1 s.
        report = await import_contacts(
            conn,
            campaign_id,
            [
                {"external_id": "first", "phone1": "+12025550201"},
                {"external_id": "again", "phone1": "+12025550201"},
            ],
            default_region="US",
            dedup=Dedup("campaign"),
        )
        assert report.duplicates == 1
        await store.set_campaign_state(conn, campaign_id, "running")
    async with running_daemon(engine_config(dataclasses.replace(config))):
        await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=60)
    async with pool.acquire() as conn:
        dialled = await conn.fetch(
            "SELECT c.external_id, a.outcome FROM attempts a "
            "JOIN contacts c ON c.id = a.contact_id WHERE a.campaign_id = $1",
            campaign_id,
        )
        states = {
            c["external_id"]: c["status_detail"] for c in await contacts_of(conn, campaign_id)
        }
    assert [(r["external_id"], r["outcome"]) for r in dialled] == [("first", "answered")]
    assert states["again"] == "$duplicate"
