"""Full call cycles per second: the campaign engine vs a bare panoramisk loop.

Both sides place the same calls through the same real Asterisk to the same
sipp far end (answer, hold 1 s, hang up), CONCURRENCY at a time, and count
completed cycles (Originate -> answer -> Hangup) per second of wall time.
The bare loop has no database, no strategy and no bookkeeping: it is what
Asterisk and sipp can do on this machine, so the ratio is the engine's cost.

    python bench/engine_cycles.py   (needs a running stack: scripts/bench does it all)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import panoramisk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer_server.config import load_config  # noqa: E402
from dialer_server.daemon import Daemon  # noqa: E402
from dialer_server.engine import store  # noqa: E402
from dialer_server.engine.strategy import parse_strategy, strategy_to_dict  # noqa: E402

ONE_CALL = {
    "name": "bench-one-call",
    "version": 1,
    "description": "one call per contact",
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


def numbers(count: int) -> list[str]:
    # ...201: the far end answers, holds 1 s and hangs up.
    return [f"1303{i:04d}201" for i in range(count)]


async def bare_loop(
    host: str, port: int, user: str, secret: str, trunk: str, calls: list[str], concurrency: int
) -> float:
    """Originate every call with panoramisk alone; cycles per second."""
    manager = panoramisk.Manager(
        loop=asyncio.get_running_loop(),
        host=host,
        port=port,
        username=user,
        secret=secret,
        ping_delay=0,
        reconnect_timeout=1,
    )
    hangups: dict[str, asyncio.Event] = {}

    def on_hangup(_manager: object, event: dict[str, str]) -> None:
        done = hangups.get(event.get("Uniqueid", ""))
        if done is not None:
            done.set()

    manager.register_event("Hangup", on_hangup)
    await manager.connect()
    for _ in range(100):
        if manager.authenticated:
            break
        await asyncio.sleep(0.05)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(number: str) -> None:
        async with semaphore:
            channel_id = str(uuid.uuid4())
            done = hangups[channel_id] = asyncio.Event()
            await manager.send_action(
                {
                    "Action": "Originate",
                    "Channel": f"PJSIP/{number}@{trunk}",
                    "Context": "dialer-answered",
                    "Exten": "s",
                    "Priority": "1",
                    "Timeout": "15000",
                    "ChannelId": channel_id,
                    "Async": "true",
                }
            )
            await asyncio.wait_for(done.wait(), 60)
            del hangups[channel_id]

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in calls))
    elapsed = time.monotonic() - started
    manager.close()
    return len(calls) / elapsed


async def engine(calls: list[str], concurrency: int) -> float:
    """The same calls as a campaign run by the daemon; cycles per second."""
    base = load_config()
    url = base.database.url
    name = f"dialer_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = url.rsplit("/", 1)[0] + "/" + name
    config = dataclasses.replace(
        base,
        database=dataclasses.replace(base.database, url=db_url),
        http=dataclasses.replace(base.http, port=0),
        dialing=dataclasses.replace(
            base.dialing, strategies_dir=str(ROOT / "strategies"), tick_s=0.05
        ),
    )
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    try:
        while daemon.scheduler is None or not daemon.ami.connected:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(db_url)
        strategy = parse_strategy(ONE_CALL)
        strategy_id, _ = await store.save_strategy_version(
            conn, strategy.name, strategy.version, strategy_to_dict(strategy)
        )
        campaign_id = await store.create_campaign(
            conn,
            "bench",
            strategy_id=strategy_id,
            max_concurrent_calls=concurrency,
            max_calls_per_second=1000,
            calling_window={
                "hours": {
                    d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                }
            },
        )
        await conn.copy_records_to_table(
            "contacts",
            columns=["campaign_id", "external_id", "phone1", "next_attempt_at"],
            records=[(campaign_id, str(i), n, None) for i, n in enumerate(calls)],
        )
        await conn.execute("UPDATE contacts SET next_attempt_at = now()")
        started = time.monotonic()
        await store.set_campaign_state(conn, campaign_id, "running")
        while (
            await conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
            != "completed"
        ):
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        answered = await conn.fetchval("SELECT count(*) FROM attempts WHERE outcome = 'answered'")
        await conn.close()
        if answered != len(calls):
            raise SystemExit(f"engine: only {answered} of {len(calls)} calls answered")
        return len(calls) / elapsed
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)
        admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=300)
    args = parser.parse_args()
    config = load_config()
    calls = numbers(args.calls)
    print(
        f"{args.calls} calls, {args.concurrency} at a time, far end holds 1 s "
        f"(Asterisk {config.ami.host}:{config.ami.port}, {os.cpu_count()} CPUs)",
        flush=True,
    )
    bare = await bare_loop(
        config.ami.host,
        config.ami.port,
        config.ami.username,
        config.ami.secret,
        config.dialing.trunk,
        calls,
        args.concurrency,
    )
    print(f"  bare panoramisk loop : {bare:7.2f} call cycles/s", flush=True)
    eng = await engine(calls, args.concurrency)
    print(f"  campaign engine      : {eng:7.2f} call cycles/s", flush=True)
    print(f"  ratio engine/bare    : {eng / bare:7.2f}")


if __name__ == "__main__":
    import logging

    # The daemon's startup warnings (no API tokens...) are not benchmark output.
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
