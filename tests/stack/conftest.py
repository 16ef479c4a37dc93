"""Fixtures for the real local stack: PostgreSQL, Asterisk and sipp.

The stack starts once per test session (``scripts/stack start`` with
STACK_NAME=test, ports apart from the demo stack's) and stops at the end,
unless KEEP_STACK=1. Each test that needs a database gets its own, copied
from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer_server.config import AmiConfig, Config, DatabaseConfig, DialingConfig, HttpConfig

ROOT = Path(__file__).resolve().parents[2]
STACK_SCRIPT = ROOT / "scripts" / "stack"
STACK_NAME = os.environ.get("TEST_STACK_NAME", "test")


@dataclasses.dataclass(frozen=True)
class Stack:
    env: dict[str, str]

    @property
    def database_url(self) -> str:
        return self.env["DIALER_DATABASE_URL"]

    def ami_config(self, **overrides: Any) -> AmiConfig:
        values: dict[str, Any] = {
            "host": self.env["DIALER_AMI_HOST"],
            "port": int(self.env["DIALER_AMI_PORT"]),
            "username": self.env["DIALER_AMI_USERNAME"],
            "secret": self.env["DIALER_AMI_SECRET"],
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "ping_interval_s": 1.0,
        }
        values.update(overrides)
        return AmiConfig(**values)

    def run(self, command: str, *args: str) -> None:
        """Run a ``scripts/stack`` subcommand on this stack (asterisk-kill, pbx-start 2...)."""
        subprocess.run(
            [str(STACK_SCRIPT), command, *args],
            check=True,
            env=_stack_env(),
            capture_output=True,
            timeout=300,
        )


def _stack_env() -> dict[str, str]:
    env = dict(os.environ)
    env["STACK_NAME"] = STACK_NAME
    # A developer's shell may hold the demo stack's settings: not ours.
    for key in list(env):
        if key.startswith("DIALER_") or key == "DATABASE_URL":
            del env[key]
    if os.environ.get("TEST_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
    return env


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # A stack that was up before this session (KEEP_STACK=1 earlier, or another
    # run's) is left up at its end: only what this session started, it stops.
    was_up = (
        subprocess.run(
            [str(STACK_SCRIPT), "status"], env=_stack_env(), capture_output=True, timeout=60
        ).returncode
        == 0
    )
    proc = subprocess.run(
        [str(STACK_SCRIPT), "start"],
        env=_stack_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"the local stack did not start:\n{proc.stdout}\n{proc.stderr}")
    env_file = subprocess.run(
        [str(STACK_SCRIPT), "env"], env=_stack_env(), capture_output=True, text=True, check=True
    ).stdout
    env = {}
    for line in env_file.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    yield Stack(env)
    if os.environ.get("KEEP_STACK") != "1" and not was_up:
        subprocess.run(
            [str(STACK_SCRIPT), "stop"], env=_stack_env(), capture_output=True, timeout=120
        )


@pytest.fixture(scope="session")
async def template_db(stack: Stack) -> AsyncIterator[str]:
    """A database with every migration applied, copied for each test."""
    from dialer_server.db.migrations import migrate

    name = f"dialer_template_{uuid.uuid4().hex[:8]}"
    await _admin(stack, f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(_with_db(stack.database_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield name
    await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(stack: Stack, sql: str) -> None:
    # A connection per statement: tests restart PostgreSQL, so none is kept open.
    admin = await asyncpg.connect(_with_db(stack.database_url, "postgres"))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture
async def database_url(stack: Stack, template_db: str) -> AsyncIterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    name = f"dialer_test_{uuid.uuid4().hex[:12]}"
    await _admin(stack, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_db(stack.database_url, name)
    await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_database_url(stack: Stack) -> AsyncIterator[str]:
    """The URL of a fresh database with no schema at all."""
    name = f"dialer_empty_{uuid.uuid4().hex[:12]}"
    await _admin(stack, f'CREATE DATABASE "{name}"')
    yield _with_db(stack.database_url, name)
    await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def config(stack: Stack, database_url: str) -> Config:
    """Settings for a daemon on the test stack, with its own database and a free HTTP port."""
    return Config(
        database=DatabaseConfig(url=database_url),
        ami=stack.ami_config(),
        http=HttpConfig(host="127.0.0.1", port=0),
        dialing=DialingConfig(ring_timeout_s=15),
    )


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"
