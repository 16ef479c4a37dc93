"""Migrations against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from importlib import resources
from typing import Any

import asyncpg
import pytest

from dialer_server.db.migrations import Migration, available_migrations, migrate
from dialer_server.errors import MigrationError

# What makes two schemas equal for us: columns, constraints, indexes, triggers
# and functions (the webhook outbox is filled by triggers).
_SNAPSHOT = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
       || coalesce(character_maximum_length::text, '') || ' ' || is_nullable || ' '
       || coalesce(column_default, '') || ' ' || is_generated
FROM information_schema.columns WHERE table_schema = 'public'
  AND table_name <> 'schema_migrations'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  AND conrelid::regclass::text <> 'schema_migrations'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
  AND tablename <> 'schema_migrations'
UNION ALL
SELECT 'trigger', pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'function', pg_get_functiondef(oid) FROM pg_proc
WHERE pronamespace = 'public'::regnamespace
ORDER BY 1, 2
"""


async def _snapshot(conn: Any) -> list[tuple[str, str]]:
    return [tuple(r) for r in await conn.fetch(_SNAPSHOT)]


async def test_migrating_twice_applies_nothing_the_second_time(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in available_migrations()]
        assert await migrate(conn) == []
        versions = await conn.fetchval(
            "SELECT array_agg(version ORDER BY version) FROM schema_migrations"
        )
        assert versions == [m.version for m in available_migrations()]
    finally:
        await conn.close()


async def test_migrations_give_the_schema_of_schema_sql(
    stack: Any, empty_database_url: str, database_url: str
) -> None:
    migrated = await asyncpg.connect(database_url)
    from_file = await asyncpg.connect(empty_database_url)
    try:
        sql = resources.files("dialer_server.sql").joinpath("schema.sql").read_text()
        await from_file.execute(sql)
        assert await _snapshot(migrated) == await _snapshot(from_file)
    finally:
        await migrated.close()
        await from_file.close()


async def test_concurrent_migrators_apply_each_migration_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sum(len(r) for r in results) == len(available_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        changed = [
            dataclasses.replace(m, sql=m.sql + "\n-- edited") for m in available_migrations()
        ]
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await migrate(conn, changed)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_the_schema_untouched(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        broken = [
            *available_migrations(),
            Migration(9998, "good", "CREATE TABLE t_ok (id int)"),
            Migration(9999, "bad", "CREATE TABLE t_bad (id nosuchtype)"),
        ]
        with pytest.raises(MigrationError, match="nosuchtype"):
            await migrate(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('t_ok')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") < 9998
    finally:
        await conn.close()


async def test_a_database_from_a_newer_dialer_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn)
    finally:
        await conn.close()
