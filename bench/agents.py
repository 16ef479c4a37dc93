"""Agent campaigns at 20 agents, time-compressed: progressive vs predictive.

The same simulation as tests/test_agent_sim.py, bigger and longer: sipp agents
(tests/agents.py) registered as members of the real Asterisk queue, on
auto-answer, each call held for a random talk time; sipp contacts
(scripts/sipp/farend.xml) that answer after a 1 s ring (...261), ring out
after 2 s (...181) or are busy (...486), drawn with set probabilities. Each
mode dials its own campaign, on its own database, for the same time; then the
campaign is stopped and its calls allowed to end. Printed side by side: talk
minutes per agent-hour, abandon rate and calls per agent-hour (agent_stats.py,
over the dialling time: agent-hours = agents x that time, talk time within it;
the abandon rate of the calls placed in it), and the target (predictive: >= 45
talk-min per agent-hour at <= 3 % abandon).

Time compression (about 1/15): talk 8-16 s stands for 2-4 minutes, a 2 s
ring-out for 30 s; agents have no wrap-up (queues.conf). The grace time before a
caller counts as abandoned is not compressed: 2 s, the regulated value.

Both campaigns start with the same history, dialled earlier today (by default
400 calls answered by a person, 6 of them abandoned: 1.5 %, where predictive
pacing settles, between 2 x target - cap and the target): pacing reads its
answer rate and abandon windows from the database, and this is a campaign in
its working day, not its first minute (which dials like progressive until it
has answered calls to spend an abandon on).

    python bench/agents.py   (needs a running stack: scripts/bench-agents does it all)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer_server.campaigns.agent_stats import AgentStats, agent_stats  # noqa: E402
from dialer_server.config import Config, load_config  # noqa: E402
from dialer_server.daemon import Daemon  # noqa: E402
from dialer_server.db.migrations import migrate  # noqa: E402
from dialer_server.engine import store  # noqa: E402
from dialer_server.engine.strategy import parse_strategy, strategy_to_dict  # noqa: E402
from tests.support.sipp_agents import QUEUE, SippAgents, TalkTime, seed_call_history  # noqa: E402

ANSWERS = "12025550261"
RINGS_OUT = "12025550181"
BUSY = "12025550486"
TARGET_TALK_MIN = 45.0
TARGET_ABANDON = 0.03

ONE_CALL = {
    "name": "bench-agents",
    "version": 1,
    "description": "one call per contact",
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


@dataclasses.dataclass(frozen=True)
class Run:
    mode: str
    stats: AgentStats
    window_rate: float
    placed: int


async def fresh_database(base: Config) -> Config:
    url = base.database.url
    name = f"dialer_bench_agents_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db_url = url.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(db_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dataclasses.replace(
        base,
        database=dataclasses.replace(base.database, url=db_url),
        http=dataclasses.replace(base.http, port=0),
        dialing=dataclasses.replace(
            base.dialing, strategies_dir=str(ROOT / "strategies"), tick_s=0.05
        ),
    )


async def drop_database(config: Config) -> None:
    url = config.database.url
    admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def add_campaign(conn: Any, mode: str, numbers: list[str], args: argparse.Namespace) -> int:
    strategy = parse_strategy(ONE_CALL)
    strategy_id, _ = await store.save_strategy_version(
        conn, strategy.name, strategy.version, strategy_to_dict(strategy)
    )
    always = {
        "hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    }
    campaign_id = await store.create_campaign(
        conn,
        f"bench-{mode}",
        strategy_id=strategy_id,
        max_concurrent_calls=200,
        max_calls_per_second=50,
        calling_window=always,
        mode=mode,
        queue=QUEUE,
    )
    await conn.executemany(
        "INSERT INTO contacts (campaign_id, phone1, next_attempt_at) VALUES ($1, $2, now())",
        [(campaign_id, number) for number in numbers],
    )
    await seed_call_history(
        conn,
        campaign_id,
        ANSWERS,
        answered=args.history_answered,
        abandoned=args.history_abandoned,
    )
    return campaign_id


def contact_numbers(count: int, args: argparse.Namespace, seed: int) -> list[str]:
    rng = random.Random(seed)
    numbers = []
    for _ in range(count):
        draw = rng.random()
        if draw < args.answer:
            numbers.append(ANSWERS)
        elif draw < args.answer + args.ring_out:
            numbers.append(RINGS_OUT)
        else:
            numbers.append(BUSY)
    return numbers


async def run_mode(base: Config, mode: str, args: argparse.Namespace) -> Run:
    config = await fresh_database(base)
    conn = await asyncpg.connect(config.database.url)
    try:
        contacts = int(args.seconds * args.agents * 0.6) + 100
        campaign_id = await add_campaign(
            conn, mode, contact_numbers(contacts, args, args.seed), args
        )
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run(), name=f"daemon-{mode}")
        try:
            async with asyncio.timeout(30):
                while not (
                    daemon.roster.ready and len(daemon.roster.free_agents(QUEUE)) == args.agents
                ):
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.05)
            started = datetime.now(UTC)
            await store.set_campaign_state(conn, campaign_id, "running")
            print(f"  {mode}: dialling for {args.seconds:.0f} s ...", flush=True)
            await asyncio.sleep(args.seconds)
            await store.set_campaign_state(conn, campaign_id, "stopped")
            stopped = datetime.now(UTC)
            deadline = time.monotonic() + 120
            while await conn.fetchval(
                "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state <> 'ended'",
                campaign_id,
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: calls still open 120 s after the stop")
                await asyncio.sleep(0.2)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 30)
        stats = await agent_stats(conn, campaign_id, start=started, end=stopped, agents=args.agents)
        window = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')) AS answered, "
            "count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned FROM attempts "
            "WHERE campaign_id = $1 AND ended_at > now() - interval '24 hours'",
            campaign_id,
        )
    finally:
        await conn.close()
        await drop_database(config)
    rate = window["abandoned"] / window["answered"] if window["answered"] else 0.0
    return Run(mode, stats, rate, contacts)


def report(runs: list[Run], args: argparse.Namespace) -> None:
    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"{label:34}" + "".join(f"{v:>14}" for v in values) + f"   {target}")

    print()
    print(
        f"{args.agents} agents, talk {args.talk_min:g}-{args.talk_min + args.talk_spread:g} s, "
        f"contacts answer {args.answer:.0%} (1 s ring), ring out {args.ring_out:.0%} (2 s), "
        f"busy {1 - args.answer - args.ring_out:.0%}; {args.seconds:.0f} s per mode"
    )
    row("", [r.mode for r in runs], "target (predictive)")
    row(
        "talk-min per agent-hour", [f"{r.stats.talk_min_per_agent_hour:.1f}" for r in runs], ">= 45"
    )
    row("abandon rate (this run)", [f"{r.stats.abandon_rate:.2%}" for r in runs], "<= 3%")
    row("abandon rate (rolling 24 h)", [f"{r.window_rate:.2%}" for r in runs], "<= 3%")
    row("calls per agent-hour (connected)", [f"{r.stats.calls_per_agent_hour:.0f}" for r in runs])
    row("occupancy", [f"{r.stats.occupancy:.1%}" for r in runs])
    row("calls placed", [str(r.stats.calls) for r in runs])
    row("answered / connected / abandoned", [
        f"{r.stats.answered}/{r.stats.connected}/{r.stats.abandoned}" for r in runs
    ])  # fmt: skip
    row("measured over (s)", [f"{r.stats.hours * 3600:.0f}" for r in runs])
    predictive = next((r for r in runs if r.mode == "predictive"), None)
    if predictive is not None:
        met = (
            predictive.stats.talk_min_per_agent_hour >= TARGET_TALK_MIN
            and predictive.stats.abandon_rate <= TARGET_ABANDON
        )
        print(f"\npredictive target {'met' if met else 'NOT met'} in this run")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0, help="dialling time per mode")
    parser.add_argument("--talk-min", type=float, default=8.0)
    parser.add_argument("--talk-spread", type=float, default=8.0)
    parser.add_argument("--answer", type=float, default=0.35)
    parser.add_argument("--ring-out", type=float, default=0.40)
    parser.add_argument("--history-answered", type=int, default=400)
    parser.add_argument("--history-abandoned", type=int, default=6)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--modes", default="progressive,predictive", help="comma-separated, in order"
    )
    args = parser.parse_args()
    base = load_config()
    talk = TalkTime(min_s=args.talk_min, spread_s=args.talk_spread)
    runs = []
    async with SippAgents(talk=talk) as agents:
        await agents.register(args.agents)
        for mode in args.modes.split(","):
            runs.append(await run_mode(base, mode, args))
            # Calls of the last run may still be winding down in Asterisk.
            await asyncio.sleep(2)
    report(runs, args)


if __name__ == "__main__":
    asyncio.run(main())
