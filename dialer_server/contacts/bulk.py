"""Bulk operations on a campaign's contacts: recycle, cancel or move those a filter selects.

One transaction each: the contacts the filter selects (and the action may change) are
locked and noted in a temporary table, then changed with one statement; a dry run does
the same selection and stops there, so its count is what the action would change. The
filter: ``state``, ``status``, ``status_detail`` (each one value or a list),
``last_outcome`` (the outcome of the contact's latest attempt) and
``last_attempt_before`` (its latest attempt was made before that time). Erased contacts
are never selected.

- ``recycle``: reopen for a fresh strategy run: pending, due at ``at`` (now by
  default), the strategy's first action decided again, and its caps counting only the
  attempts from now on (``run_started_at``); in a campaign with a flow, from its first
  task. Not a contact in a call, nor one whose flow task (an email, a webhook...) runs
  now.
- ``cancel``: close as cancelled/failed/$cancelled, as one contact's cancel does: open
  contacts and those waiting for an SMS reply; a call in progress ends normally, and a
  flow task due later no longer runs.
- ``move``: into another campaign, which takes it from its strategy's start (a fresh
  run, from its flow's first task); its attempts and task log stay with the campaign
  they were made in. Not a contact in a call or a running flow task, and not when the
  other campaign has a contact with one of the same external ids (Conflict: nothing
  moves).

Whatever reopens a contact first holds its campaign open (``store.hold_campaign_open``),
as a single reschedule does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..campaigns import operations as campaigns
from ..db.queries import queries_of
from ..engine import store
from ..errors import Conflict, InvalidInput
from ..states import CONTACT_STATES, STATUSES

query = queries_of(__name__)

logger = logging.getLogger(__name__)

ACTIONS = ("recycle", "cancel", "move")
FILTER_FIELDS = ("state", "status", "status_detail", "last_outcome", "last_attempt_before")


@dataclasses.dataclass(frozen=True)
class Filter:
    """Which contacts of a campaign: None means any."""

    states: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    details: tuple[str, ...] | None = None
    last_outcomes: tuple[str, ...] | None = None
    last_attempt_before: datetime | None = None

    def args(self) -> tuple[Any, ...]:
        def listed(values: tuple[str, ...] | None) -> list[str] | None:
            return list(values) if values is not None else None

        return (
            listed(self.states),
            listed(self.statuses),
            listed(self.details),
            listed(self.last_outcomes),
            self.last_attempt_before,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("state", self.states),
            ("status", self.statuses),
            ("status_detail", self.details),
            ("last_outcome", self.last_outcomes),
        ):
            if value is not None:
                out[key] = list(value)
        if self.last_attempt_before is not None:
            out["last_attempt_before"] = self.last_attempt_before.isoformat()
        return out


def filter_values(
    raw: Mapping[str, Any], key: str, allowed: Sequence[str] | None = None
) -> tuple[str, ...] | None:
    """A filter field: one value or a non-empty list of them (duplicates dropped), each
    one of ``allowed`` when given; None when absent. The one reading of every bulk
    filter on contacts (flows' manual moves take theirs so too)."""
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


def parse_filter(raw: Mapping[str, Any], last_attempt_before: datetime | None) -> Filter:
    """A filter from the request's fields (the time already read); InvalidInput when a
    value is not one the field takes."""

    return Filter(
        states=filter_values(raw, "state", CONTACT_STATES),
        statuses=filter_values(raw, "status", STATUSES),
        details=filter_values(raw, "status_detail"),
        last_outcomes=filter_values(raw, "last_outcome"),
        last_attempt_before=last_attempt_before,
    )


@dataclasses.dataclass(frozen=True)
class Result:
    """What a bulk operation did, or (dry run) would do."""

    action: str
    matched: int
    changed: int
    dry_run: bool
    to_campaign_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def run(
    conn: Any,
    campaign_id: int,
    action: str,
    selection: Filter,
    *,
    dry_run: bool,
    at: datetime,
    to_campaign_id: int | None = None,
) -> Result:
    """Select the contacts and (unless ``dry_run``) apply ``action``, in the caller's
    transaction."""
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
    await campaigns.get(conn, campaign_id)
    if action == "move":
        if to_campaign_id is None:
            raise InvalidInput(
                "to_campaign_id is required to move contacts",
                details=[{"field": "to_campaign_id", "message": "required"}],
            )
        if to_campaign_id == campaign_id:
            raise InvalidInput(
                "to_campaign_id must be another campaign",
                details=[{"field": "to_campaign_id", "message": "the same campaign"}],
            )
        await campaigns.get(conn, to_campaign_id)
    elif to_campaign_id is not None:
        raise InvalidInput(
            "to_campaign_id is only for move",
            details=[{"field": "to_campaign_id", "message": "only for move"}],
        )
    await conn.execute(query("bulk_create_selection"))
    status = await conn.execute(
        query("bulk_select_contacts"), campaign_id, *selection.args(), action
    )
    matched = int(status.split()[-1])
    changed = 0
    if not dry_run and matched:
        changed = await _apply(conn, campaign_id, action, at, to_campaign_id)
        logger.info(
            "bulk %s of %d contacts",
            action,
            changed,
            extra={"action": "bulk", "campaign_id": campaign_id, "count": changed},
        )
    await conn.execute(query("bulk_drop_selection"))
    return Result(action, matched, changed, dry_run, to_campaign_id)


async def _apply(
    conn: Any, campaign_id: int, action: str, at: datetime, to_campaign_id: int | None
) -> int:
    if action == "cancel":
        status = await conn.execute(query("bulk_cancel"))
    elif action == "recycle":
        await store.hold_campaign_open(conn, campaign_id)
        status = await conn.execute(query("bulk_recycle"), at)
    else:
        assert to_campaign_id is not None
        await store.hold_campaign_open(conn, to_campaign_id)
        clashes = await conn.fetch(query("bulk_move_clashes"), to_campaign_id)
        if clashes:
            shown = ", ".join(repr(r["external_id"]) for r in clashes[:10])
            raise Conflict(
                f"campaign {to_campaign_id} already has contacts with external ids of these "
                f"contacts ({shown}{', ...' if len(clashes) > 10 else ''}): nothing was moved",
                code="external_id_conflict",
                details={"external_ids": [r["external_id"] for r in clashes[:100]]},
            )
        status = await conn.execute(query("bulk_move"), to_campaign_id)
    return int(status.split()[-1])
