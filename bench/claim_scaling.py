"""What a claim costs as the contacts table grows: 10,000 against 1,000,000 contacts.

Each size gets a fresh database: 100 running campaigns, 10 % of the contacts
due now, the rest due at random times over the next five days; a fifth of the
campaigns have a calling window closed at this hour, so the claim plans their
due contacts for the window's next opening instead of dialling them. The claim
is the engine's own (engine/claims.py: lock the campaign, count its open calls,
lease due contacts with SKIP LOCKED, decide each one, write attempt rows), run
CLAIMS times on campaigns taken in turn, each inside a transaction that is
rolled back: every claim sees the same table. Printed per size: wall time and
PostgreSQL CPU time per claim (its process tree, from /proc), then the ratios
of the large size to the small one, and a JSON line.

    python bench/claim_scaling.py   (needs a running stack: scripts/bench-claims does it all)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processes import CpuMeter, Stack  # noqa: E402  (bench/processes.py)

from dialer_server.config import Config, DialingConfig, load_config  # noqa: E402
from dialer_server.db.migrations import migrate  # noqa: E402
from dialer_server.engine import claims, store  # noqa: E402
from dialer_server.engine.results import StrategyLookup  # noqa: E402
from dialer_server.engine.slots import Slots  # noqa: E402
from dialer_server.engine.strategy import parse_strategy, strategy_to_dict  # noqa: E402
from dialer_server.observability.metrics import Metrics  # noqa: E402

CAMPAIGNS = 100
POOL = Config().pool
DUE_SHARE = 0.10
CLOSED_SHARE = 0.20
STRATEGY = {
    "name": "bench-claims",
    "version": 1,
    "attempts": [{"phone": 1, "max_tries": 3, "ring_timeout_s": 20}],
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _window(open_now: bool) -> dict[str, Any]:
    if open_now:
        return {"hours": {day: ["00:00-24:00"] for day in DAYS}, "timezone": "UTC"}
    # Two hours a day that do not include this one (UTC).
    opening = (datetime.now(UTC).hour + 3) % 24
    opening = 1 if opening > 21 else opening
    span = f"{opening:02d}:00-{opening + 2:02d}:00"
    return {"hours": {day: [span] for day in DAYS}, "timezone": "UTC"}


async def _database(admin_url: str, contacts: int) -> str:
    name = f"dialer_claims_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"{admin_url}/{name}"
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        strategy = parse_strategy(STRATEGY)
        strategy_id, _ = await store.save_strategy_version(
            conn, strategy.name, strategy.version, strategy_to_dict(strategy)
        )
        ids = []
        for i in range(CAMPAIGNS):
            ids.append(
                await store.create_campaign(
                    conn,
                    f"claims-{i}",
                    strategy_id=strategy_id,
                    max_concurrent_calls=1000,
                    calling_window=_window(open_now=i >= CAMPAIGNS * CLOSED_SHARE),
                )
            )
        now = datetime.now(UTC)
        rng = random.Random(7)

        def rows() -> Any:
            for n in range(contacts):
                due = (
                    now - timedelta(seconds=rng.uniform(0, 3600))
                    if rng.random() < DUE_SHARE
                    else now + timedelta(seconds=rng.uniform(600, 5 * 86400))
                )
                yield (ids[n % CAMPAIGNS], str(n), f"+1202555{n % 10000:04d}", due)

        await conn.copy_records_to_table(
            "contacts",
            columns=["campaign_id", "external_id", "phone1", "next_attempt_at"],
            records=rows(),
        )
        await conn.execute("UPDATE campaigns SET state = 'running'")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return url


async def _measure(url: str, stack: Stack, count: int, limit: int) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        instance_id = int(
            await conn.fetchval(
                "INSERT INTO dialer_instances (hostname, pid) VALUES ('bench', 1) RETURNING id"
            )
        )
        slots = Slots(DialingConfig(), Metrics()).update(await store.running_campaigns(conn))
        strategies = StrategyLookup()
        claimed = 0

        async def one(i: int) -> int:
            slot = slots[i % len(slots)]
            tx = conn.transaction()
            await tx.start()
            try:
                claim = await claims.claim(
                    conn,
                    slot,
                    limit,
                    now=datetime.now(UTC),
                    free_agents=list,
                    strategies=strategies,
                    instance_id=instance_id,
                    # The pool of one of a single-PBX config: no PBX limit to lock.
                    pbxs=POOL,
                )
            finally:
                await tx.rollback()
            return len(claim.jobs) + len(claim.closed)

        for i in range(min(count, 50)):  # warm the caches and the strategy lookup
            await one(i)
        meter = CpuMeter({"postgresql": stack.postgres, "bench": os.getpid()})
        meter.start()
        started = time.monotonic()
        for i in range(count):
            claimed += await one(i)
        wall = time.monotonic() - started
        cpu = meter.stop()
    finally:
        await conn.close()
    return {
        "wall_ms_per_claim": 1000 * wall / count,
        "postgresql_cpu_ms_per_claim": 1000 * cpu["postgresql"] / count,
        "python_cpu_ms_per_claim": 1000 * cpu["bench"] / count,
        "contacts_per_claim": claimed / count,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--limit", type=int, default=10, help="contacts asked for per claim")
    args = parser.parse_args()
    config = load_config()
    stack = Stack.running()
    admin_url = config.database.url.rsplit("/", 1)[0]
    print(
        f"{CAMPAIGNS} running campaigns, {DUE_SHARE:.0%} of the contacts due, "
        f"{CLOSED_SHARE:.0%} of the campaigns outside their window; {args.claims} claims of "
        f"{args.limit}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        started = time.monotonic()
        url = await _database(admin_url, size)
        print(f"  {size:>9,} contacts loaded in {time.monotonic() - started:.0f} s", flush=True)
        try:
            results[size] = await _measure(url, stack, args.claims, args.limit)
        finally:
            admin = await asyncpg.connect(admin_url + "/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin.close()
        r = results[size]
        print(
            f"  {size:>9,} contacts: {r['wall_ms_per_claim']:6.2f} ms a claim, PostgreSQL "
            f"{r['postgresql_cpu_ms_per_claim']:5.2f} ms CPU, the claim's Python "
            f"{r['python_cpu_ms_per_claim']:5.2f} ms CPU ({r['contacts_per_claim']:.1f} "
            "contacts each)",
            flush=True,
        )
    small, large = min(results), max(results)
    ratios = {
        key: results[large][key] / results[small][key]
        for key in ("wall_ms_per_claim", "postgresql_cpu_ms_per_claim")
        if results[small][key]
    }
    print(
        f"  ratio {large:,} / {small:,}: wall {ratios.get('wall_ms_per_claim', 0):.2f}, "
        f"PostgreSQL CPU {ratios.get('postgresql_cpu_ms_per_claim', 0):.2f}  (target <= 1.2)"
    )
    print("JSON " + json.dumps({"sizes": results, "ratios": ratios}, sort_keys=True), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
