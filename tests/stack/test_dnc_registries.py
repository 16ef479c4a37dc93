"""National do-not-call registries against a real PostgreSQL: loads over the API and the
CLI (replace, merge, gzip, CSV), expiry, a swap no call ever sees half of, the check an
index probe per registry, and a listed number never dialled through real Asterisk."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dialer_server.campaigns import dnc_registries
from dialer_server.config import Config
from dialer_server.engine import store

from ..support.api_client import api_config, api_server, user_token
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.sql import sql

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[2]

ONE_CALL = {
    "name": "registry-one-call",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


def registry_file(numbers: list[str], *, header: str | None = "number") -> bytes:
    lines = [header] if header else []
    lines += ["# the registry of 2025-06", *numbers]
    return ("\n".join(lines) + "\n").encode()


async def listed(conn: Any, number: str, campaign_id: int = 0) -> bool:
    return bool(await conn.fetch(sql("do_not_call_numbers"), [number], campaign_id))


async def source(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    for at in range(0, len(data), piece):
        yield data[at : at + piece]


async def test_a_load_over_the_api_reads_national_numbers_csv_and_gzip(
    config: Config, pool: Any
) -> None:
    admin = await user_token(config.database.url, "ada", "admin")
    numbers = [f"202555{i:04d}" for i in range(5000)]
    body = registry_file(
        [
            *numbers[:2500],
            *(f'"({n[:3]}) {n[3:6]}-{n[6:]}",2025-01-01' for n in numbers[2500:]),
            "not-a-number",
            "555",
            "+447911123456",
        ]
    )
    async with api_server(api_config(config)) as crm:
        api = crm.with_token(admin)
        reply = await api.request(
            "POST",
            "/api/v1/dnc-registries/us-national/load",
            data=gzip.compress(body),
            headers={"Content-Type": "application/gzip"},
            params={"region": "US", "file_name": "us-2025-06.txt.gz"},
        )
        assert reply.status == 200, reply.body
        result = reply.body
        assert (result["read"], result["loaded"], result["rejected"]) == (5003, 5001, 2)
        # The header is line 1, the comment line 2.
        assert [p["line"] for p in result["problems"]] == [5003, 5004]
        assert result["registry"]["entries"] == 5001
        assert result["registry"]["last_file"] == "us-2025-06.txt.gz"
        check = await api.ok("GET", "/api/v1/dnc/%2B12025554999")
        assert check["listed"] and check["registries"][0]["registry"] == "us-national"
        assert (await api.ok("GET", "/api/v1/dnc/%2B447911123456"))["listed"]
        assert not (await api.ok("GET", "/api/v1/dnc/%2B12025559999"))["listed"]
        assert (await api.ok("GET", "/api/v1/dnc-registries"))["items"][0]["entries"] == 5001
        # Only admins load registries; everyone who reads sees them.
        denied = await crm.request(
            "POST", "/api/v1/dnc-registries/us-national/load", data=body, params={"region": "US"}
        )
        assert denied.status == 403
        assert (await crm.get("/api/v1/dnc-registries/us-national")).status == 200
        for params, status in (
            ({}, 422),  # a new registry needs its region
            ({"region": "XX"}, 422),
            ({"region": "US", "mode": "append"}, 422),
            ({"region": "US", "expires_at": "tomorrow"}, 422),
        ):
            bad = await api.request(
                "POST", "/api/v1/dnc-registries/fresh/load", data=body, params=params
            )
            assert bad.status == status, (params, bad.body)
        json_body = await api.request(
            "POST",
            "/api/v1/dnc-registries/fresh/load",
            data=b"{}",
            headers={"Content-Type": "application/json"},
            params={"region": "US"},
        )
        assert json_body.status == 415
        cut = await api.request(
            "POST",
            "/api/v1/dnc-registries/fresh/load",
            data=gzip.compress(body)[:-20],
            params={"region": "US"},
        )
        assert cut.status == 422 and "gzip" in cut.body["error"]["message"]
        assert (await api.get("/api/v1/dnc-registries/fresh")).status == 404
        async with pool.acquire() as conn:
            audit = await conn.fetch("SELECT action, target_id, after FROM audit_log")
        assert [(a["action"], a["target_id"]) for a in audit] == [
            ("loadDncRegistry", "us-national")
        ]
        assert json.loads(audit[0]["after"])["loaded"] == 5001
        assert (await api.delete("/api/v1/dnc-registries/us-national")).status == 204
        assert not (await api.ok("GET", "/api/v1/dnc/%2B12025554999"))["listed"]


async def test_replace_swaps_whole_merge_adds_and_expired_entries_stop_nothing(pool: Any) -> None:
    async with pool.acquire() as conn:

        async def load(numbers: list[str], mode: str, expires_at: datetime | None = None) -> Any:
            async with conn.transaction():
                return await dnc_registries.load(
                    conn,
                    "tps",
                    source(registry_file(numbers)),
                    region="GB",
                    mode=mode,
                    expires_at=expires_at,
                )

        first = await load(["07911 123456", "020 7946 0001"], "replace")
        assert first.loaded == 2 and await listed(conn, "+447911123456")
        second = await load(["020 7946 0002"], "replace")
        assert second.registry["entries"] == 1
        assert not await listed(conn, "+447911123456")  # the old load is gone whole
        assert await listed(conn, "+442079460002")
        past = datetime.now(UTC) - timedelta(days=1)
        merged = await load(["07911 123456", "020 7946 0002"], "merge", past)
        # One new number, one listed already: both now with an expiry in the past.
        assert merged.loaded == 2 and merged.registry["entries"] == 2
        assert not await listed(conn, "+447911123456")
        assert not await listed(conn, "+442079460002")
        again = await load(["07911 123456"], "merge")
        # Expired entries went; the number listed again counts again, without expiry.
        assert again.registry["entries"] == 1 and await listed(conn, "+447911123456")
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'dnc_registry_numbers'::regclass"
        )
        assert partitions == 1


async def test_until_a_replace_commits_every_check_sees_the_previous_registry(
    database_url: str, pool: Any
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await dnc_registries.load(
            conn,
            "swap",
            source(registry_file(["2025550100"])),
            region="US",
            mode="replace",
            expires_at=None,
        )
    halfway = asyncio.Event()
    resume = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        # Enough numbers for the planner to probe the index rather than read the table.
        data = registry_file(["2025550150", *(f"3{i:09d}" for i in range(50_000))])
        yield data[: len(data) // 2]
        halfway.set()
        await resume.wait()
        yield data[len(data) // 2 :]

    async def replace() -> None:
        async with pool.acquire() as loader, loader.transaction():
            await dnc_registries.load(
                loader, "swap", slow(), region="US", mode="replace", expires_at=None
            )

    task = asyncio.create_task(replace())
    await asyncio.wait_for(halfway.wait(), 10)
    async with pool.acquire() as conn:
        assert await listed(conn, "+12025550100")
        assert not await listed(conn, "+12025550150")
        resume.set()
        await asyncio.wait_for(task, 20)
        assert not await listed(conn, "+12025550100")
        assert await listed(conn, "+12025550150")
        # The check probes an index in each registry's partition: no scan, however big.
        await dnc_registries_plan_check(conn)


async def dnc_registries_plan_check(conn: Any) -> None:
    plan = await conn.fetchval(
        "EXPLAIN (FORMAT JSON) "
        + sql("do_not_call_numbers").replace("$1", "ARRAY['+12025550150']").replace("$2", "1")
    )
    text = json.dumps(plan)
    assert "Seq Scan" not in text, text
    assert "dnc_registry_numbers" in text or "dnc_registry_" in text


@pytest.mark.stack
async def test_a_registered_number_is_never_dialled(stack: Any, config: Config, pool: Any) -> None:
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(
            conn, "registered", ONE_CALL, [["+12025550201"], ["+12025551201"]], start=False
        )
        async with conn.transaction():
            await dnc_registries.load(
                conn,
                "us",
                source(registry_file(["(202) 555-0201"])),
                region="US",
                mode="replace",
                expires_at=None,
            )
        await store.set_campaign_state(conn, campaign_id, "running")
    async with running_daemon(engine_config(config)):
        await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=60)
    async with pool.acquire() as conn:
        states = [
            (r["state"], r["attempts"])
            for r in await conn.fetch(
                "SELECT c.state, (SELECT count(*) FROM attempts a WHERE a.contact_id = c.id) "
                "AS attempts FROM contacts c WHERE c.campaign_id = $1 ORDER BY c.id",
                campaign_id,
            )
        ]
    assert states == [("dnc_listed", 0), ("connected", 1)]


def test_the_cli_loads_a_gzip_file_and_writes_its_audit_row(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "registry.csv.gz"
    path.write_bytes(gzip.compress(registry_file([f"20255{i:05d}" for i in range(20_000)])))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["DIALER_DATABASE_URL"] = database_url
    cli = [sys.executable, "-m", "dialer_server", "dnc"]
    done = subprocess.run(
        [*cli, "load", "us", str(path), "--region", "US", "--progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "20000 loaded" in done.stdout and "numbers/s" in done.stdout
    assert "numbers" in done.stderr or "rows" in done.stderr  # the progress bar
    listing = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert "us" in listing.stdout and "20000" in listing.stdout
    deleted = subprocess.run(
        [*cli, "delete", "us"], env=env, capture_output=True, text=True, timeout=60
    )
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    audit = subprocess.run(
        [
            "psql",
            database_url,
            "-tAc",
            "SELECT via || ' ' || action || ' ' || target_id FROM audit_log ORDER BY id",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.stdout.split("\n")[:2] == ["cli loadDncRegistry us", "cli deleteDncRegistry us"]
