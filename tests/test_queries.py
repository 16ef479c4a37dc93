from __future__ import annotations

import pytest

from dialer_server.db import _redact, load_queries, queries


def test_named_blocks_are_split_by_name() -> None:
    text = "-- header\n\n-- name: one\nSELECT 1;\n\n-- name: two\n-- a comment\nSELECT 2;\n"
    assert load_queries(text) == {"one": "SELECT 1;", "two": "-- a comment\nSELECT 2;"}


def test_a_name_defined_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        load_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_shipped_queries_load() -> None:
    assert "insert_attempt" in queries()


def test_passwords_never_reach_error_messages() -> None:
    assert _redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert _redact("postgresql://u@h/db") == "postgresql://u@h/db"
