"""Helpers for campaign tests: strategies, campaigns and contacts in a test database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from dialer_server.config import Config
from dialer_server.daemon import Daemon
from dialer_server.engine import store
from dialer_server.engine.strategy import parse_strategy, strategy_to_dict

ALWAYS = {
    "hours": {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
}


async def add_strategy(conn: Any, definition: Mapping[str, Any]) -> int:
    strategy = parse_strategy(definition)
    strategy_id, _ = await store.save_strategy_version(
        conn, strategy.name, strategy.version, strategy_to_dict(strategy)
    )
    return strategy_id


async def add_campaign(
    conn: Any,
    name: str,
    strategy: Mapping[str, Any],
    contacts: Sequence[Sequence[str | None]],
    *,
    start: bool = True,
    **settings: Any,
) -> tuple[int, list[int]]:
    """A running campaign with one contact per phone list; (campaign id, contact ids)."""
    strategy_id = await add_strategy(conn, strategy)
    # Tests run at any hour: unless a test is about windows, calls are always allowed.
    settings.setdefault("calling_window", ALWAYS)
    campaign_id = await store.create_campaign(conn, name, strategy_id=strategy_id, **settings)
    contact_ids = [
        await store.insert_contact(
            conn, campaign_id, phones=phones, external_id=f"{name}-{i}", params=[f"p{i}"]
        )
        for i, phones in enumerate(contacts)
    ]
    if start:
        await store.set_campaign_state(conn, campaign_id, "running")
    return campaign_id, contact_ids


async def wait_campaign_state(
    url: str,
    campaign_id: int,
    state: str,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Poll until the campaign reaches ``state`` (the daemon may be another process).

    ``alive`` tells whether the daemon doing the work still runs: no point
    waiting out the timeout for a dead one.
    """
    async with asyncio.timeout(timeout):
        while True:
            assert alive(), "the daemon stopped before the campaign got there"
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn = await asyncpg.connect(url)
                try:
                    current = await conn.fetchval(
                        "SELECT state FROM campaigns WHERE id = $1", campaign_id
                    )
                finally:
                    await conn.close()
                if current == state:
                    return
            await asyncio.sleep(0.25)


async def contact_report(conn: Any, contact_id: int) -> dict[str, Any]:
    contact = await store.get_contact(conn, contact_id)
    assert contact is not None
    attempts = await store.contact_attempts(conn, contact_id)
    return {
        "state": contact["state"],
        "status": contact["status"],
        "status_detail": contact["status_detail"],
        "attempts": [(a["channel"], a["phone_slot"], a["outcome"]) for a in attempts],
    }


@contextlib.asynccontextmanager
async def running_daemon(config: Config, roster: Any = None) -> AsyncIterator[Daemon]:
    """A daemon in this process, stopped (and checked to have not failed) on exit.

    ``roster``: an agent roster to use instead of the one following AMI.
    """
    daemon = Daemon(config)
    if roster is not None:
        daemon.roster = roster
    task = asyncio.create_task(daemon.run(), name="daemon-under-test")
    daemon.alive = lambda: not task.done()  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(20):
            while daemon.scheduler is None or not daemon.pbxs.any_up:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)


def engine_config(config: Config, **dialing: Any) -> Config:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    values = {"strategies_dir": str(root / "strategies"), "tick_s": 0.05, **dialing}
    return dataclasses.replace(config, dialing=dataclasses.replace(config.dialing, **values))


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
