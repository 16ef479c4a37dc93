"""Numbered SQL migrations, applied in order and recorded in schema_migrations.

Migration files are ``sql/migrations/NNNN_name.sql``. Running the migrator is
safe at any time and from several processes at once: an advisory lock
serialises runners, applied versions are skipped, and all pending migrations go
in one transaction, so a failure leaves the schema as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from importlib import resources
from typing import Any

import asyncpg

from ..errors import MigrationError

logger = logging.getLogger(__name__)

# Arbitrary, fixed: the key of the advisory lock every migrator takes.
_LOCK_KEY = 0x6469616C6572  # "dialer"
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    folder = resources.files("dialer_server.sql").joinpath("migrations")
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def migrate(conn: Any, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply the pending migrations; return those applied (empty when up to date)."""
    migrations = available_migrations() if migrations is None else migrations
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            applied = {r["version"]: r for r in rows}
            known = {m.version for m in migrations}
            if unknown := sorted(set(applied) - known):
                raise MigrationError(
                    f"the database has migrations this version does not know: {unknown} "
                    "(is an older dialer running against a newer database?)"
                )
            pending = []
            for m in migrations:
                if m.version in applied:
                    if applied[m.version]["checksum"] != m.checksum:
                        raise MigrationError(
                            f"migration {m.version:04d}_{m.name} was changed after it was "
                            "applied; add a new migration instead"
                        )
                    continue
                pending.append(m)
            for m in pending:
                logger.info(
                    "applying migration %04d_%s",
                    m.version,
                    m.name,
                    extra={"action": "migrate", "version": m.version},
                )
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            return pending
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration failed: {exc}") from None
