"""Which contacts of a campaign a request means: a filter, as manual moves take it.

Kept apart so that it can become the one filter of every bulk operation on
contacts: each field is one value or a list of them (any of them matches), absent
or null means any. ``task`` is the contact's task (the flow's first task for
contacts that never moved); ``contact_ids`` names contacts outright.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

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

    def values(key: str, allowed: Sequence[str] | None = None) -> tuple[str, ...] | None:
        value = raw.get(key)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not items or not all(isinstance(v, str) and v for v in items):
            raise InvalidInput(
                f"filter.{key} must be a value or a non-empty list of them",
                details=[{"field": f"filter.{key}", "message": "invalid"}],
            )
        if allowed is not None and (bad := sorted(set(items) - set(allowed))):
            raise InvalidInput(
                f"filter.{key}: unknown {', '.join(map(repr, bad))} (known: {', '.join(allowed)})",
                details=[{"field": f"filter.{key}", "message": "unknown value"}],
            )
        return tuple(dict.fromkeys(items))

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
        tasks=values("task"),
        states=values("state", CONTACT_STATES),
        statuses=values("status", STATUSES),
        details=values("status_detail"),
        contact_ids=tuple(dict.fromkeys(ids)) if ids is not None else None,
    )
