"""Call strategies, in the same schema as the YAML files."""

from __future__ import annotations

from ...engine.strategy import CALL_OUTCOMES, SMS_OUTCOMES
from .common import DATETIME, ID, INT, STRATEGY_NAME, TEXT, Schema, nullable, obj

_RULE = {
    "anyOf": [
        {"type": "string"},
        obj(
            {
                "action": {"type": "string"},
                "delay_s": INT,
                "state": TEXT,
                "status": TEXT,
                "status_detail": TEXT,
            }
        ),
    ]
}
_RULES = {
    "type": "object",
    # The outcomes a rule may be for: a call's (rejected: a 603 Decline;
    # trunk_error: the carrier refused us, retry only) or an SMS's.
    "propertyNames": {"enum": sorted({*CALL_OUTCOMES, *SMS_OUTCOMES})},
    "additionalProperties": _RULE,
}
_STRATEGY_KEYS: dict[str, Schema] = {
    "name": {"type": "string", "pattern": STRATEGY_NAME},
    "version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "description": nullable(TEXT),
    "caps": nullable(
        obj({"per_contact": INT, "per_phone": nullable(INT), "per_day": nullable(INT)})
    ),
    "sms": nullable(obj({"text": nullable(TEXT), "close_state": TEXT})),
    "on": nullable(_RULES),
    "attempts": {
        "type": "array",
        "minItems": 1,
        "items": obj(
            {
                "phone": INT,
                "sms": {"type": "boolean"},
                "ring_timeout_s": INT,
                "delay_s": INT,
                "max_tries": INT,
                "text": nullable(TEXT),
                "on": nullable(_RULES),
            }
        ),
    },
}
STRATEGY_DEFINITION = obj(
    _STRATEGY_KEYS,
    required=["name", "attempts"],
    description="A call strategy, as in the YAML files (strategies/README.md).",
)
STRATEGY_DEFINITION_UPDATE = obj(
    _STRATEGY_KEYS,
    required=["attempts"],
    description="A new version of the strategy named in the path; name and version may "
    "be left out.",
)


STRATEGY = obj(
    {
        "id": ID,
        "name": TEXT,
        "version": INT,
        "created_at": DATETIME,
        "definition": {"type": "object"},
    },
    required=["id", "name", "version", "created_at", "definition"],
)
STRATEGY_SUMMARY = obj(
    {
        "name": TEXT,
        "latest_version": INT,
        "versions": {"type": "array", "items": INT},
        "updated_at": DATETIME,
    },
    required=["name", "latest_version", "versions", "updated_at"],
)


COMPONENTS: dict[str, Schema] = {
    "Strategy": STRATEGY,
    "StrategySummary": STRATEGY_SUMMARY,
}
