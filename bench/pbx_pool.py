"""One PBX against two: calls per second and CPU per call, the dialer's own above all.

The same campaign (one call per contact, the far end answers, holds 1 s and hangs
up; CONCURRENCY calls at a time) is dialled by one daemon subprocess through a
pool of one PBX (its limit CONCURRENCY) and through a pool of two (the stack's
PBX 1 and 2, half the limit each), the phases alternated ROUNDS times on the same
stack, each on a fresh database. Around each phase the CPU time of each process
tree is read from /proc (bench/processes.py): the dialer, PostgreSQL, both
Asterisk servers and both sipp far ends (the idle PBX of the one-PBX phase
counted too: it is on the machine either way). Divided by the completed calls,
that is what one call costs each of them.

What it is for: placement (a claim locks each usable PBX and counts its calls)
and the per-PBX AMI connections must not make the dialer's own cost per call
grow with the number of PBXs. On a 2-core machine Asterisk and sipp take most
of the CPU, so calls/s says little about the dialer; its CPU per call does. The
last line repeats every figure as JSON.

    python bench/pbx_pool.py   (needs a stack with 2 PBXs: scripts/bench-pool does it all)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg

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

PROCESSES = ("dialer", "postgresql", "asterisk", "sipp")


@dataclasses.dataclass
class Phase:
    pbxs: int
    calls: int
    elapsed_s: float
    cpu_s: dict[str, float]
    # Calls each PBX took (from the attempt rows).
    per_pbx: dict[str, int]

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed_s

    def ms_per_call(self, name: str) -> float:
        return 1000 * self.cpu_s[name] / self.calls


def numbers(count: int, phase: int) -> list[str]:
    # ...201: the far end answers, holds 1 s and hangs up. A prefix per phase.
    return [f"1{304 + phase % 600:03d}{i:04d}201" for i in range(count)]


def _pbx_pids(state: Path) -> dict[str, int]:
    """The PIDs of the stack's Asterisk and sipp of PBX 1 and 2."""
    pids = {}
    for name, directory in (("1", state), ("2", state / "pbx2")):
        for service in ("asterisk", "sipp"):
            pid_file = directory / f"{service}.pid"
            if not pid_file.exists():
                raise SystemExit(
                    f"PBX {name} has no {service} running: start the stack with 2 PBXs"
                )
            pids[f"{service}{name}"] = int(pid_file.read_text())
    return pids


def _pool_env(pbxs: int, concurrency: int) -> dict[str, str]:
    env = {}
    for index in range(1, pbxs + 1):
        env[f"DIALER_PBX_{index}_NAME"] = f"pbx{index}"
        env[f"DIALER_PBX_{index}_HOST"] = "127.0.0.1"
        env[f"DIALER_PBX_{index}_PORT"] = os.environ[f"PBX{index}_AMI_PORT"]
        env[f"DIALER_PBX_{index}_MAX_CHANNELS"] = str(concurrency // pbxs)
    return env


async def run_phase(
    stack: Stack, pids: dict[str, int], pbxs: int, calls: list[str], concurrency: int
) -> Phase:
    async with fresh_database(load_config().database.url) as db_url:
        daemon = await start_daemon(
            ROOT,
            {
                "DIALER_DATABASE_URL": db_url,
                "DIALER_DIALING_STRATEGIES_DIR": str(ROOT / "strategies"),
                "DIALER_DIALING_TICK_S": "0.05",
                **_pool_env(pbxs, concurrency),
            },
        )
        try:
            conn = await asyncpg.connect(db_url)
            campaign_id = await one_call_campaign(conn, "bench-pool", calls, concurrency)
            meter = CpuMeter({"dialer": daemon.pid, "postgresql": stack.postgres, **pids})
            meter.start()
            started = time.monotonic()
            await store.set_campaign_state(conn, campaign_id, "running")
            while (
                await conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
                != "completed"
            ):
                if daemon.returncode is not None:
                    raise SystemExit(f"the daemon exited with {daemon.returncode}")
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - started
            used = meter.stop()
            rows = await conn.fetch(
                "SELECT pbx, count(*) AS calls, count(*) FILTER (WHERE outcome = 'answered') "
                "AS answered FROM attempts GROUP BY pbx ORDER BY pbx"
            )
            await conn.close()
        finally:
            await stop_daemon(daemon)
    answered = sum(r["answered"] for r in rows)
    if answered != len(calls):
        raise SystemExit(f"{pbxs} PBX(s): only {answered} of {len(calls)} calls answered")
    cpu = {
        "dialer": used["dialer"],
        "postgresql": used["postgresql"],
        "asterisk": used["asterisk1"] + used["asterisk2"],
        "sipp": used["sipp1"] + used["sipp2"],
    }
    return Phase(pbxs, len(calls), elapsed, cpu, {r["pbx"]: r["calls"] for r in rows})


def report(phases: list[Phase], concurrency: int) -> None:
    print("                      CPU per completed call (ms)")
    print("  run  PBXs  calls/s    dialer  postgresql  asterisk      sipp   calls per PBX")
    for n, phase in enumerate(phases, start=1):
        cells = "  ".join(f"{phase.ms_per_call(name):8.3f}" for name in PROCESSES)
        spread = ", ".join(f"{k} {v}" for k, v in sorted(phase.per_pbx.items()))
        print(f"  {n:>3}  {phase.pbxs:>4}  {phase.rate:7.1f}  {cells}   {spread}")
    mean: dict[int, dict[str, float]] = {}
    for pbxs in (1, 2):
        runs = [p for p in phases if p.pbxs == pbxs]
        mean[pbxs] = {
            name: statistics.mean(p.ms_per_call(name) for p in runs) for name in PROCESSES
        }
        mean[pbxs]["calls_per_s"] = statistics.mean(p.rate for p in runs)
    ratio = mean[2]["dialer"] / mean[1]["dialer"]
    print(
        f"  dialer CPU per call, mean: 1 PBX {mean[1]['dialer']:.3f} ms, "
        f"2 PBXs {mean[2]['dialer']:.3f} ms: ratio 2/1 {ratio:.2f}"
    )
    print(
        "JSON "
        + json.dumps(
            {
                "calls": phases[0].calls,
                "concurrency": concurrency,
                "cpus": os.cpu_count(),
                "runs": [
                    {
                        "pbxs": p.pbxs,
                        "calls_per_s": round(p.rate, 2),
                        "cpu_ms_per_call": {n: round(p.ms_per_call(n), 4) for n in PROCESSES},
                        "calls_per_pbx": p.per_pbx,
                    }
                    for p in phases
                ],
                "mean": {str(k): {n: round(v, 4) for n, v in m.items()} for k, m in mean.items()},
                "dialer_ratio_2_over_1": round(ratio, 3),
            },
            sort_keys=True,
        ),
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # The pool names each PBX's endpoint: [ami] keeps only the login and timeouts.
    for key in ("DIALER_AMI_HOST", "DIALER_AMI_PORT"):
        os.environ.pop(key, None)
    stack = Stack.running()
    state = Path(os.environ["PBX2_DIR"]).parent
    pids = _pbx_pids(state)
    print(
        f"{args.calls} calls, {args.concurrency} at a time, far end holds 1 s, "
        f"{args.rounds} rounds of 1 then 2 PBXs ({os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    phases = []
    for round_ in range(args.rounds):
        for pbxs in (1, 2):
            calls = numbers(args.calls, 2 * round_ + pbxs)
            phases.append(await run_phase(stack, pids, pbxs, calls, args.concurrency))
    report(phases, args.concurrency)


if __name__ == "__main__":
    import logging

    # The daemon's startup warnings (no API tokens...) are not benchmark output.
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
