"""The drop folder against a real PostgreSQL: alone (with a hand-moved clock) and in the daemon."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dialer_server.config import Config, ImportConfig
from dialer_server.contacts.drop_folder import DropFolder
from dialer_server.engine import store

from ..support.campaign_setup import add_strategy, running_daemon

ONE_CALL = {
    "name": "drop-test",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


GOOD_AND_BAD = b"phone1,external_id,param1\n2025550101,a,x\n12345,b,y\n2025550103,c,z\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def campaign_id(pool: Any) -> int:
    async with pool.acquire() as conn:
        strategy_id = await add_strategy(conn, ONE_CALL)
        return await store.create_campaign(conn, "drop", strategy_id=strategy_id)


def folder(pool: Any, path: Path, clock: Clock, **settings: Any) -> DropFolder:
    config = ImportConfig(drop_dir=str(path), settle_s=2.0, **settings)
    drop = DropFolder(pool, config, clock=clock)
    drop.prepare()
    return drop


async def stored(pool: Any, campaign_id: int) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT external_id, phone1 FROM contacts WHERE campaign_id = $1 ORDER BY id", campaign_id
    )
    return [(r["external_id"], r["phone1"]) for r in rows]


def report_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".report.json").read_text())
    return data


async def test_a_dropped_file_is_imported_then_moved_to_done_with_its_report(
    pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    clock = Clock()
    drop = folder(pool, tmp_path, clock)
    (tmp_path / f"{campaign_id}-leads.csv").write_bytes(GOOD_AND_BAD)

    assert await drop.scan() == []  # just seen: it may still be growing
    clock.now += 2.0
    moved = await drop.scan()

    assert moved == [tmp_path / "done" / f"{campaign_id}-leads.csv"]
    assert not (tmp_path / f"{campaign_id}-leads.csv").exists()
    report = report_of(moved[0])
    assert report["outcome"] == "done"
    assert (report["campaign_id"], report["received"], report["inserted"]) == (campaign_id, 3, 2)
    assert report["rejected"] == [
        {"row": 3, "field": "phone1", "reason": "'12345' is not a valid phone number (too short)"}
    ]
    assert await stored(pool, campaign_id) == [("a", "+12025550101"), ("c", "+12025550103")]
    assert os.listdir(tmp_path / "processing") == []


async def test_a_file_still_being_written_is_left_alone(
    pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    clock = Clock()
    drop = folder(pool, tmp_path, clock)
    path = tmp_path / f"{campaign_id}-big.csv"
    path.write_bytes(b"phone1,external_id\n2025550101,a\n")
    await drop.scan()
    for i in range(3):
        clock.now += 1.5
        with path.open("ab") as f:
            f.write(f"202555020{i},b{i}\n".encode())
        assert await drop.scan() == []
    clock.now += 1.75
    assert await drop.scan() == []
    clock.now += 0.25
    assert [p.name for p in await drop.scan()] == [path.name]
    assert len(await stored(pool, campaign_id)) == 4


async def test_files_that_cannot_be_imported_go_to_failed_with_the_reason(
    pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    clock = Clock()
    drop = folder(pool, tmp_path, clock)
    files = {
        f"{campaign_id}-typo.csv": b"phone1,parm1\n2025550101,x\n",
        "leads.csv": GOOD_AND_BAD,
        "999-leads.csv": GOOD_AND_BAD,
        f"{campaign_id}-sheet.xlsx": b"not a workbook",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    ignored = [".hidden.csv", f"{campaign_id}-upload.csv.part", "notes.txt"]
    for name in ignored:
        (tmp_path / name).write_bytes(GOOD_AND_BAD)

    await drop.scan()
    clock.now += 2.0
    moved = await drop.scan()

    assert sorted(p.name for p in moved) == sorted(files)
    errors = {p.name: report_of(p)["error"] for p in moved}
    assert all(p.parent.name == "failed" for p in moved)
    assert "unknown column 'parm1' (did you mean param1?)" in errors[f"{campaign_id}-typo.csv"]
    assert "must start with the campaign id" in errors["leads.csv"]
    assert errors["999-leads.csv"] == "campaign 999 does not exist"
    assert "not a readable XLSX workbook" in errors[f"{campaign_id}-sheet.xlsx"]
    assert sorted(os.listdir(tmp_path)) == sorted([*ignored, "done", "failed", "processing"])
    assert await stored(pool, campaign_id) == []


async def test_a_campaign_id_no_campaign_can_have_is_a_clear_rejection_not_an_internal_error(
    pool: Any, campaign_id: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    drop = folder(pool, tmp_path, clock)
    beyond_int64 = str(2**63)
    files = [f"{beyond_int64}-leads.csv", f"{'9' * 40}-leads.csv", "0-leads.csv"]
    for name in files:
        (tmp_path / name).write_bytes(GOOD_AND_BAD)
    # Digits of another script are not a campaign id (int() would read "٣" as 3).
    arabic_three = f"\u0663{campaign_id}-leads.csv"
    (tmp_path / arabic_three).write_bytes(GOOD_AND_BAD)

    await drop.scan()
    clock.now += 2.0
    with caplog.at_level("WARNING"):
        moved = await drop.scan()

    assert sorted(p.name for p in moved) == sorted([*files, arabic_three])
    assert all(p.parent.name == "failed" for p in moved)
    errors = {p.name: report_of(p)["error"] for p in moved}
    assert errors[f"{beyond_int64}-leads.csv"] == f"campaign {beyond_int64} does not exist"
    assert errors["0-leads.csv"] == "campaign 0 does not exist"
    assert "must start with the campaign id" in errors[arabic_three]
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert not any("internal error" in e for e in errors.values()), errors
    assert await stored(pool, campaign_id) == []


async def test_all_or_nothing_sends_a_file_with_a_bad_row_to_failed(
    pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    clock = Clock()
    drop = folder(pool, tmp_path, clock, all_or_nothing=True)
    (tmp_path / f"{campaign_id}-x.csv").write_bytes(GOOD_AND_BAD)
    await drop.scan()
    clock.now += 2.0
    [moved] = await drop.scan()
    assert moved.parent.name == "failed"
    report = report_of(moved)
    assert (report["stored"], report["inserted"], len(report["rejected"])) == (False, 0, 1)
    assert await stored(pool, campaign_id) == []


async def test_the_same_name_dropped_twice_is_kept_twice_in_done(
    pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    clock = Clock()
    drop = folder(pool, tmp_path, clock)
    names = []
    for data in (b"phone1,external_id\n2025550101,a\n", b"phone1,external_id\n2025550102,a\n"):
        (tmp_path / f"{campaign_id}-daily.csv").write_bytes(data)
        await drop.scan()
        clock.now += 2.0
        names += [p.name for p in await drop.scan()]
    assert names == [f"{campaign_id}-daily.csv", f"{campaign_id}-daily.2.csv"]
    assert report_of(tmp_path / "done" / names[1])["updated"] == 1
    assert await stored(pool, campaign_id) == [("a", "+12025550102")]


class DownPool:
    """A pool whose database is unreachable."""

    def acquire(self, timeout: float | None = None) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed")


async def test_a_file_waits_in_the_folder_while_the_database_is_down(
    pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    clock = Clock()
    down = folder(DownPool(), tmp_path, clock)
    path = tmp_path / f"{campaign_id}-wait.csv"
    path.write_bytes(GOOD_AND_BAD)
    await down.scan()
    clock.now += 2.0
    assert await down.scan() == []
    assert path.exists()  # back in place, to be tried again

    up = folder(pool, tmp_path, clock)
    await up.scan()
    clock.now += 2.0
    assert [p.parent.name for p in await up.scan()] == ["done"]


async def test_the_daemon_imports_what_is_renamed_into_its_drop_folder(
    config: Config, pool: Any, campaign_id: int, tmp_path: Path
) -> None:
    drop_dir = tmp_path / "drop"
    drop_dir.mkdir()
    config = dataclasses.replace(
        config, import_=ImportConfig(drop_dir=str(drop_dir), poll_interval_s=0.1, settle_s=0.2)
    )
    async with running_daemon(config):
        # Written under a name the folder ignores, then renamed into place.
        partial = drop_dir / f".{campaign_id}-crm.csv"
        partial.write_bytes(GOOD_AND_BAD)
        partial.rename(drop_dir / f"{campaign_id}-crm.csv")
        done = drop_dir / "done" / f"{campaign_id}-crm.csv.report.json"
        async with asyncio.timeout(20):
            while not done.exists():
                await asyncio.sleep(0.05)
    assert json.loads(done.read_text())["inserted"] == 2
    assert len(await stored(pool, campaign_id)) == 2
