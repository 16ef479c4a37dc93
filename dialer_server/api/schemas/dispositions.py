"""The status dictionaries and the disposition of an answered call."""

from __future__ import annotations

from ...campaigns.dispositions import AGENT_PATTERN as DISPOSITION_AGENT
from ...campaigns.status_dictionary import FIELDS as ENTRY_FIELDS
from ...engine.disposition_effects import ACTIONS as DISPOSITION_ACTIONS
from ...engine.strategy import MAX_DELAY_S
from .common import DATETIME, ID, STRATEGY_NAME, TEXT, Schema, nullable, obj, ref_schema

_DISPOSITION_NAME = {"type": "string", "pattern": STRATEGY_NAME}
_DICTIONARY_FIELDS: dict[str, Schema] = {
    "name": {
        **_DISPOSITION_NAME,
        "description": "Unique in its dictionary: what agents send as status",
    },
    "label": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
    "description": nullable({"type": "string", "maxLength": 1000}),
    "action": {
        "type": "string",
        "enum": list(DISPOSITION_ACTIONS),
        "description": "What the system does with the contact (see the README)",
    },
    "status_detail": nullable(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "description": "success, declined, failed: the contact's status_detail "
            "(null: the name)",
        }
    ),
    "delay_s": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_DELAY_S,
        "description": "call_again: how long until the contact is due again",
    },
    "active": {"type": "boolean", "description": "Inactive: can no longer be set"},
    "hidden": {"type": "boolean", "description": "Not offered to agents; still accepted"},
    "auto_add": {
        "type": "boolean",
        "description": "Global entries: copied into every campaign created from now on",
    },
}
DICTIONARY_CREATE = obj(_DICTIONARY_FIELDS, required=["name", "action"])
CAMPAIGN_DICTIONARY_CREATE = obj(
    {
        **{k: v for k, v in _DICTIONARY_FIELDS.items() if k != "auto_add"},
        "from_global": {
            **_DISPOSITION_NAME,
            "description": "Copy this global entry; the other fields given override it",
        },
    },
    anyOf=[{"required": ["name", "action"]}, {"required": ["from_global"]}],
)
DICTIONARY_UPDATE = obj(_DICTIONARY_FIELDS, minProperties=1)
CAMPAIGN_DICTIONARY_UPDATE = obj(
    {k: v for k, v in _DICTIONARY_FIELDS.items() if k != "auto_add"}, minProperties=1
)
DISPOSITION_SET = obj(
    {
        "status": {
            **_DISPOSITION_NAME,
            "description": "The name of an active entry of the campaign's dictionary",
        },
        "agent": nullable(
            {
                "type": "string",
                "pattern": DISPOSITION_AGENT,
                "description": "The agent's queue member name (required for personal_callback)",
            }
        ),
        "callback_at": nullable(
            {
                **DATETIME,
                "description": "RFC 3339 with an offset, in the future: required for "
                "personal_callback and follow_up_auto, refused otherwise",
            }
        ),
        "note": nullable({"type": "string", "maxLength": 2000}),
    },
    required=["status"],
)


DICTIONARY_ENTRY_FIELDS = ("id", "campaign_id", *ENTRY_FIELDS, "created_at", "updated_at")
DICTIONARY_ENTRY = obj(
    {
        **_DICTIONARY_FIELDS,
        "id": ID,
        "campaign_id": nullable(ID),
        "label": TEXT,
        "created_at": DATETIME,
        "updated_at": DATETIME,
    },
    required=DICTIONARY_ENTRY_FIELDS,
)
DISPOSITION_FIELDS = (
    "attempt_id",
    "campaign_id",
    "contact_id",
    "name",
    "label",
    "action",
    "agent",
    "callback_at",
    "note",
    "created_at",
    "applied_at",
)
DISPOSITION = obj(
    {
        "attempt_id": {"type": "string", "format": "uuid"},
        "campaign_id": ID,
        "contact_id": ID,
        "name": TEXT,
        "label": TEXT,
        "action": {"type": "string", "enum": list(DISPOSITION_ACTIONS)},
        "agent": nullable(TEXT),
        "callback_at": nullable(DATETIME),
        "note": nullable(TEXT),
        "created_at": DATETIME,
        "applied_at": nullable(
            {**DATETIME, "description": "null while the call is still up: applied when it ends"}
        ),
    },
    required=DISPOSITION_FIELDS,
)
DISPOSITION_SET_RESULT = obj(
    {"disposition": ref_schema("Disposition"), "contact": ref_schema("Contact")},
    required=["disposition", "contact"],
)


COMPONENTS: dict[str, Schema] = {
    "DictionaryEntry": DICTIONARY_ENTRY,
    "Dictionary": obj(
        {"items": {"type": "array", "items": ref_schema("DictionaryEntry")}}, required=["items"]
    ),
    "Disposition": DISPOSITION,
    "DispositionSet": DISPOSITION_SET_RESULT,
}
