"""Bulk operations' filter and dedup's options: what is refused before any query runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialer_server.contacts.bulk import Filter, parse_filter
from dialer_server.contacts.importer import Dedup
from dialer_server.errors import InvalidInput


def test_a_filter_takes_one_value_or_a_list_of_each() -> None:
    when = datetime(2025, 6, 1, tzinfo=UTC)
    selection = parse_filter(
        {"state": "not_connected", "status": ["failed", "failed"], "last_outcome": ["busy"]},
        when,
    )
    assert selection == Filter(
        states=("not_connected",),
        statuses=("failed",),
        details=None,
        last_outcomes=("busy",),
        last_attempt_before=when,
    )
    assert selection.args() == (["not_connected"], ["failed"], None, ["busy"], when)
    assert selection.to_json() == {
        "state": ["not_connected"],
        "status": ["failed"],
        "last_outcome": ["busy"],
        "last_attempt_before": "2025-06-01T00:00:00+00:00",
    }
    assert parse_filter({}, None).args() == (None, None, None, None, None)


@pytest.mark.parametrize(
    "raw",
    [
        {"state": "sleeping"},
        {"status": ["open", "closed"]},
        {"state": []},
        {"status_detail": [""]},
        {"last_outcome": [1]},
    ],
)
def test_a_filter_value_no_field_takes_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        parse_filter(raw, None)


def test_dedup_options() -> None:
    assert not Dedup().on and Dedup().options() is None
    assert Dedup("running", "skip").options() == {"dedup": "running", "duplicates": "skip"}
    with pytest.raises(ValueError):
        Dedup("everywhere")
    with pytest.raises(ValueError):
        Dedup("campaign", "drop")
