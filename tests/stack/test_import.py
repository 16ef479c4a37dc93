"""Contact import against a real PostgreSQL: the API's function and the CLI."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import openpyxl
import pytest

from dialer_server.contacts import importer as contact_import
from dialer_server.contacts.files import read_csv, read_xlsx
from dialer_server.contacts.importer import (
    CampaignNotFound,
    ImportReport,
    RowError,
    import_contacts,
    import_file,
)
from dialer_server.engine import store

from ..support.campaign_setup import add_strategy

ROOT = Path(__file__).resolve().parents[2]

ONE_CALL = {
    "name": "import-test",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}

PHONE_29 = "+1" + " " * 13 + "(202) 555-0101"

# One kind of bad row per line, between good ones. Lines are rows (the header is row 1).
DATA_ROWS = [
    ["phone1", "phone2", "external_id", "param1", "param2", "timezone"],
    ["+1 202 555 0101", "", "crm-1", "Alice", "", "America/New_York"],  # 2 good
    ["2025550102", "(303) 555-0102", "crm-2", "Bob", "", ""],  # 3 good
    ["12345", "", "crm-3", "", "", ""],  # 4 invalid number
    [PHONE_29, "", "crm-4", "", "", ""],  # 5 29 characters
    ["", "2025550106", "crm-5", "", "", ""],  # 6 empty phone1
    ["2025550107", "", "crm-6", "x" * 256, "", ""],  # 7 oversize param
    ["2025550108", "", "crm-2", "again", "", ""],  # 8 duplicate of row 3
    ["2025550109", "", "crm-7", "", "", "Mars/Olympus"],  # 9 unknown time zone
    ["2025550110", "", "", "no id", "", ""],  # 10 good, no external id
    ["2025550111", "", "", "no id", "", ""],  # 11 good, no external id
]
DATA_ERRORS = [
    (4, "phone1", "'12345' is not a valid phone number (too short)"),
    (5, "phone1", "longer than 28 characters (29)"),
    (6, "phone1", "phone1 is required"),
    (7, "param1", "longer than 255 characters (256)"),
    (8, "external_id", "duplicate: external_id 'crm-2' is already in row 3"),
    (9, "timezone", "'Mars/Olympus' is not an IANA time zone"),
]


def csv_bytes(rows: list[list[str]]) -> bytes:
    return "".join(",".join(_quote(v) for v in row) + "\r\n" for row in rows).encode()


def _quote(value: str) -> str:
    return f'"{value}"' if "," in value else value


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
async def conn(database_url: str) -> Any:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def new_campaign(conn: Any, name: str = "import", region: str = "US") -> int:
    strategy_id = await add_strategy(conn, ONE_CALL)
    return await store.create_campaign(conn, name, strategy_id=strategy_id, default_region=region)


async def contacts(conn: Any, campaign_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT external_id, phone1, phone2, param1, param2, timezone, state, status,"
        " next_attempt_at IS NOT NULL AS due FROM contacts WHERE campaign_id = $1 ORDER BY id",
        campaign_id,
    )
    return [dict(r) for r in rows]


async def test_a_csv_with_bad_rows_reports_each_and_keeps_every_good_one(conn: Any) -> None:
    campaign_id = await new_campaign(conn)
    broken_lines = (
        b'2025550112,,crm-8,"never closed,,\r\n'  # 12 broken quoting
        b"2025550113,,crm-9,Carol,,\r\n"  # 13 good
        + "2025550114,,crm-10,café,,\r\n".encode("latin-1")  # 14 wrong encoding
        + b"2025550115,,crm-11,too,many,fields,\r\n"  # 15 a comma not quoted
        + b"2025550116,,crm-12,Dave,,Europe/Paris\r\n"  # 16 good
    )
    rows = read_csv(csv_bytes(DATA_ROWS) + broken_lines)

    report = await import_contacts(conn, campaign_id, rows, default_region="US")

    assert [(e.row, e.field, e.reason) for e in report.rejected] == [
        *DATA_ERRORS,
        (12, None, "broken quoting: unexpected end of data"),
        (14, None, "not UTF-8 text (byte 0xE9 in param1): save the file as UTF-8"),
        (
            15,
            None,
            "has 7 fields, the header has 6 (a value holding the delimiter must be quoted)",
        ),
    ]
    assert (report.received, report.inserted, report.updated, report.stored) == (15, 6, 0, True)
    stored = await contacts(conn, campaign_id)
    assert [(c["external_id"], c["phone1"], c["param1"]) for c in stored] == [
        ("crm-1", "+12025550101", "Alice"),
        ("crm-2", "+12025550102", "Bob"),
        (None, "+12025550110", "no id"),
        (None, "+12025550111", "no id"),
        ("crm-9", "+12025550113", "Carol"),
        ("crm-12", "+12025550116", "Dave"),
    ]
    assert stored[1]["phone2"] == "+13035550102"
    assert stored[0]["timezone"] == "America/New_York" and stored[1]["timezone"] is None
    assert all(c["state"] == "pending" and c["status"] == "open" and c["due"] for c in stored)


async def test_all_or_nothing_stores_nothing_when_a_row_is_bad(conn: Any) -> None:
    campaign_id = await new_campaign(conn)
    report = await import_contacts(
        conn,
        campaign_id,
        read_csv(csv_bytes(DATA_ROWS)),
        default_region="US",
        all_or_nothing=True,
    )
    assert report.import_id is not None
    assert dataclasses.replace(report, import_id=None) == ImportReport(
        10,
        0,
        0,
        [RowError(*e) for e in DATA_ERRORS],
        stored=False,
        rejected_rows=6,
        problems=6,
        listed=6,
    )
    assert await contacts(conn, campaign_id) == []

    good = [DATA_ROWS[0], DATA_ROWS[1], DATA_ROWS[2]]
    report = await import_contacts(
        conn, campaign_id, read_csv(csv_bytes(good)), default_region="US", all_or_nothing=True
    )
    assert (report.inserted, report.stored) == (2, True)


async def test_xlsx_gives_the_same_result_as_the_same_data_in_csv(conn: Any) -> None:
    from_csv = await new_campaign(conn, "from-csv")
    from_xlsx = await new_campaign(conn, "from-xlsx")
    # Phones typed as numbers in the sheet, as spreadsheets do.
    sheet = [[int(v) if v.isdigit() else v for v in row] for row in DATA_ROWS]

    csv_report = await import_file(conn, from_csv, "c.csv", csv_bytes(DATA_ROWS))
    xlsx_report = await import_file(conn, from_xlsx, "c.xlsx", xlsx_bytes(sheet))

    assert read_xlsx(xlsx_bytes(sheet)) == read_csv(csv_bytes(DATA_ROWS))
    assert xlsx_report.import_id != csv_report.import_id
    assert dataclasses.replace(xlsx_report, import_id=None) == dataclasses.replace(
        csv_report, import_id=None
    )
    assert [(e.row, e.field, e.reason) for e in csv_report.rejected] == DATA_ERRORS
    assert await contacts(conn, from_xlsx) == await contacts(conn, from_csv)


async def test_a_known_external_id_updates_the_contact_data_never_its_state(
    conn: Any,
) -> None:
    campaign_id = await new_campaign(conn)
    first = [
        {"external_id": "closed", "phone1": "2025550101", "param1": "a", "param2": "keep"},
        {"external_id": "in-call", "phone1": "2025550102", "param1": "b", "param2": "keep"},
        {"external_id": "pending", "phone1": "2025550103", "param1": "c", "param2": "keep"},
    ]
    assert (await import_contacts(conn, campaign_id, first, default_region="US")).inserted == 3
    await conn.execute(
        "UPDATE contacts SET state = 'connected', status = 'success', closed_at = now(),"
        " next_attempt_at = NULL WHERE external_id = 'closed'"
    )
    await conn.execute(
        "UPDATE contacts SET state = 'sent_to_dialer', next_attempt_at = NULL"
        " WHERE external_id = 'in-call'"
    )
    before = {
        r["external_id"]: dict(r)
        for r in await conn.fetch("SELECT * FROM contacts WHERE campaign_id = $1", campaign_id)
    }

    again = [
        {"external_id": "closed", "phone1": "+1 303 555 0101", "param1": "A"},
        {"external_id": "in-call", "phone1": "3035550102", "param1": ""},
        {"external_id": "pending", "phone1": "3035550103", "param1": "C"},
        {"external_id": "new", "phone1": "3035550104"},
    ]
    report = await import_contacts(conn, campaign_id, again, default_region="US")

    assert (report.inserted, report.updated, report.rejected) == (1, 3, [])
    after = {
        r["external_id"]: dict(r)
        for r in await conn.fetch("SELECT * FROM contacts WHERE campaign_id = $1", campaign_id)
    }
    assert len(after) == 4
    for key, phone, param1 in [
        ("closed", "+13035550101", "A"),
        ("in-call", "+13035550102", None),  # an empty value clears the field
        ("pending", "+13035550103", "C"),
    ]:
        old, new = before[key], after[key]
        assert (new["id"], new["phone1"], new["param1"]) == (old["id"], phone, param1)
        assert new["param2"] == "keep"  # a column the import does not have is left alone
        for field in ("state", "status", "status_detail", "next_attempt_at", "closed_at"):
            assert new[field] == old[field], (key, field)
    assert after["new"]["next_attempt_at"] is not None


async def test_rows_of_a_batch_are_numbered_by_position(conn: Any) -> None:
    campaign_id = await new_campaign(conn)
    report = await import_contacts(
        conn,
        campaign_id,
        [{"phone1": 12025550101}, {"phone1": "x"}, {"phone1": "2025550103", "phone_2": "1"}],
        default_region="US",
    )
    assert [(e.row, e.field) for e in report.rejected] == [(2, "phone1"), (3, "phone_2")]
    assert report.inserted == 1


async def test_progress_is_reported_per_chunk_up_to_every_row(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_import, "CHUNK_ROWS", 4)
    campaign_id = await new_campaign(conn)
    rows = [{"phone1": f"20255501{i:02d}", "external_id": str(i)} for i in range(10)]
    rows[5]["phone1"] = "bad"
    seen: list[tuple[int, float | None]] = []
    report = await import_contacts(
        conn, campaign_id, rows, default_region="US", progress=lambda *done: seen.append(done)
    )
    assert [done for done, _ in seen] == [4, 8, 10]
    # What was read of the input when each chunk was stored (the next is read ahead).
    assert seen[-1][1] == 1.0
    assert (report.inserted, len(report.rejected)) == (9, 1)


async def test_worker_processes_give_the_result_of_a_thread(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: duplicates and bad rows fall in chunks checked by different workers.
    monkeypatch.setattr(contact_import, "CHUNK_ROWS", 3)
    rows = read_csv(csv_bytes(DATA_ROWS))
    results = []
    for workers in (0, 2):
        campaign_id = await new_campaign(conn, f"workers-{workers}")
        report = await import_contacts(
            conn, campaign_id, rows, default_region="US", workers=workers
        )
        report = dataclasses.replace(report, import_id=None)
        results.append((report, await contacts(conn, campaign_id)))
    assert results[0] == results[1]
    assert [(e.row, e.field, e.reason) for e in results[0][0].rejected] == DATA_ERRORS


async def test_importing_twice_in_one_transaction_works(conn: Any) -> None:
    campaign_id = await new_campaign(conn)
    async with conn.transaction():
        for i in range(2):
            rows = [{"phone1": f"202555010{i}"}]
            assert (await import_contacts(conn, campaign_id, rows, default_region="US")).inserted
    assert len(await contacts(conn, campaign_id)) == 2


async def test_an_unknown_campaign_is_refused(conn: Any) -> None:
    with pytest.raises(CampaignNotFound, match="campaign 999 does not exist"):
        await import_contacts(conn, 999, [{"phone1": "2025550101"}], default_region="US")
    with pytest.raises(CampaignNotFound):
        await import_file(conn, 999, "a.csv", b"phone1\n2025550101\n")


async def test_numbers_are_read_with_the_campaign_region(conn: Any) -> None:
    campaign_id = await new_campaign(conn, region="DE")
    report = await import_file(conn, campaign_id, "a.csv", b"phone1\n030 1234567\n")
    assert report.inserted == 1
    assert (await contacts(conn, campaign_id))[0]["phone1"] == "+49301234567"


# --- the command line -------------------------------------------------------------------


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.pop("DATABASE_URL", None)
    env["DIALER_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "dialer_server", "import", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_import_prints_a_summary_and_the_first_row_errors(
    conn: Any, database_url: str, tmp_path: Path
) -> None:
    campaign_id = await new_campaign(conn)
    path = tmp_path / "contacts.csv"
    path.write_bytes(csv_bytes(DATA_ROWS))

    proc = run_cli(
        database_url, str(path), "--campaign", str(campaign_id), "--errors", "2", "--progress"
    )

    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        f"contacts.csv -> campaign {campaign_id}: 10 rows received, 4 inserted, 0 updated, "
        "6 rejected"
    )
    assert lines[1] == "6 problems (first 2 shown):"
    assert lines[2].split() == ["row", "field", "reason"]
    assert lines[3].split(maxsplit=2) == [
        "4",
        "phone1",
        "'12345' is not a valid phone number (too short)",
    ]
    assert lines[4].split(maxsplit=2) == ["5", "phone1", "longer than 28 characters (29)"]
    assert lines[5].strip().startswith("... and 4 more (import ")
    assert "100% 10 rows" in proc.stderr
    assert len(await contacts(conn, campaign_id)) == 4


async def test_cli_import_all_or_nothing_stores_nothing(
    conn: Any, database_url: str, tmp_path: Path
) -> None:
    campaign_id = await new_campaign(conn)
    path = tmp_path / "contacts.xlsx"
    path.write_bytes(xlsx_bytes(DATA_ROWS))

    proc = run_cli(database_url, str(path), "--campaign", str(campaign_id), "--all-or-nothing")

    assert proc.returncode == 3, proc.stderr
    assert "nothing stored" in proc.stdout
    assert "\r[" not in proc.stderr  # no progress bar when stderr is not a terminal
    assert await contacts(conn, campaign_id) == []


async def test_cli_import_of_good_rows_exits_0_and_json_has_the_report(
    conn: Any, database_url: str, tmp_path: Path
) -> None:
    import json

    campaign_id = await new_campaign(conn)
    path = tmp_path / "contacts.csv"
    path.write_bytes(csv_bytes(DATA_ROWS[:3]))
    proc = run_cli(database_url, str(path), "--campaign", str(campaign_id), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["inserted"], report["rejected"], report["stored"]) == (2, [], True)


@pytest.mark.parametrize(
    ("content", "campaign", "message"),
    [
        (b"phone1,phnoe2\n2025550101,x\n", None, "unknown column 'phnoe2' (did you mean"),
        (b"phone1\n2025550101\n", "999", "campaign 999 does not exist"),
        (None, None, "cannot read"),
    ],
)
async def test_cli_import_refuses_a_bad_file_or_campaign_in_one_line(
    conn: Any,
    database_url: str,
    tmp_path: Path,
    content: bytes | None,
    campaign: str | None,
    message: str,
) -> None:
    campaign_id = await new_campaign(conn)
    path = tmp_path / "contacts.csv"
    if content is not None:
        path.write_bytes(content)
    proc = run_cli(database_url, str(path), "--campaign", campaign or str(campaign_id))
    assert proc.returncode == 1
    error_lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and error_lines[0].startswith("dialer-server: error: ")
    assert message in error_lines[0]
