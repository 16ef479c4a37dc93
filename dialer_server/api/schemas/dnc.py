"""Do-not-call lists, global and per campaign."""

from __future__ import annotations

from .common import DATETIME, ID, REGION, TEXT, Schema, nullable, obj, page_of

DNC_ADD = obj(
    {
        "numbers": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10000,
            "items": {"type": "string", "minLength": 1, "maxLength": 28},
        },
        "reason": nullable({"type": "string", "maxLength": 500}),
        "region": REGION,
    },
    required=["numbers"],
)


DNC_ENTRY = obj(
    {
        "id": ID,
        "campaign_id": nullable(ID),
        "number": TEXT,
        "reason": nullable(TEXT),
        "created_at": DATETIME,
    },
    required=["campaign_id", "number", "reason", "created_at"],
)
DNC_CHECK = obj(
    {
        "number": TEXT,
        "listed": {"type": "boolean"},
        "entries": {"type": "array", "items": {"$ref": "#/components/schemas/DncEntry"}},
    },
    required=["number", "listed", "entries"],
)
DNC_ADDED = obj(
    {"numbers": {"type": "array", "items": TEXT}, "added": {"type": "array", "items": TEXT}},
    required=["numbers", "added"],
)
DNC_REMOVED = obj({"number": TEXT, "removed": {"type": "boolean"}}, required=["number", "removed"])


COMPONENTS: dict[str, Schema] = {
    "DncEntry": DNC_ENTRY,
    "DncPage": page_of("DncEntry"),
    "DncCheck": DNC_CHECK,
    "DncAdded": DNC_ADDED,
    "DncRemoved": DNC_REMOVED,
}
