"""The daemon's memory with a big campaign running: 1,000,000 contacts, 300 calls up.

A daemon subprocess on the bench stack (run as operators run it) dials one
campaign of CONTACTS contacts whose numbers answer and hold 30 s (the far end's
...230), at most CONCURRENCY calls at a time. Once that many calls are up, the
daemon's resident set is read from /proc every second for SECONDS seconds;
printed: the highest reading, the process's own peak (VmHWM, start-up
included), the calls up meanwhile, and a JSON line.

    python bench/daemon_memory.py   (needs a running stack: scripts/bench-memory does it all)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processes import fresh_database, rss_mb, start_daemon, stop_daemon  # noqa: E402

from dialer_server.config import load_config  # noqa: E402
from dialer_server.engine import store  # noqa: E402
from dialer_server.engine.strategy import parse_strategy, strategy_to_dict  # noqa: E402

STRATEGY = {
    "name": "bench-memory",
    "version": 1,
    "attempts": [{"phone": 1, "max_tries": 1, "ring_timeout_s": 20}],
}
EVERY_DAY = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    print(
        f"{args.contacts:,} contacts, {args.concurrency} calls up (30 s each), RSS read every "
        f"second for {args.seconds} s; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    async with fresh_database(load_config().database.url) as url:
        daemon = await start_daemon(
            ROOT,
            {"DIALER_DATABASE_URL": url, "DIALER_DIALING_STRATEGIES_DIR": str(ROOT / "strategies")},
        )
        try:
            conn = await asyncpg.connect(url)
            strategy = parse_strategy(STRATEGY)
            strategy_id, _ = await store.save_strategy_version(
                conn, strategy.name, strategy.version, strategy_to_dict(strategy)
            )
            campaign_id = await store.create_campaign(
                conn,
                "memory",
                strategy_id=strategy_id,
                max_concurrent_calls=args.concurrency,
                max_calls_per_second=100,
                calling_window={"hours": EVERY_DAY},
            )
            started = time.monotonic()
            await conn.copy_records_to_table(
                "contacts",
                columns=["campaign_id", "external_id", "phone1", "next_attempt_at"],
                records=(
                    (campaign_id, str(n), f"+1303{n % 10_000:04d}230", None)
                    for n in range(args.contacts)
                ),
            )
            await conn.execute("UPDATE contacts SET next_attempt_at = now()")
            await conn.execute("ANALYZE contacts")
            print(f"  contacts loaded in {time.monotonic() - started:.0f} s", flush=True)
            before, _ = rss_mb(daemon.pid)
            await store.set_campaign_state(conn, campaign_id, "running")
            deadline = time.monotonic() + 120
            up = 0
            while up < args.concurrency and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                up = await _calls_up(conn, campaign_id)
            print(f"  {up} calls up after {time.monotonic() - started:.0f} s", flush=True)
            readings, calls_up = [], []
            for _ in range(args.seconds):
                await asyncio.sleep(1.0)
                readings.append(rss_mb(daemon.pid)[0])
                calls_up.append(await _calls_up(conn, campaign_id))
            _, peak = rss_mb(daemon.pid)
            await conn.close()
        finally:
            await stop_daemon(daemon)
    highest = max(readings)
    print(f"  RSS before the campaign started : {before:6.1f} MB")
    print(f"  RSS with the calls up (highest) : {highest:6.1f} MB   (target <= 200)")
    print(f"  the process's peak (VmHWM)      : {peak:6.1f} MB")
    print(f"  calls up while measured         : {min(calls_up)}-{max(calls_up)}")
    print(
        "JSON "
        + json.dumps(
            {
                "contacts": args.contacts,
                "concurrency": args.concurrency,
                "rss_before_mb": round(before, 1),
                "rss_highest_mb": round(highest, 1),
                "vmhwm_mb": round(peak, 1),
                "calls_up_min": min(calls_up),
                "calls_up_max": max(calls_up),
            },
            sort_keys=True,
        ),
        flush=True,
    )


async def _calls_up(conn: asyncpg.Connection, campaign_id: int) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'", campaign_id
    )
    return count


if __name__ == "__main__":
    asyncio.run(main())
