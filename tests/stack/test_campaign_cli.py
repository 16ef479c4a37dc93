"""``dialer-server campaign ...``: campaigns from a shell, straight on the database."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from dialer_server.engine import store

from ..support.campaign_setup import add_campaign
from ..support.daemon_process import daemon_env

pytestmark = pytest.mark.stack

STRATEGY = {"name": "cli", "version": 1, "attempts": [{"phone": 1}]}


def cli(stack: Any, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialer_server", "campaign", *args],
        env=daemon_env(stack, database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_campaign_list_and_show_print_readable_tables(stack: Any, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, contact_ids = await add_campaign(
            conn,
            "spring sale",
            STRATEGY,
            [["+12025550101"], ["+12025550102"], ["+12025550103"]],
            start=False,
            max_concurrent_calls=4,
            max_calls_per_second=2.5,
            ivr_playback="custom/offer",
        )
        await conn.execute(
            "UPDATE contacts SET state = 'connected', status = 'success', closed_at = now() "
            "WHERE id = $1",
            contact_ids[0],
        )
        await store.create_campaign(conn, "empty", strategy_id=None)  # type: ignore[arg-type]
    finally:
        await conn.close()

    listed = cli(stack, database_url, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "state",
        "strategy",
        "lines",
        "calls/s",
        "contacts",
        "open",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == [
        str(campaign_id),
        "spring",
        "sale",
        "stopped",
        "cli",
        "v1",
        "4",
        "2.5",
        "3",
        "2",
    ]
    assert lines[3].split()[1:4] == ["empty", "stopped", "-"]

    shown = cli(stack, database_url, "show", str(campaign_id))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.splitlines()[0] == f"campaign {campaign_id}: spring sale"
    assert "strategy        cli v1" in text
    assert "carrier (daemon default)" in text
    assert "mode            automated" in text
    assert "ivr playback    custom/offer" in text
    rows = {tuple(line.split()) for line in text.splitlines()}
    assert ("pending", "2") in rows and ("connected", "1") in rows
    assert ("open", "$none", "2") in rows and ("success", "$none", "1") in rows
    assert ("amd", "off") in rows and ("amd", "message", "-") in rows
    assert ("attempt.result", "off") in rows


async def test_campaign_start_pause_resume_stop_from_the_shell(
    stack: Any, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await add_campaign(
            conn, "spring", STRATEGY, [["+12025550101"]], start=False
        )
        ident = str(campaign_id)
        steps = [
            ("start", 0, f"campaign {ident} (spring): stopped -> running"),
            ("start", 0, f"campaign {ident} (spring) is running: nothing to do"),
            ("pause", 0, f"campaign {ident} (spring): running -> paused"),
            ("resume", 0, f"campaign {ident} (spring): paused -> running"),
            ("stop", 0, f"campaign {ident} (spring): running -> stopped"),
        ]
        for action, code, message in steps:
            done = cli(stack, database_url, action, ident)
            assert (done.returncode, done.stdout.strip()) == (code, message), done.stderr
        assert (await store.get_campaign(conn, campaign_id) or {})["state"] == "stopped"
    finally:
        await conn.close()
    refused = cli(stack, database_url, "pause", ident)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == (
        "dialer-server: error: campaign is stopped: only a running campaign can be paused"
    )
    missing = cli(stack, database_url, "show", "999")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "dialer-server: error: campaign 999 not found"
