"""The processes of a benchmark run, and what they cost, read from /proc (Linux).

A process tree's CPU time is the user and system time of the root and every
living descendant, plus what their reaped children used (cutime/cstime): a
PostgreSQL backend that exits between two samples is counted through its
postmaster. Sampled around a phase, the difference is what the phase cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    data = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: the fields follow the last ")".
    fields = data[data.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / CLOCK_TICKS


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root`` and its descendants (0 if it is gone)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parents[int(entry)], cpu[int(entry)] = _stat(int(entry))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # gone meanwhile
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root] if root in cpu else []
    while todo:
        pid = todo.pop()
        total += cpu[pid]
        todo.extend(children.get(pid, ()))
    return total


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident set now, its peak) of one process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def tree_rss_mb(root: int) -> float:
    """Resident set of ``root`` and its living descendants (worker processes), in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                children.setdefault(_stat(int(entry))[0], []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, KeyError):
            total += rss_mb(pid)[0]
        todo.extend(children.get(pid, ()))
    return total


@dataclasses.dataclass(frozen=True)
class Stack:
    """The pids of a local stack's services (scripts/stack writes them)."""

    asterisk: int
    sipp: int
    postgres: int

    @classmethod
    def running(cls, name: str | None = None) -> Stack:
        name = name or os.environ.get("STACK_NAME", "bench")
        state = Path(os.environ.get("STACK_STATE_DIR") or f"/var/tmp/dialer-stack/{name}")
        postmaster = (state / "pg" / "postmaster.pid").read_text().splitlines()[0]
        return cls(
            asterisk=int((state / "asterisk.pid").read_text()),
            sipp=int((state / "sipp.pid").read_text()),
            postgres=int(postmaster),
        )


class CpuMeter:
    """CPU seconds of named process trees between ``start`` and ``stop``."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = dict(roots)
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: tree_cpu_s(pid) for name, pid in self.roots.items()}

    def stop(self) -> dict[str, float]:
        self.used = {name: tree_cpu_s(pid) - self._start[name] for name, pid in self.roots.items()}
        return self.used


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_daemon(
    root: Path, env: dict[str, str], port: int | None = None
) -> asyncio.subprocess.Process:
    """``dialer-server run`` as operators run it, with ``env`` over this process's
    environment (the stack's settings), serving HTTP on ``port`` (default: a free one);
    returned once its /readyz says 200."""
    port = port or _free_port()
    full = {**os.environ, "DIALER_HTTP_PORT": str(port), "DIALER_LOG_LEVEL": "ERROR", **env}
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer_server", "run", env=full, cwd=root
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.returncode is not None:
            raise SystemExit(f"the daemon exited with {daemon.returncode}")
        # Not listening yet (OSError): asked again in 0.1 s.
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.0\r\n\r\n")
            status = (await reader.readline()).split()
            writer.close()
            if len(status) > 1 and status[1] == b"200":
                return daemon
        await asyncio.sleep(0.1)
    await stop_daemon(daemon)
    raise SystemExit("the daemon did not become ready in 60 s")


async def stop_daemon(daemon: asyncio.subprocess.Process) -> None:
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(daemon.wait(), 30)
        except TimeoutError:
            daemon.kill()
            await daemon.wait()


@contextlib.asynccontextmanager
async def fresh_database(url: str) -> AsyncIterator[str]:
    """A new, empty database beside the one of ``url``; dropped afterwards."""
    base = url.rsplit("/", 1)[0]
    name = f"dialer_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(base + "/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# One call per contact: the engine benchmarks' strategy.
ONE_CALL = {
    "name": "bench-one-call",
    "version": 1,
    "description": "one call per contact",
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


async def one_call_campaign(conn: Any, name: str, calls: list[str], concurrency: int) -> int:
    """A stopped campaign of one contact per number in ``calls``, every contact due,
    dialled by ONE_CALL at most ``concurrency`` at a time, at any hour."""
    # Imported here: the benchmarks put the project on sys.path before they use it.
    from dialer_server.engine import store
    from dialer_server.engine.strategy import parse_strategy, strategy_to_dict

    strategy = parse_strategy(ONE_CALL)
    strategy_id, _ = await store.save_strategy_version(
        conn, strategy.name, strategy.version, strategy_to_dict(strategy)
    )
    campaign_id = await store.create_campaign(
        conn,
        name,
        strategy_id=strategy_id,
        max_concurrent_calls=concurrency,
        max_calls_per_second=1000,
        calling_window={
            "hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        },
    )
    await conn.copy_records_to_table(
        "contacts",
        columns=["campaign_id", "external_id", "phone1", "next_attempt_at"],
        records=[(campaign_id, str(i), n, None) for i, n in enumerate(calls)],
    )
    await conn.execute("UPDATE contacts SET next_attempt_at = now()")
    return int(campaign_id)
