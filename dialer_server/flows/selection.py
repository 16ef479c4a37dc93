"""Which contacts of a campaign a request means: a filter, as manual moves take it.

Its fields are read as the bulk operations on contacts read theirs
(``contacts.bulk.filter_values``): each one value or a list of them (any of them
matches), absent or null meaning any. ``task`` is the contact's task (the flow's first task for
contacts that never moved); ``contact_ids`` names contacts outright.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..contacts.bulk import filter_values
from ..errors import InvalidInput
from ..states import CONTACT_STATES, STATUSES

FIELDS = ("task", "state", "status", "status_detail", "contact_ids")


@dataclasses.dataclass(frozen=True)
class Filter:
    tasks: tuple[str, ...] | None = None
    states: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    details: tuple[str, ...] | None = None
    contact_ids: tuple[int, ...] | None = None

    def args(self, start_task: str) -> tuple[Any, ...]:
        """The statement's parameters ($2-$7 of select_contacts)."""

        def listed(values: Sequence[Any] | None) -> list[Any] | None:
            return list(values) if values is not None else None

        return (
            listed(self.tasks),
            start_task,
            listed(self.states),
            listed(self.statuses),
            listed(self.details),
            listed(self.contact_ids),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in zip(
            FIELDS,
            (self.tasks, self.states, self.statuses, self.details, self.contact_ids),
            strict=True,
        ):
            if value is not None:
                out[key] = list(value)
        return out


def parse_filter(raw: Mapping[str, Any] | None) -> Filter:
    """A filter from a request's ``filter`` object; InvalidInput naming the field."""
    raw = raw or {}

    ids = raw.get("contact_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
    ):
        raise InvalidInput(
            "filter.contact_ids must be a non-empty list of contact ids",
            details=[{"field": "filter.contact_ids", "message": "invalid"}],
        )
    return Filter(
        tasks=filter_values(raw, "task"),
        states=filter_values(raw, "state", CONTACT_STATES),
        statuses=filter_values(raw, "status", STATUSES),
        details=filter_values(raw, "status_detail"),
        contact_ids=tuple(dict.fromkeys(ids)) if ids is not None else None,
    )
