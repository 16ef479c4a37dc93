"""The daemon under big imports: its memory, its answer, and whether its event loop answers.

Starts a real daemon (``python -m dialer_server run``, a fresh database per scenario) on
the stack whose settings are in the environment, sends it one import per scenario through
the HTTP API, and measures while the import runs:

- the daemon's memory: the peak RSS of the daemon process (``VmHWM``) and the peak RSS of
  the daemon with its children (validation worker processes), sampled every 20 ms;
- ``/healthz``: one probe every 20 ms on a connection of its own, each waiting for its
  answer; the longest wait is how long the event loop that carries every call's AMI
  events was held up;
- the import's answer: status, size in bytes, seconds.

Scenarios (``--only`` picks some):

- ``bad-csv``: a 2 MB CSV of bad rows (``1,2,3,4,5`` under phone1..phone5: five problems a
  row), the file upload route;
- ``json-10k``: the biggest JSON batch taken, 10,000 contacts with a phone, an external
  id and two params (POST .../contacts);
- ``json-1m``: 1,000,000 contacts as one JSON batch (refused: it goes as a file);
- ``csv-1m``: 1,000,000 good contacts as a CSV file (70 MB, the file upload route);
- ``xlsx-100k``: 100,000 good contacts as an XLSX workbook (the file upload route).

Not a pass/fail test: it prints what it measured in this run.

    python bench/import_load.py [--only bad-csv,json-10k,json-1m,csv-1m,xlsx-100k] [--rows N]
    (scripts/bench-import-load starts a stack of its own and runs this)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from import_contacts import AREAS, generate  # noqa: E402
from processes import fresh_database, rss_mb, start_daemon, stop_daemon, tree_rss_mb  # noqa: E402

TOKEN = "bench-import-load-token-0123456789"
STRATEGY = {
    "name": "bench-load",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}


def bad_csv(size: int = 2_000_000) -> bytes:
    """A CSV of rows that are all bad: five invalid numbers each."""
    line = b"1,2,3,4,5\n"
    return b"phone1,phone2,phone3,phone4,phone5\n" + line * (size // len(line))


def phone(i: int) -> str:
    """The i-th of a run of valid, distinct US numbers."""
    rest = i // len(AREAS)
    return f"+1{AREAS[i % len(AREAS)]}{200 + rest // 10_000 % 800}{rest % 10_000:04d}"


def json_batch(count: int) -> bytes:
    numbers = ",".join(f'{{"phone1":"{phone(i)}"}}' for i in range(count))
    return ('{"contacts":[' + numbers + "]}").encode()


def json_rows(count: int) -> bytes:
    rows = [
        {
            "external_id": f"crm-{i}",
            "phone1": phone(i),
            "param1": f"Customer {i}",
            "param2": f"plan-{i % 7}",
        }
        for i in range(count)
    ]
    return json.dumps({"contacts": rows}).encode()


def xlsx_file(count: int) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("contacts")
    sheet.append(["external_id", "phone1", "param1"])
    for i in range(count):
        sheet.append([f"crm-{i}", phone(i), f"c{i}"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class Sampler(threading.Thread):
    """Samples the daemon tree's RSS and probes /healthz until stopped."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.port = port
        self.stop = threading.Event()
        self.tree_peak_mb = 0.0
        self.waits: list[float] = []
        self.failed = 0

    def run(self) -> None:
        prober = threading.Thread(target=self._probe, daemon=True)
        prober.start()
        while not self.stop.is_set():
            self.tree_peak_mb = max(self.tree_peak_mb, tree_rss_mb(self.pid))
            self.stop.wait(0.02)
        prober.join()

    def _probe(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            self.waits.append(time.perf_counter() - started)
            if not ok:
                self.failed += 1
            self.stop.wait(0.02)


def request(
    port: int, method: str, path: str, body: bytes | None, content_type: str | None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


async def run_scenario(
    name: str, make: Callable[[], tuple[str, bytes, str]], base_url: str
) -> dict[str, Any]:
    port = _free_port()
    async with fresh_database(base_url) as url:
        daemon = await start_daemon(
            ROOT,
            {
                "DIALER_DATABASE_URL": url,
                "DIALER_HTTP_HOST": "127.0.0.1",
                "DIALER_API_TOKENS": f"bench:{TOKEN}",
                "DIALER_DIALING_STRATEGIES_DIR": str(ROOT / "strategies"),
            },
            port,
        )
        try:
            result = await asyncio.to_thread(_measure, name, make, daemon.pid, port)
            result["daemon_alive"] = daemon.returncode is None
        finally:
            await stop_daemon(daemon)
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(
    name: str, make: Callable[[], tuple[str, bytes, str]], pid: int, port: int
) -> dict[str, Any]:
    status, _ = request(
        port, "POST", "/api/v1/strategies", json.dumps(STRATEGY).encode(), "application/json"
    )
    assert status in (200, 201), status
    status, created = request(
        port,
        "POST",
        "/api/v1/campaigns",
        json.dumps({"name": name, "strategy": STRATEGY["name"]}).encode(),
        "application/json",
    )
    assert status == 201, created
    campaign = json.loads(created)["id"]
    route, body, content_type = make()
    idle_mb = rss_mb(pid)[0]
    sampler = Sampler(pid, port)
    sampler.start()
    started = time.perf_counter()
    status, answer = request(port, "POST", route.format(id=campaign), body, content_type)
    seconds = time.perf_counter() - started
    time.sleep(0.1)
    sampler.stop.set()
    sampler.join()
    peak_mb = rss_mb(pid)[1]
    waits = sorted(sampler.waits)
    summary: dict[str, Any] = {}
    with contextlib.suppress(ValueError):  # an answer that is not JSON is shown by its size
        parsed = json.loads(answer)
        summary = {
            k: parsed[k]
            for k in ("received", "inserted", "rejected_rows", "problems")
            if k in parsed
        }
        if "error" in parsed:
            summary["error"] = parsed["error"]["code"]
    return {
        "scenario": name,
        "body_mb": len(body) / 1e6,
        "status": status,
        "answer_bytes": len(answer),
        "seconds": seconds,
        "idle_mb": idle_mb,
        "daemon_peak_mb": peak_mb,
        "tree_peak_mb": sampler.tree_peak_mb,
        "healthz_probes": len(waits),
        "healthz_failed": sampler.failed,
        "healthz_max_ms": waits[-1] * 1000 if waits else float("nan"),
        "healthz_p99_ms": waits[int(len(waits) * 0.99) - 1] * 1000 if waits else float("nan"),
        "healthz_median_ms": statistics.median(waits) * 1000 if waits else float("nan"),
        "answer": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="bad-csv,json-10k,json-1m,csv-1m,xlsx-100k")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    base_url = os.environ.get("DIALER_DATABASE_URL")
    if not base_url:
        raise SystemExit('DIALER_DATABASE_URL is not set: run `eval "$(scripts/stack env)"`')

    def csv_1m() -> tuple[str, bytes, str]:
        data, _ = generate(args.rows)
        return "/api/v1/campaigns/{id}/contacts/file", data, "text/csv"

    scenarios: dict[str, Callable[[], tuple[str, bytes, str]]] = {
        "bad-csv": lambda: ("/api/v1/campaigns/{id}/contacts/file", bad_csv(), "text/csv"),
        "json-10k": lambda: (
            "/api/v1/campaigns/{id}/contacts",
            json_rows(10_000),
            "application/json",
        ),
        "xlsx-100k": lambda: (
            "/api/v1/campaigns/{id}/contacts/file",
            xlsx_file(100_000),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        "json-1m": lambda: (
            "/api/v1/campaigns/{id}/contacts",
            json_batch(args.rows),
            "application/json",
        ),
        "csv-1m": csv_1m,
    }
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"/healthz probed every 20 ms during each import",
        flush=True,
    )
    for name in args.only.split(","):
        r = asyncio.run(run_scenario(name, scenarios[name], base_url))
        print(
            f"{name:9} {r['body_mb']:6.1f} MB -> {r['status']} "
            f"answer {r['answer_bytes']:,} B in {r['seconds']:.1f} s {r['answer']}\n"
            f"          RSS: idle {r['idle_mb']:.0f} MB, daemon peak "
            f"{r['daemon_peak_mb']:.0f} MB, with its workers {r['tree_peak_mb']:.0f} MB"
            f"{'' if r['daemon_alive'] else ' (the daemon DIED)'}\n"
            f"          /healthz: {r['healthz_probes']} probes, {r['healthz_failed']} failed, "
            f"median {r['healthz_median_ms']:.1f} ms, p99 {r['healthz_p99_ms']:.0f} ms, "
            f"max {r['healthz_max_ms']:.0f} ms",
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
