"""Full call cycles per second, and CPU per call: the campaign engine vs a bare panoramisk loop.

Both sides place the same calls through the same real Asterisk to the same
sipp far end (answer, hold 1 s, hang up), CONCURRENCY at a time, and count
completed cycles (Originate -> answer -> Hangup) per second of wall time: the
engine's from its campaign's start to its completion, as PostgreSQL stamped
them. Both run on uvloop, as the daemon does. Each side first places ``--warmup``
calls (300) that are not measured: the engine's daemon opens its pool's
connections and prepares its statements then, once, as a daemon that has run for
a while has; what is measured is the steady state.
The bare loop has no database, no strategy and no bookkeeping: it is what
Asterisk and sipp can do on this machine, so the ratio is the engine's cost. It
runs twice, right before and right after the engine, and its two runs count as
one (their calls, time and CPU summed): a VM's speed drifts within minutes, and
the anchor is then the machine as it was around the engine's run.

Around each phase the CPU time of each process tree is read from /proc
(bench/processes.py): the dialer (the bare loop runs in this process; the
engine is a daemon subprocess, run as operators run it), PostgreSQL (the
postmaster and its backends), Asterisk and sipp. Divided by the completed
calls, that is what one call costs each of them; the last line repeats every
figure as JSON, so runs can be compared.

``--profile DIR`` also profiles the engine phase: py-spy samples the daemon
(DIR/engine.folded, folded stacks) and, when the stack's PostgreSQL loaded
pg_stat_statements (``PG_STAT_STATEMENTS=1``), the statements the phase ran
are printed with their calls and time per completed call. A profiled run's
figures are not comparable with the others (the sampler shares the CPUs).

    python bench/engine_cycles.py   (needs a running stack: scripts/bench does it all)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import panoramisk
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processes import (  # noqa: E402  (bench/processes.py)
    CpuMeter,
    Stack,
    fresh_database,
    one_call_campaign,
    start_daemon,
    stop_daemon,
)

from dialer_server.config import load_config  # noqa: E402
from dialer_server.engine import store  # noqa: E402


def numbers(count: int, prefix: str = "1303") -> list[str]:
    # ...201: the far end answers, holds 1 s and hangs up.
    return [f"{prefix}{i:04d}201" for i in range(count)]


# The warm-up's calls: their own numbers, the same behaviour.
WARMUP_PREFIX = "1304"


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


@dataclasses.dataclass
class Phase:
    """One side's run: its rate and the CPU seconds each process tree used."""

    calls: int
    elapsed_s: float
    cpu_s: dict[str, float]

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed_s

    def ms_per_call(self, name: str) -> float | None:
        used = self.cpu_s.get(name)
        return None if used is None else 1000 * used / self.calls

    def __add__(self, other: Phase) -> Phase:
        """Two runs of one side as one: their calls, time and CPU summed."""
        names = self.cpu_s.keys() & other.cpu_s.keys()
        return Phase(
            self.calls + other.calls,
            self.elapsed_s + other.elapsed_s,
            {name: self.cpu_s[name] + other.cpu_s[name] for name in names},
        )


def _meter(stack: Stack, dialer_pid: int) -> CpuMeter:
    return CpuMeter(
        {
            "dialer": dialer_pid,
            "postgresql": stack.postgres,
            "asterisk": stack.asterisk,
            "sipp": stack.sipp,
        }
    )


async def bare(config: Any, stack: Stack, calls: list[str], concurrency: int, warmup: int) -> Phase:
    def place(these: list[str]) -> Any:
        ami = config.ami
        return bare_loop(
            ami.host, ami.port, ami.username, ami.secret, config.dialing.trunk, these, concurrency
        )

    if warmup:
        await place(numbers(warmup, WARMUP_PREFIX))
    meter = _meter(stack, os.getpid())
    meter.start()
    started = time.monotonic()
    await place(calls)
    elapsed = time.monotonic() - started
    cpu = meter.stop()
    del cpu["postgresql"]  # no database: what it did meanwhile is not the loop's
    return Phase(len(calls), elapsed, cpu)


async def engine(
    stack: Stack, calls: list[str], concurrency: int, warmup: int, profile: Path | None = None
) -> Phase:
    """The same calls as a campaign run by a daemon subprocess, after a warm-up campaign
    of ``warmup`` calls on the same daemon (its pool's connections opened, its statements
    prepared: what a daemon pays once, not per call)."""
    async with fresh_database(load_config().database.url) as db_url:
        daemon = await start_daemon(
            ROOT,
            {
                "DIALER_DATABASE_URL": db_url,
                "DIALER_DIALING_STRATEGIES_DIR": str(ROOT / "strategies"),
            },
        )
        try:
            conn = await asyncpg.connect(db_url)
            if warmup:
                await _run_to_completion(
                    conn,
                    daemon,
                    await one_call_campaign(
                        conn, "warm-up", numbers(warmup, WARMUP_PREFIX), concurrency
                    ),
                )
            campaign_id = await one_call_campaign(conn, "bench", calls, concurrency)
            statements = profile is not None and await _reset_statements(conn)
            sampler = _py_spy(daemon.pid, profile) if profile is not None else None
            meter = _meter(stack, daemon.pid)
            meter.start()
            await store.set_campaign_state(conn, campaign_id, "running")
            started = await conn.fetchval(
                "SELECT updated_at FROM campaigns WHERE id = $1", campaign_id
            )
            await _wait_completed(conn, daemon, campaign_id)
            cpu = meter.stop()
            # From the campaign's start to its completion, as the database stamped them:
            # the poll above only notices the end up to 0.2 s late.
            completed = await conn.fetchval(
                "SELECT updated_at FROM campaigns WHERE id = $1", campaign_id
            )
            elapsed = (completed - started).total_seconds()
            if sampler is not None:
                sampler.send_signal(2)  # SIGINT: py-spy writes its file and exits
                await asyncio.to_thread(sampler.wait, 30)
            if statements:
                await _print_statements(conn, len(calls))
            answered = await conn.fetchval(
                "SELECT count(*) FROM attempts WHERE outcome = 'answered' AND campaign_id = $1",
                campaign_id,
            )
            await _print_timeline(conn, elapsed, campaign_id)
            await conn.close()
        finally:
            await stop_daemon(daemon)
    if answered != len(calls):
        raise SystemExit(f"engine: only {answered} of {len(calls)} calls answered")
    return Phase(len(calls), elapsed, cpu)


async def _run_to_completion(conn: Any, daemon: Any, campaign_id: int) -> None:
    await store.set_campaign_state(conn, campaign_id, "running")
    await _wait_completed(conn, daemon, campaign_id)


async def _wait_completed(conn: Any, daemon: Any, campaign_id: int) -> None:
    while (
        await conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id) != "completed"
    ):
        if daemon.returncode is not None:
            raise SystemExit(f"engine: the daemon exited with {daemon.returncode}")
        await asyncio.sleep(0.2)


async def _print_timeline(conn: Any, elapsed: float, campaign_id: int) -> None:
    """Where a call's time went, from its attempt row (means, ms), and how long before
    the campaign was seen completed the last call ended (the completion check runs once
    a second): what the engine's rate counts besides the calls themselves."""
    row = await conn.fetchrow(
        """SELECT avg(extract(epoch FROM sent_at - created_at)) * 1000 AS claimed_to_sent,
                  avg(extract(epoch FROM answered_at - sent_at)) * 1000 AS sent_to_answered,
                  avg(extract(epoch FROM ended_at - answered_at)) * 1000 AS answered_to_ended,
                  extract(epoch FROM max(ended_at) - min(created_at)) AS first_to_last_s,
                  sum(extract(epoch FROM ended_at - created_at))
                    / extract(epoch FROM max(ended_at) - min(created_at)) AS mean_in_flight,
                  avg(extract(epoch FROM created_at - previous_end)) * 1000 AS end_to_claim
           FROM (SELECT *, lag(ended_at) OVER (ORDER BY ended_at) AS previous_end
                 FROM attempts WHERE campaign_id = $1) a""",
        campaign_id,
    )
    print(
        f"  engine timeline (mean ms): claimed->sent {row['claimed_to_sent']:.0f}, "
        f"sent->answered {row['sent_to_answered']:.0f}, answered->ended "
        f"{row['answered_to_ended']:.0f}; first claim to last end {row['first_to_last_s']:.2f} s "
        f"of {elapsed:.2f} s; {row['mean_in_flight']:.0f} calls up on average",
        flush=True,
    )


def _py_spy(pid: int, directory: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("  (py-spy not installed: pip install py-spy; the daemon is not sampled)")
        return None
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "engine.folded"
    print(f"  sampling the daemon with py-spy into {out}", flush=True)
    return subprocess.Popen(
        [exe, "record", "-p", str(pid), "-f", "raw", "-r", "200", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _reset_statements(conn: Any) -> bool:
    """Start pg_stat_statements afresh; False when the server did not load it."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    except asyncpg.PostgresError as exc:
        print(f"  (no pg_stat_statements: {exc}; start the stack with PG_STAT_STATEMENTS=1)")
        return False
    return True


async def _print_statements(conn: Any, calls: int) -> None:
    """The statements of this database, by total time: calls and ms per completed call."""
    rows = await conn.fetch(
        """SELECT calls, total_exec_time + total_plan_time AS ms, query
           FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           ORDER BY ms DESC LIMIT 25"""
    )
    total = sum(r["ms"] for r in rows)
    print(f"  PostgreSQL statements (pg_stat_statements), per completed call; {total:.0f} ms")
    print("    calls/call  ms/call  share  statement")
    for r in rows:
        text = " ".join(r["query"].split())[:110]
        print(
            f"    {r['calls'] / calls:9.2f} {r['ms'] / calls:8.4f} "
            f"{100 * r['ms'] / total if total else 0:5.1f}%  {text}"
        )


def report(bare_phases: tuple[Phase, Phase], engine_phase: Phase, concurrency: int) -> None:
    bare_phase = bare_phases[0] + bare_phases[1]
    ratio = engine_phase.rate / bare_phase.rate
    print(
        f"  bare panoramisk loop : {bare_phase.rate:7.2f} call cycles/s "
        f"({bare_phases[0].rate:.2f} before the engine, {bare_phases[1].rate:.2f} after)"
    )
    print(f"  campaign engine      : {engine_phase.rate:7.2f} call cycles/s")
    print(f"  ratio engine/bare    : {ratio:7.2f}")
    print("  CPU per completed call (ms)    bare   engine")
    rows = {}
    for name in ("dialer", "postgresql", "asterisk", "sipp"):
        b, e = bare_phase.ms_per_call(name), engine_phase.ms_per_call(name)
        rows[name] = {"bare": b, "engine": e}
        shown = [f"{v:8.3f}" if v is not None else "       -" for v in (b, e)]
        print(f"    {name:<27}{shown[0]} {shown[1]}")
    dialer_db = (engine_phase.ms_per_call("dialer") or 0) + (
        engine_phase.ms_per_call("postgresql") or 0
    )
    asterisk = engine_phase.ms_per_call("asterisk") or 0
    share = dialer_db / asterisk if asterisk else float("nan")
    print(f"  dialer + PostgreSQL per Asterisk, engine: {share:.2f}")
    print(
        "JSON "
        + json.dumps(
            {
                "calls": engine_phase.calls,
                "concurrency": concurrency,
                "cpus": os.cpu_count(),
                "bare_cycles_per_s": round(bare_phase.rate, 2),
                "bare_cycles_per_s_before_after": [round(p.rate, 2) for p in bare_phases],
                "engine_cycles_per_s": round(engine_phase.rate, 2),
                "ratio": round(ratio, 3),
                "cpu_ms_per_call": {
                    name: {k: None if v is None else round(v, 4) for k, v in sides.items()}
                    for name, sides in rows.items()
                },
                "dialer_and_postgresql_per_asterisk": round(share, 3),
            },
            sort_keys=True,
        ),
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument(
        "--warmup",
        type=int,
        default=300,
        help="calls each side places before it is measured (0: none)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile the engine phase: py-spy's folded stacks in this directory, "
        "and PostgreSQL's statements when pg_stat_statements is loaded",
    )
    args = parser.parse_args()
    config = load_config()
    stack = Stack.running()
    calls = numbers(args.calls)
    print(
        f"{args.calls} calls, {args.concurrency} at a time, far end holds 1 s, "
        f"after {args.warmup} calls of warm-up "
        f"(Asterisk {config.ami.host}:{config.ami.port}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    # The bare loop runs before and after the engine, and counts as one: this VM's speed
    # drifts by a third within minutes (Asterisk's CPU for the same bare calls moves
    # with it), and the anchor must be the machine the engine ran on, not the one of the
    # minute before.
    before = await bare(config, stack, calls, args.concurrency, args.warmup)
    engine_phase = await engine(stack, calls, args.concurrency, args.warmup, args.profile)
    after = await bare(config, stack, calls, args.concurrency, args.warmup)
    report((before, after), engine_phase, args.concurrency)


if __name__ == "__main__":
    import logging

    # The daemon's startup warnings (no API tokens...) are not benchmark output.
    logging.basicConfig(level=logging.ERROR)
    # The bare loop runs on uvloop, as the daemon does: the anchor is a lean hand-written
    # loop, with the same event loop.
    uvloop.run(main())
