"""Named SQL: each module runs the queries of its own file, and only those."""

from __future__ import annotations

import importlib
import re
from collections import Counter
from pathlib import Path

import pytest

from dialer_server.db.pool import redact_url
from dialer_server.db.queries import load_queries, module_queries, queries_of, query_files

PACKAGE = Path(__file__).resolve().parents[2] / "dialer_server"
_RUNS = re.compile(r'\bquery\("(\w+)"\)')


def _modules_running_queries() -> dict[str, str]:
    """Every module of the package that runs a named query: {module: its source}."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if re.search(r"^query = queries_of\(__name__\)$", source, re.MULTILINE):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            found[".".join(parts)] = source
    return found


def test_named_blocks_are_split_by_name() -> None:
    text = "-- header\n\n-- name: one\nSELECT 1;\n\n-- name: two\n-- a comment\nSELECT 2;\n"
    assert load_queries(text) == {"one": "SELECT 1;", "two": "-- a comment\nSELECT 2;"}


def test_a_name_defined_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        load_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_a_module_reads_its_own_file_and_names_it_when_a_query_is_missing() -> None:
    query = queries_of("dialer_server.engine.claims")
    assert "FOR UPDATE SKIP LOCKED" in query("claim_due_contacts")
    with pytest.raises(KeyError, match=r"engine/claims\.sql"):
        query("get_contact")  # the store's, not the claim's


def test_every_query_file_belongs_to_a_module_that_runs_it() -> None:
    runners = _modules_running_queries()
    assert set(query_files()) == set(runners)
    for module in runners:
        importlib.import_module(module)


def test_each_module_runs_only_queries_of_its_own_file_and_every_one_of_them() -> None:
    for module, source in _modules_running_queries().items():
        defined = set(module_queries(module))
        run = set(_RUNS.findall(source))
        assert run <= defined, f"{module} runs queries of another file: {sorted(run - defined)}"
        assert defined <= run, f"{module}'s file has queries it never runs: {defined - run}"


def test_query_names_are_unique_across_files() -> None:
    names = Counter(name for module in query_files() for name in module_queries(module))
    assert [name for name, n in names.items() if n > 1] == []


def test_passwords_never_reach_error_messages() -> None:
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_tokens_in_a_url_s_query_or_fragment_never_reach_a_message() -> None:
    assert (
        redact_url("https://crm:pw@crm.example.com/hooks?token=tok-123&team=7&flag#sig=abc")
        == "https://crm:***@crm.example.com/hooks?token=***&team=***&***#***"
    )
    assert (
        redact_url("postgresql://u@h:5432/db?password=secret&sslmode=require")
        == "postgresql://u@h:5432/db?password=***&sslmode=***"
    )
    assert redact_url("https://crm.example.com/hooks") == "https://crm.example.com/hooks"
    # Characters a password should have escaped, and a port, are handled.
    assert redact_url("postgresql://u:p/a@ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("https://h:8443/x?a=b@c") == "https://h:8443/x?a=***"


# The modules whose statements run on a connection of their own, never a pooled one.
_OWN_CONNECTION = {"dialer_server.engine.instance", "dialer_server.engine.pacing_locks"}
_SESSION_STATE = re.compile(
    # A session lock, a LISTEN, a session setting (a statement of its own, or set_config
    # not local), a temporary table kept past its transaction, a cursor that outlives
    # its transaction.
    r"pg_(try_)?advisory_lock(_shared)?\s*\(|\bLISTEN\b|(^|;)\s*SET\s|(^|;)\s*RESET\s"
    r"|set_config\s*\([^)]*,\s*false\s*\)|\bCREATE\s+TEMP(?![^;]*ON\s+COMMIT\s+DROP)|\bWITH\s+HOLD\b",
    re.IGNORECASE,
)


def test_pooled_connections_keep_no_session_state() -> None:
    # The pool skips asyncpg's reset on release (db/pool.py): a query leaving a
    # session lock, a LISTEN, a session setting or a held cursor behind would leak
    # it to the connection's next user.
    for module in _modules_running_queries():
        if module in _OWN_CONNECTION:
            continue
        for name, text in module_queries(module).items():
            code = " ".join(line.split("--")[0] for line in text.splitlines()).strip()
            assert not _SESSION_STATE.search(code), f"{module}: {name} leaves session state"
