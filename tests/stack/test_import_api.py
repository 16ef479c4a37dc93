"""Big and bad imports over the HTTP API: bounded answers, downloadable reports, limits,
and a daemon whose event loop keeps answering while it imports."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.api.contacts import MAX_BATCH_BYTES
from dialer_server.api.schemas.contacts import MAX_BATCH
from dialer_server.config import Config
from dialer_server.contacts.import_reports import SHOWN

from ..support.api_client import READ_TOKEN, WRITE_TOKEN, Api, api_config, api_server
from ..support.daemon_process import DaemonProcess, daemon_env, wait_for

pytestmark = pytest.mark.stack

# Five problems a row: none of 1..5 is a phone number.
BAD_HEADER = b"phone1,phone2,phone3,phone4,phone5\n"
BAD_LINE = b"1,2,3,4,5\n"


def bad_rows(count: int) -> bytes:
    return BAD_HEADER + BAD_LINE * count


@pytest.fixture
async def api(config: Config) -> AsyncIterator[Api]:
    async with api_server(api_config(config)) as client:
        await client.new_strategy()
        yield client


@pytest.fixture
async def campaign(api: Api) -> dict[str, Any]:
    return dict(await api.new_campaign())


def report_rows(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode())))


async def test_a_file_of_bad_rows_gets_a_bounded_answer_and_a_report_listing_every_problem(
    api: Api, campaign: dict[str, Any]
) -> None:
    rows = 20_000
    reply = await api.post(
        f"/api/v1/campaigns/{campaign['id']}/contacts/file",
        data=io.BytesIO(bad_rows(rows)),
        headers={"Content-Type": "text/csv"},
    )
    assert reply.status == 200, reply.body
    answer = reply.body
    assert (answer["received"], answer["inserted"], answer["stored"]) == (rows, 0, True)
    assert (answer["rejected_rows"], answer["problems"]) == (rows, 5 * rows)
    assert answer["problems_listed"] == 5 * rows
    # The answer lists the first problems only, in row order, whatever the file's size.
    assert len(answer["rejected"]) == SHOWN
    assert answer["rejected"][0] == {
        "row": 2,
        "field": "phone1",
        "reason": "'1' is not a phone number",
    }
    assert len(reply.raw) < 32 * 1024
    assert answer["report"] == f"/api/v1/imports/{answer['import_id']}/report"

    # The report: every problem, as CSV, for a read token too.
    report = await api.with_token(READ_TOKEN).get(answer["report"])
    assert report.status == 200
    assert report.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in report.headers["Content-Disposition"]
    lines = report_rows(report.raw)
    assert lines[0] == ["row", "field", "reason"]
    assert len(lines) == 1 + 5 * rows
    assert lines[1:6] == [["2", f"phone{i}", f"'{i}' is not a phone number"] for i in range(1, 6)]
    assert [int(line[0]) for line in lines[1:]] == [2 + i // 5 for i in range(5 * rows)]


async def test_the_report_of_an_all_or_nothing_import_is_kept_though_nothing_was_stored(
    api: Api, campaign: dict[str, Any]
) -> None:
    data = b"phone1,external_id\n2025550101,a\n12345,b\n=cmd|' /C calc'!A0,c\n"
    reply = await api.post(
        f"/api/v1/campaigns/{campaign['id']}/contacts/file",
        data=data,
        headers={"Content-Type": "text/csv"},
        params={"all_or_nothing": "true"},
    )
    assert reply.status == 422 and reply.body["error"]["code"] == "import_rejected"
    details = reply.body["error"]["details"]
    assert (details["stored"], details["inserted"], details["problems"]) == (False, 0, 2)
    report = await api.get(details["report"])
    assert report.status == 200
    lines = report_rows(report.raw)
    assert [line[:2] for line in lines[1:]] == [["3", "phone1"], ["4", "phone1"]]
    # A reason quotes the value at fault: CRM text no spreadsheet may run.
    assert (
        lines[2][2].startswith("'\"=cmd")
        or lines[2][2].startswith("'=cmd")
        or (not lines[2][2].lstrip().startswith(("=", "+", "-", "@")))
    )
    assert (await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts"))["items"] == []


async def test_a_json_batch_of_good_rows_has_an_empty_report(
    api: Api, campaign: dict[str, Any]
) -> None:
    answer = await api.upload(campaign["id"], [{"phone1": "+12025550101"}])
    assert (answer["inserted"], answer["problems"], answer["rejected"]) == (1, 0, [])
    report = await api.get(answer["report"])
    assert report.status == 200 and report_rows(report.raw) == [["row", "field", "reason"]]


async def test_a_report_past_its_time_or_of_a_deleted_campaign_is_gone(
    api: Api, campaign: dict[str, Any], database_url: str
) -> None:
    first = await api.upload(campaign["id"], [{"phone1": "bad"}])
    second = await api.upload(campaign["id"], [{"phone1": "also bad"}])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE imports SET expires_at = now() - interval '1 second' WHERE id = $1",
            first["import_id"],
        )
        gone = await api.get(first["report"])
        assert gone.status == 404 and "kept 7 days" in gone.body["error"]["message"]
        # The next import deletes what is past its time.
        third = await api.upload(campaign["id"], [{"phone1": "+12025550101"}])
        assert (
            await conn.fetchval("SELECT count(*) FROM imports WHERE id = $1", first["import_id"])
            == 0
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM import_problems WHERE import_id = $1", first["import_id"]
            )
            == 0
        )
        assert (await api.get(second["report"])).status == 200
        await api.ok("DELETE", f"/api/v1/campaigns/{campaign['id']}", status=204)
        for answer in (second, third):
            assert (await api.get(answer["report"])).status == 404
    finally:
        await conn.close()
    assert (await api.get("/api/v1/imports/99999/report")).status == 404
    assert (await api.get("/api/v1/imports/99999999999999999999/report")).status == 404


async def test_a_json_batch_beyond_its_limits_is_refused_with_a_pointer_to_the_file_upload(
    api: Api, campaign: dict[str, Any]
) -> None:
    path = f"/api/v1/campaigns/{campaign['id']}/contacts"
    too_many = {"contacts": [{"phone1": "+12025550101"}] * (MAX_BATCH + 1)}
    # Over the size limit: refused from its Content-Length, before it is read...
    too_big = json.dumps({"contacts": [{"param1": "x" * 250}] * 70_000}).encode()
    assert len(too_big) > MAX_BATCH_BYTES

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 65536):
            yield too_big[start : start + 65536]

    # Too many contacts: invalid data, with the same pointer.
    reply = await api.post(path, too_many)
    assert reply.status == 422 and reply.body["error"]["code"] == "batch_too_large"
    assert reply.body["error"]["details"][0]["field"] == "contacts"
    assert "/contacts/file" in reply.body["error"]["message"]
    cases = [
        await api.post(
            path, data=io.BytesIO(too_big), headers={"Content-Type": "application/json"}
        ),
        # ...and, sent without one, as soon as it passes the limit.
        await api.post(path, data=chunked(), headers={"Content-Type": "application/json"}),
    ]
    for reply in cases:
        assert reply.status == 413, reply.body
        error = reply.body["error"]
        assert error["code"] == "payload_too_large"
        assert f"at most {MAX_BATCH} contacts" in error["message"]
        assert "/contacts/file" in error["message"]
    assert (await api.ok("GET", path))["items"] == []


# --- a daemon importing --------------------------------------------------------------------


@pytest.fixture
def daemon(stack: Any, database_url: str, tmp_path: Path) -> Iterator[DaemonProcess]:
    env = daemon_env(stack, database_url, DIALER_API_TOKENS=f"crm:{WRITE_TOKEN}")
    process = DaemonProcess(env, tmp_path / "daemon.log")
    try:
        wait_for(lambda: process.ready()[0] == 200, 30, "/readyz 200")
        yield process
    finally:
        process.close()


def _call(daemon: DaemonProcess, method: str, path: str, body: bytes, kind: str) -> Any:
    request = urllib.request.Request(
        daemon.url(path),
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": kind},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_daemon_answers_healthz_all_through_a_big_import_of_bad_rows(
    daemon: DaemonProcess,
) -> None:
    _call(
        daemon,
        "POST",
        "/api/v1/strategies",
        json.dumps({"name": "once", "version": 1, "attempts": [{"phone": 1}]}).encode(),
        "application/json",
    )
    status, campaign = _call(
        daemon,
        "POST",
        "/api/v1/campaigns",
        b'{"name": "big", "strategy": "once"}',
        "application/json",
    )
    assert status == 201, campaign
    # The 2 MB file of bad rows that once held the loop for seconds (a million problems).
    data = bad_rows(200_000)
    answer: dict[str, Any] = {}

    def run_import() -> None:
        answer["reply"] = _call(
            daemon, "POST", f"/api/v1/campaigns/{campaign['id']}/contacts/file", data, "text/csv"
        )

    importer = threading.Thread(target=run_import)
    importer.start()
    probes = 0
    try:
        while importer.is_alive():
            # A probe that is not answered within 3 s means the loop is held up: far
            # beyond any pause of a loop that only hands work to threads.
            with urllib.request.urlopen(daemon.url("/healthz"), timeout=3) as reply:
                assert reply.status == 200
            probes += 1
            time.sleep(0.05)
    finally:
        importer.join()
    status, body = answer["reply"]
    assert status == 200, body
    assert (body["received"], body["problems"], len(body["rejected"])) == (
        200_000,
        1_000_000,
        SHOWN,
    )
    # The import took long enough for the probes to mean something.
    assert probes >= 10, probes
    assert daemon.alive()
