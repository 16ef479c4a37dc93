"""Attempts across a campaign of 1,000,000 attempts: pages that cost the same anywhere, and
exports in constant memory.

Fills a fresh database with two campaigns, SMALL and LARGE attempts (ended calls of
10,000 contacts, the outcomes of a real campaign), starts ``dialer-server run`` as
operators do, and measures through its HTTP API, in one run:

- a page of 1,000 attempts (``GET /api/v1/campaigns/{id}/attempts``) at the start, the
  middle and the end of the large campaign (keyset pagination: the same cost anywhere);
- the CSV and the XLSX export of each campaign (``/attempts/export``): rows per second,
  and the daemon's peak RSS while it streams, sampled every 20 ms, beside its RSS idle.

The exports are flat when the large campaign's peak is about the small one's (their ratio
printed: memory does not grow with the export's size).

    python bench/attempts_export.py [--large N] [--small N]
    (needs PostgreSQL; scripts/bench-attempts starts its own stack and runs this)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import fresh_database, rss_mb, start_daemon, stop_daemon  # noqa: E402
from dialer_server.campaigns.attempts import encode_cursor  # noqa: E402
from dialer_server.config import load_config  # noqa: E402
from dialer_server.db.migrations import migrate  # noqa: E402

TOKEN = "bench-attempts-token-0123456789"
CONTACTS = 10_000


async def fill(url: str, name: str, attempts: int) -> int:
    """A campaign with ``attempts`` ended attempts over CONTACTS contacts; its id."""
    conn = await asyncpg.connect(url)
    try:
        campaign_id = await conn.fetchval(
            "INSERT INTO campaigns (name) VALUES ($1) RETURNING id", name
        )
        await conn.execute(
            "INSERT INTO contacts (campaign_id, external_id, phone1, state, status, closed_at) "
            "SELECT $1, 'crm-' || n, '+1202' || lpad(n::text, 7, '0'), 'not_connected', "
            "'failed', now() FROM generate_series(1, $2) AS n",
            campaign_id,
            CONTACTS,
        )
        first = await conn.fetchval(
            "SELECT min(id) FROM contacts WHERE campaign_id = $1", campaign_id
        )
        step = 200_000
        for start in range(0, attempts, step):
            count = min(step, attempts - start)
            await conn.execute(
                "INSERT INTO attempts (campaign_id, contact_id, channel, phone_slot, number, "
                "state, outcome, hangup_cause, hangup_cause_text, created_at, sent_at, "
                "answered_at, ended_at, step, agent) "
                "SELECT $1, $2 + n % $4, 'call', 1, '+1202' || lpad((n % $4)::text, 7, '0'), "
                "'ended', (ARRAY['answered','busy','no_answer','congestion'])[1 + n % 4], "
                "(ARRAY[16,17,19,34])[1 + n % 4], 'cause', "
                "now() - interval '30 days' + n * interval '1 second', "
                "now() - interval '30 days' + n * interval '1 second', "
                "CASE WHEN n % 4 = 0 THEN now() - interval '30 days' + n * interval '1 second' "
                "+ interval '5 seconds' END, "
                "now() - interval '30 days' + n * interval '1 second' + interval '40 seconds', "
                "0, CASE WHEN n % 4 = 0 THEN 'agent' || n % 20 END "
                "FROM generate_series($3::bigint, $3::bigint + $5 - 1) AS n",
                campaign_id,
                first,
                start,
                CONTACTS,
                count,
            )
        await conn.execute("ANALYZE attempts")
        return int(campaign_id)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def sample_rss(pid: int, stop: asyncio.Event) -> float:
    peak = 0.0
    while not stop.is_set():
        try:
            peak = max(peak, rss_mb(pid)[0])
        except (FileNotFoundError, ProcessLookupError, KeyError):
            break
        await asyncio.sleep(0.02)
    return peak


async def export(
    http: aiohttp.ClientSession, base: str, pid: int, campaign_id: int, fmt: str
) -> tuple[float, float, int]:
    """(seconds, the daemon's peak RSS MB while it streamed, bytes)."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, stop))
    started = time.monotonic()
    size = 0
    async with http.get(
        f"{base}/api/v1/campaigns/{campaign_id}/attempts/export", params={"format": fmt}
    ) as resp:
        if resp.status != 200:
            raise SystemExit(f"export failed: {resp.status} {await resp.text()}")
        async for chunk in resp.content.iter_chunked(256 * 1024):
            size += len(chunk)
    seconds = time.monotonic() - started
    stop.set()
    return seconds, await sampler, size


async def page_ms(
    http: aiohttp.ClientSession, base: str, campaign_id: int, after: str | None
) -> tuple[float, str | None]:
    params = {"limit": "1000", **({"after": after} if after else {})}
    started = time.monotonic()
    async with http.get(f"{base}/api/v1/campaigns/{campaign_id}/attempts", params=params) as resp:
        body = await resp.json()
    return (time.monotonic() - started) * 1000, body["next_after"]


async def run(args: argparse.Namespace) -> None:
    config = load_config()
    load_before = os.getloadavg()[0]
    async with fresh_database(config.database.url) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        started = time.monotonic()
        small = await fill(url, "small", args.small)
        large = await fill(url, "large", args.large)
        filled = time.monotonic() - started
        port = args.port or free_port()
        daemon = await start_daemon(
            ROOT, {"DIALER_DATABASE_URL": url, "DIALER_API_TOKENS": f"bench:{TOKEN}"}, port
        )
        try:
            base = f"http://127.0.0.1:{port}"
            timeout = aiohttp.ClientTimeout(total=3600)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
                await asyncio.sleep(1.0)
                idle = rss_mb(daemon.pid)[0]
                first_ms, _ = await page_ms(http, base, large, None)
                # The middle and the end, reached by their cursors (pages in between skipped
                # by reading the cursor of the attempt there).
                conn = await asyncpg.connect(url)
                try:
                    cursors = {}
                    for where in ("middle", "end"):
                        offset = args.large // 2 if where == "middle" else args.large - 1001
                        row = await conn.fetchrow(
                            "SELECT created_at, id FROM attempts WHERE campaign_id = $1 "
                            "ORDER BY created_at, id OFFSET $2 LIMIT 1",
                            large,
                            offset,
                        )
                        cursors[where] = encode_cursor(row["created_at"], row["id"])
                finally:
                    await conn.close()
                middle_ms, _ = await page_ms(http, base, large, cursors["middle"])
                end_ms, _ = await page_ms(http, base, large, cursors["end"])
                results = {}
                for fmt in ("csv", "xlsx"):
                    for name, campaign_id, rows in (
                        ("small", small, args.small),
                        ("large", large, args.large),
                    ):
                        seconds, peak, size = await export(http, base, daemon.pid, campaign_id, fmt)
                        results[(fmt, name)] = (seconds, peak, size, rows)
        finally:
            await stop_daemon(daemon)
    print(
        f"{args.small:,} and {args.large:,} attempts (filled in {filled:.0f} s), 2 CPUs, load "
        f"average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"  daemon idle RSS: {idle:.0f} MB")
    print(
        f"  a page of 1,000: first {first_ms:.0f} ms, middle {middle_ms:.0f} ms, "
        f"end {end_ms:.0f} ms"
    )
    summary: dict[str, object] = {
        "idle_rss_mb": round(idle),
        "page_ms": {"first": round(first_ms), "middle": round(middle_ms), "end": round(end_ms)},
    }
    for fmt in ("csv", "xlsx"):
        s_sec, s_peak, s_size, s_rows = results[(fmt, "small")]
        l_sec, l_peak, l_size, l_rows = results[(fmt, "large")]
        print(
            f"  {fmt:4} export: {s_rows:>9,} rows {s_sec:6.1f} s {s_rows / s_sec:9,.0f} rows/s "
            f"peak RSS {s_peak:5.0f} MB ({s_size / 1e6:.0f} MB file)"
        )
        print(
            f"  {fmt:4} export: {l_rows:>9,} rows {l_sec:6.1f} s {l_rows / l_sec:9,.0f} rows/s "
            f"peak RSS {l_peak:5.0f} MB ({l_size / 1e6:.0f} MB file)"
        )
        print(
            f"  {fmt:4} peak RSS growth over idle, large / small: "
            f"{(l_peak - idle):.0f} / {(s_peak - idle):.0f} MB, peak ratio {l_peak / s_peak:.2f}"
        )
        summary[fmt] = {
            "small_s": round(s_sec, 1),
            "large_s": round(l_sec, 1),
            "large_rows_per_s": round(l_rows / l_sec),
            "small_peak_mb": round(s_peak),
            "large_peak_mb": round(l_peak),
            "peak_ratio": round(l_peak / s_peak, 2),
            "large_file_mb": round(l_size / 1e6),
        }
    print("JSON " + json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=0, help="the daemon's (default: a free one)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
