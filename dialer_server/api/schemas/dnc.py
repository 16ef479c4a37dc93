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
DNC_REGISTRY_ENTRY = obj(
    {
        "registry": TEXT,
        "region": TEXT,
        "expires_at": nullable(DATETIME),
        "active": {"type": "boolean", "description": "Not expired: it stops calls"},
    },
    required=["registry", "region", "expires_at", "active"],
)
DNC_CHECK = obj(
    {
        "number": TEXT,
        "listed": {"type": "boolean"},
        "entries": {"type": "array", "items": {"$ref": "#/components/schemas/DncEntry"}},
        "registries": {"type": "array", "items": DNC_REGISTRY_ENTRY},
    },
    required=["number", "listed", "entries", "registries"],
)
DNC_REGISTRY = obj(
    {
        "name": TEXT,
        "region": TEXT,
        "entries": {"type": "integer"},
        "loaded_at": nullable(DATETIME),
        "last_mode": nullable({"type": "string", "enum": ["replace", "merge"]}),
        "last_file": nullable(TEXT),
        "created_at": DATETIME,
    },
    required=["name", "region", "entries", "loaded_at", "last_mode", "last_file"],
)
DNC_REGISTRY_LOAD = obj(
    {
        "registry": {"$ref": "#/components/schemas/DncRegistry"},
        "mode": {"type": "string", "enum": ["replace", "merge"]},
        "read": {"type": "integer", "description": "Lines holding a number, or meant to"},
        "loaded": {"type": "integer", "description": "Numbers stored"},
        "rejected": {"type": "integer", "description": "Lines that are no number"},
        "problems": {
            "type": "array",
            "maxItems": 20,
            "items": obj(
                {"line": {"type": "integer"}, "text": TEXT, "reason": TEXT},
                required=["line", "text", "reason"],
            ),
        },
        "seconds": {"type": "number"},
        "numbers_per_second": {"type": "integer"},
    },
    required=["registry", "mode", "read", "loaded", "rejected", "problems", "seconds"],
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
    "DncRegistry": DNC_REGISTRY,
    "DncRegistryList": obj(
        {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DncRegistry"}}},
        required=["items"],
    ),
    "DncRegistryLoad": DNC_REGISTRY_LOAD,
}
