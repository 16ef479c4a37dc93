"""Contact import throughput: the bulk path beside bare phonenumbers and row-by-row INSERT.

Generates ROWS contacts (2 phones each, every number distinct, an external id, two
params) as one CSV file in memory, then measures on this machine, in one run:

- bare phonenumbers: parse + is_valid_number of the file's phone numbers in a plain loop
  (no CSV, no database): the floor of any importer that validates numbers;
- the import: ``import_file`` of the whole file (written to a temporary file first) into a
  fresh database, as ``dialer-server import`` does: read a chunk at a time, validated,
  COPY, upsert, commit (validation in one process per CPU, as the import chooses for big
  files; ``--workers 0``: a thread);
- row-by-row INSERT: the same validation, then one INSERT per row, each its own
  transaction (``store.insert_contact``), on the first SAMPLE rows (the full file would
  take too long: the rate is what matters).

Prints the rates and the ratios import/bare (target >= 0.8) and import/row-by-row
(target >= 10).

    python bench/import_contacts.py [--rows N] [--sample N] [--workers N]
    (needs PostgreSQL; scripts/bench-import starts its own stack and runs this)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import phonenumbers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer_server.config import load_config  # noqa: E402
from dialer_server.contacts.files import read_csv  # noqa: E402
from dialer_server.contacts.importer import import_file  # noqa: E402
from dialer_server.contacts.rows import RowValidator  # noqa: E402
from dialer_server.db.migrations import migrate  # noqa: E402
from dialer_server.engine import store  # noqa: E402
from dialer_server.engine.strategy import parse_strategy, strategy_to_dict  # noqa: E402

ONE_CALL = {
    "name": "bench-import",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
# US area codes: with these exchanges every number below is valid and distinct.
AREAS = (201, 202, 212, 213, 303, 305, 312, 404, 415, 503, 512, 602, 617, 702, 713, 801)


def generate(count: int) -> tuple[bytes, list[str]]:
    """The CSV file and its phone numbers, in the formats CRMs export."""
    lines = ["external_id,phone1,phone2,param1,param2,timezone"]
    numbers = []
    for i in range(count):
        area = AREAS[i % len(AREAS)]
        rest = i // len(AREAS)
        exchange, line = 200 + rest // 10000 % 800, rest % 10000
        phone1 = f"+1 ({area}) {exchange}-{line:04d}"
        area2 = AREAS[(i + 7) % len(AREAS)]
        exchange2 = exchange + 400  # phone2s never repeat a phone1
        phone2 = f"{area2}{exchange2}{line:04d}" if i % 2 else f"{area2}-{exchange2}-{line:04d}"
        zone = "America/New_York" if i % 3 == 0 else ""
        lines.append(f"crm-{i},{phone1},{phone2},Customer {i},plan-{i % 7},{zone}")
        numbers += (phone1, phone2)
    return ("\n".join(lines) + "\n").encode(), numbers


def bare_rate(numbers: list[str], region: str) -> float:
    """Numbers parsed and validated per second by phonenumbers alone."""
    parse, is_valid = phonenumbers.parse, phonenumbers.is_valid_number
    started = time.perf_counter()
    valid = 0
    for number in numbers:
        if is_valid(parse(number, region)):
            valid += 1
    elapsed = time.perf_counter() - started
    if valid != len(numbers):
        raise SystemExit(f"bare: only {valid} of {len(numbers)} generated numbers are valid")
    return len(numbers) / elapsed


async def row_by_row(conn: asyncpg.Connection, campaign_id: int, data: bytes, count: int) -> float:
    """Validate then INSERT one row at a time (autocommit); rows per second."""
    rows = read_csv(data)[:count]
    validator = RowValidator("US")
    started = time.perf_counter()
    for position, row in enumerate(rows, 1):
        batch = validator.validate([row], position)
        for values in batch.records:
            await store.insert_contact(
                conn,
                campaign_id,
                external_id=values[0],
                phones=values[1:6],
                params=values[6:18],
                timezone=values[18],
            )
    return len(rows) / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="validation processes (default: the import's own choice; 0: a thread)",
    )
    args = parser.parse_args()

    url = load_config().database.url
    server, _, _ = url.rpartition("/")
    name = f"dialer_bench_import_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(f"{server}/{name}")
    try:
        await migrate(conn)
        strategy = parse_strategy(ONE_CALL)
        strategy_id, _ = await store.save_strategy_version(
            conn, strategy.name, strategy.version, strategy_to_dict(strategy)
        )
        bulk_campaign = await store.create_campaign(conn, "bulk", strategy_id=strategy_id)
        row_campaign = await store.create_campaign(conn, "row-by-row", strategy_id=strategy_id)

        data, numbers = generate(args.rows)
        print(
            f"{args.rows} contacts, 2 phones each ({len(data) / 1e6:.0f} MB of CSV); "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        bare = bare_rate(numbers, "US") / 2
        print(f"  bare phonenumbers parse+validate : {bare:9,.0f} rows/s", flush=True)

        with tempfile.NamedTemporaryFile(suffix=".csv") as file:
            file.write(data)
            file.flush()
            started = time.perf_counter()
            report = await import_file(
                conn,
                bulk_campaign,
                "bench.csv",
                Path(file.name),
                default_region="US",
                workers=args.workers,
                source="cli",
            )
            elapsed = time.perf_counter() - started
        if report.inserted != args.rows:
            raise SystemExit(
                f"import: {report.inserted} of {args.rows} stored: {report.rejected[:3]}"
            )
        bulk = args.rows / elapsed
        print(
            f"  import (import_file, as the CLI)  : {bulk:9,.0f} rows/s ({elapsed:.1f} s)",
            flush=True,
        )

        single = await row_by_row(conn, row_campaign, data, args.sample)
        print(
            f"  row-by-row INSERT ({args.sample} rows)  : {single:9,.0f} rows/s",
            flush=True,
        )
        print(f"  ratio import/bare                 : {bulk / bare:9.2f}   (target >= 0.8)")
        print(f"  ratio import/row-by-row           : {bulk / single:9.2f}   (target >= 10)")
        print(f"  load average at the end           : {os.getloadavg()[0]:9.1f}")
    finally:
        await conn.close()
        admin = await asyncpg.connect(f"{server}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
