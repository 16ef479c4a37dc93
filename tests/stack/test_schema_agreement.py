"""What the code defines once agrees with the schema's DEFAULTs and CHECK constraints.

The states, the campaign defaults and the name pattern each live in one place of
the package (states.py, engine/store.py, engine/strategy.py); the schema repeats
them as constraints PostgreSQL enforces. These tests read a migrated database
and compare, so neither side can change alone.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from dialer_server.campaigns.operations import SOUND_PATTERN
from dialer_server.engine.store import CAMPAIGN_DEFAULTS
from dialer_server.engine.strategy import NAME_JSON_PATTERN
from dialer_server.states import (
    ATTEMPT_STATES,
    CAMPAIGN_STATES,
    CONTACT_STATES,
    STATUSES,
)

pytestmark = pytest.mark.stack


async def _checks(conn: Any, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'c'",
        table,
    )
    return [row["def"] for row in rows]


async def _allowed(conn: Any, table: str, column: str) -> set[str]:
    """The values a CHECK (column IN (...)) allows, from the constraint's definition."""
    for definition in await _checks(conn, table):
        if re.match(rf"CHECK \(\({column} = ANY", definition):
            return set(re.findall(r"'([^']*)'::text", definition))
    raise AssertionError(f"no CHECK on {table}.{column}")


@pytest.mark.parametrize(
    ("table", "column", "values"),
    [
        ("contacts", "state", CONTACT_STATES),
        ("contacts", "status", STATUSES),
        ("campaigns", "state", CAMPAIGN_STATES),
        ("attempts", "state", ATTEMPT_STATES),
    ],
)
async def test_the_states_are_those_the_schema_allows(
    pool: Any, table: str, column: str, values: tuple[str, ...]
) -> None:
    async with pool.acquire() as conn:
        assert await _allowed(conn, table, column) == set(values)


async def test_a_campaign_inserted_bare_gets_the_code_s_defaults(pool: Any) -> None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("INSERT INTO campaigns (name) VALUES ('bare') RETURNING *")
    assert {key: row[key] for key in CAMPAIGN_DEFAULTS} == dict(CAMPAIGN_DEFAULTS)


@pytest.mark.parametrize("table", ["strategies", "dispositions"])
async def test_names_follow_the_one_name_pattern(pool: Any, table: str) -> None:
    async with pool.acquire() as conn:
        patterns = [
            match.group(1)
            for definition in await _checks(conn, table)
            if (match := re.search(r"name ~ '([^']*)'::text", definition))
        ]
    assert patterns == [NAME_JSON_PATTERN]


@pytest.mark.parametrize(
    "column", ["ivr_playback", "machine_message", "abandon_message", "recording_announcement"]
)
async def test_sound_names_follow_the_one_sound_pattern(pool: Any, column: str) -> None:
    async with pool.acquire() as conn:
        patterns = [
            match.group(1)
            for definition in await _checks(conn, "campaigns")
            if (match := re.search(rf"\({column} ~ '([^']*)'::text", definition))
        ]
    assert patterns == [SOUND_PATTERN]
