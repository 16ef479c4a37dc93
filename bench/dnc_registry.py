"""A national do-not-call registry of 10,000,000 numbers: the load's rate, and the check's cost.

Writes a registry file of NUMBERS distinct US numbers (national, 10 digits, as the US
registry gives them) and loads it into a fresh database with ``dialer-server dnc load``
as an operator does (a subprocess: read, made E.164, COPY into a new partition, its index
built, swapped in, committed), then measures in one run:

- the load's rate (numbers per second, wall time) and the CLI's peak RSS (it must not
  grow with the file), and PostgreSQL's and the CLI's CPU;
- a merge of MERGE numbers (half new, half listed already) into the loaded registry;
- the check every Originate makes (``do_not_call_numbers``, asked here one number at a
  time): its mean time over PROBES numbers, on an empty registry and on the loaded one
  (their ratio: an index probe does not grow with the registry), and its plan (no
  sequential scan).

Prints each figure, the ratios, and a JSON line.

    python bench/dnc_registry.py [--numbers N] [--merge N] [--probes N]
    (needs PostgreSQL; scripts/bench-dnc starts its own stack and runs this)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import CpuMeter, Stack, fresh_database, rss_mb, tree_cpu_s  # noqa: E402
from dialer_server.config import load_config  # noqa: E402
from dialer_server.db.migrations import migrate  # noqa: E402
from dialer_server.db.queries import module_queries  # noqa: E402

CHECK = module_queries("dialer_server.engine.claims")["do_not_call_numbers"]
# Area codes whose every exchange from 200 up gives a valid US number.
AREAS = (201, 202, 212, 213, 303, 305, 312, 404, 415, 503, 512, 602, 617, 702, 713, 801)


def number(i: int) -> str:
    """The i-th distinct US number, national (10 digits)."""
    area = AREAS[i % len(AREAS)]
    rest = i // len(AREAS)
    return f"{area}{200 + rest // 10000 % 800}{rest % 10000:04d}"


def write_file(path: Path, count: int, start: int = 0) -> None:
    with path.open("w") as out:
        out.write("number\n")
        step = 100_000
        for base in range(start, start + count, step):
            out.write("\n".join(number(i) for i in range(base, min(base + step, start + count))))
            out.write("\n")


async def load(url: str, name: str, path: Path, mode: str) -> tuple[float, float, float, str]:
    """(seconds, CLI peak RSS MB, CLI CPU s, its output line) of one CLI load."""
    env = {**os.environ, "DIALER_DATABASE_URL": url, "DIALER_LOG_LEVEL": "WARNING"}
    started = time.monotonic()
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialer_server",
        "dnc",
        "load",
        name,
        str(path),
        "--region",
        "US",
        "--mode",
        mode,
        "--no-progress",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    peak = 0.0
    cpu = 0.0
    reader = asyncio.create_task(cli.stdout.read())  # type: ignore[union-attr]
    while cli.returncode is None:
        # The CLI may exit between two reads of /proc: its last figures stand.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, KeyError):
            peak = max(peak, rss_mb(cli.pid)[1])
            cpu = tree_cpu_s(cli.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cli.wait(), 0.2)
    out = (await reader).decode().strip()
    seconds = time.monotonic() - started
    if cli.returncode != 0:
        raise SystemExit(f"the load failed ({cli.returncode}): {out}")
    return seconds, peak, cpu, out.splitlines()[0]


async def probe_us(url: str, probes: int) -> float:
    """Mean microseconds of the check, on numbers listed and not, prepared as the engine's."""
    conn = await asyncpg.connect(url)
    try:
        statement = await conn.prepare(CHECK)
        rng = random.Random(7)
        numbers = [f"+1{number(rng.randrange(20_000_000))}" for _ in range(probes)]
        for n in numbers[:200]:  # warm the cache and the plan
            await statement.fetch([n], 1)
        started = time.perf_counter()
        for n in numbers:
            await statement.fetch([n], 1)
        return (time.perf_counter() - started) / probes * 1e6
    finally:
        await conn.close()


async def plan(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "EXPLAIN " + CHECK.replace("$1", "ARRAY['+12025550123']").replace("$2", "1")
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    config = load_config()
    stack = Stack.running()
    load_avg = os.getloadavg()
    async with fresh_database(config.database.url) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        empty_us = await probe_us(url, args.probes)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "registry.txt"
            started = time.monotonic()
            write_file(path, args.numbers)
            written = time.monotonic() - started
            size_mb = path.stat().st_size / 1e6
            meter = CpuMeter({"postgresql": stack.postgres})
            meter.start()
            seconds, peak, cli_cpu, line = await load(url, "us-national", path, "replace")
            pg_cpu = meter.stop()["postgresql"]
            merge_path = Path(tmp) / "merge.txt"
            # Half listed already, half new.
            write_file(merge_path, args.merge, start=args.numbers - args.merge // 2)
            merge_s, _, _, merge_line = await load(url, "us-national", merge_path, "merge")
        loaded_us = await probe_us(url, args.probes)
        shown = await plan(url)
    rate = args.numbers / seconds
    merge_rate = args.merge / merge_s
    print(
        f"{args.numbers:,} numbers ({size_mb:.0f} MB file, written in {written:.1f} s), "
        f"2 CPUs, load average {load_avg[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"  {line}")
    print(f"  replace load      : {seconds:8.1f} s  {rate:12,.0f} numbers/s  (target >= 200,000)")
    print(f"  CLI peak RSS      : {peak:8.0f} MB")
    print(f"  CPU               : CLI {cli_cpu:.1f} s, PostgreSQL {pg_cpu:.1f} s")
    print(f"  merge of {args.merge:,}  : {merge_s:8.1f} s  {merge_rate:12,.0f} numbers/s")
    print(f"  check, empty      : {empty_us:8.1f} us")
    listed = f"{args.numbers / 1e6:g}M listed"
    print(f"  check, {listed}: {loaded_us:8.1f} us  (ratio {loaded_us / empty_us:.2f})")
    print("  plan of the check:")
    for plan_line in shown.splitlines():
        print("    " + plan_line)
    print(
        "JSON "
        + json.dumps(
            {
                "numbers": args.numbers,
                "seconds": round(seconds, 2),
                "numbers_per_s": round(rate),
                "cli_peak_rss_mb": round(peak),
                "cli_cpu_s": round(cli_cpu, 1),
                "postgres_cpu_s": round(pg_cpu, 1),
                "merge": args.merge,
                "merge_numbers_per_s": round(merge_rate),
                "check_empty_us": round(empty_us, 1),
                "check_loaded_us": round(loaded_us, 1),
                "seq_scan_in_check": "Seq Scan" in shown,
                "merge_line": merge_line,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=10_000_000)
    parser.add_argument("--merge", type=int, default=200_000)
    parser.add_argument("--probes", type=int, default=20_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
