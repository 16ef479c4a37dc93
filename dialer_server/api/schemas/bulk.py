"""Bulk operations on a campaign's contacts."""

from __future__ import annotations

from ...states import CONTACT_STATES, STATUSES
from .common import DATETIME, ID, INT, Schema, nullable, obj


def one_or_many(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "array", "minItems": 1, "maxItems": 100, "items": schema}]}


BULK_FILTER = obj(
    {
        "state": one_or_many({"type": "string", "enum": list(CONTACT_STATES)}),
        "status": one_or_many({"type": "string", "enum": list(STATUSES)}),
        "status_detail": one_or_many({"type": "string", "minLength": 1, "maxLength": 100}),
        "last_outcome": one_or_many({"type": "string", "pattern": "^[a-z][a-z_]{0,39}$"}),
        "last_attempt_before": DATETIME,
    }
)
BULK = obj(
    {
        "action": {"type": "string", "enum": ["recycle", "cancel", "move"]},
        "filter": BULK_FILTER,
        "to_campaign_id": {**ID, "maximum": 2**63 - 1},
        "dry_run": {"type": "boolean"},
        "at": DATETIME,
    },
    required=["action"],
)
BULK_RESULT = obj(
    {
        "action": {"type": "string", "enum": ["recycle", "cancel", "move"]},
        "matched": {**INT, "description": "The contacts the action changes (or would)"},
        "changed": INT,
        "dry_run": {"type": "boolean"},
        "to_campaign_id": nullable(ID),
    },
    required=["action", "matched", "changed", "dry_run", "to_campaign_id"],
)

COMPONENTS: dict[str, Schema] = {"BulkResult": BULK_RESULT}
