"""A campaign's caller-ID pool."""

from __future__ import annotations

from .common import DATETIME, INT, TEXT, Schema, nullable, obj

POOL_PUT = obj(
    {
        "numbers": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "items": {"type": "string", "minLength": 2, "maxLength": 28, "pattern": r"^\s*\+"},
        },
        "rotation": {"type": "string", "enum": ["round_robin", "least_used"]},
        "daily_cap": nullable({"type": "integer", "minimum": 1, "maximum": 1000000}),
        "local_presence": {"type": "boolean"},
    },
    required=["numbers"],
)
POOL = obj(
    {
        "rotation": {"type": "string", "enum": ["round_robin", "least_used"]},
        "daily_cap": nullable(INT),
        "local_presence": {"type": "boolean"},
        "updated_at": DATETIME,
        "today": {"type": "string", "format": "date", "description": "The campaign's day"},
        "numbers": {
            "type": "array",
            "items": obj(
                {
                    "number": TEXT,
                    "area_prefix": TEXT,
                    "calls_today": INT,
                    "calls": INT,
                    "last_used_at": nullable(DATETIME),
                },
                required=["number", "area_prefix", "calls_today", "calls", "last_used_at"],
            ),
        },
    },
    required=["rotation", "daily_cap", "local_presence", "numbers"],
)

COMPONENTS: dict[str, Schema] = {"CallerIdPool": POOL}
