"""JSON Schemas of the API's bodies, used both to validate requests and in /openapi.json.

One definition per shape, so the document cannot drift from what is checked.
Request schemas are self-contained (no $ref): they are validated as they are.
Response schemas live under components and are referenced by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..campaigns import ACTIONS, AGENT_MODES, MODES, SETTINGS, SOUND_PATTERN, STATES
from ..contacts import CONTACT_STATES, PARAM_FIELDS, PHONE_FIELDS, STATUSES
from ..dispositions import ACTIONS as DISPOSITION_ACTIONS
from ..dispositions import AGENT_PATTERN as DISPOSITION_AGENT
from ..status_dictionary import FIELDS as ENTRY_FIELDS
from ..strategy import MAX_DELAY_S

Schema = dict[str, Any]

STRATEGY_NAME = "^[a-z0-9][a-z0-9_-]{0,62}$"


def nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: Mapping[str, Schema], required: Sequence[str] = (), **extra: Any) -> Schema:
    """An object with exactly these properties (unknown fields are refused)."""
    schema: Schema = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
        **extra,
    }
    if required:
        schema["required"] = list(required)
    return schema


def ref_schema(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


TEXT = {"type": "string"}
INT = {"type": "integer"}
ID = {"type": "integer", "minimum": 1}
DATETIME = {"type": "string", "format": "date-time"}
NUMBER = {"type": "number"}

# --- requests -------------------------------------------------------------------------

CALLING_WINDOW = {
    "type": ["object", "null"],
    "properties": {
        "hours": {
            "type": "object",
            "propertyNames": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
            "additionalProperties": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$"},
            },
        },
        "blackout_dates": {"type": "array", "items": {"type": "string", "format": "date"}},
        "timezone": {"type": "string"},
    },
    "additionalProperties": False,
    "description": "Allowed hours per weekday in the contact's local time (a day left out "
    "allows no calls), blackout dates, and the zone of contacts whose zone is unknown. "
    "null: every day 08:00-21:00.",
}
MODE = {
    "type": "string",
    "enum": list(MODES),
    "description": "What happens once someone answers. automated (the default): the "
    "campaign's message (ivr_playback), then hang up; ivr: a prompt (ivr_playback) and one "
    f"key read. {', '.join(AGENT_MODES)}: the agent modes: answered calls go to the members "
    "of an Asterisk queue (queue); progressive places one call per free agent, power "
    "dial_ratio calls per free agent, predictive an adaptive ratio that keeps the abandon "
    "rate under abandon_cap.",
}
AMD = {
    "type": "boolean",
    "description": "Answering-machine detection on every answered call (default false): a "
    "machine is hung up (after machine_message) and the outcome is machine.",
}
# The pattern is the database's CHECK: a value passing it is stored, never a 500.
_SOUND = {"type": "string", "pattern": SOUND_PATTERN}
IVR_PLAYBACK = nullable(
    {
        **_SOUND,
        "description": "An Asterisk sound name (custom/offer; a&b plays two): the automated "
        "message or the ivr prompt. null: none.",
    }
)
MACHINE_MESSAGE = nullable(
    {**_SOUND, "description": "A sound left on answering machines (with amd). null: none."}
)
QUEUE = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_.-]{1,80}$",
    "description": "Agent modes: the Asterisk queue whose members take the answered calls "
    "(default dialer-agents).",
}
DIAL_RATIO = {
    "type": "number",
    "minimum": 1,
    "maximum": 5,
    "description": "power: calls placed per free agent (default 1.5).",
}
ABANDON_CAP = {
    "type": "number",
    "minimum": 0.0001,
    "maximum": 0.5,
    "description": "predictive: the abandon rate (abandoned / answered, rolling 24 h and 30 "
    "days) never to exceed; on a breach the ratio falls back to 1 (default 0.03).",
}
ABANDON_TARGET = {
    "type": "number",
    "minimum": 0.0001,
    "maximum": 0.5,
    "description": "predictive: the abandon rate steered for, at most abandon_cap (default 0.02).",
}
MAX_DIAL_RATIO = {
    "type": "number",
    "minimum": 1,
    "maximum": 5,
    "description": "predictive: the highest calls per free agent (default 3).",
}
ABANDON_MESSAGE = nullable(
    {
        **_SOUND,
        "description": "Agent modes: the sound an abandoned caller hears. null: the "
        "dialplan's own message.",
    }
)
AGENT_WAIT_S = {
    "type": "number",
    "minimum": 1,
    "maximum": 60,
    "description": "Agent modes: how long an answered caller may wait for an agent before "
    "the call counts as abandoned (default 2).",
}
_AGENT_SCHEMAS: dict[str, Schema] = {
    "queue": QUEUE,
    "dial_ratio": DIAL_RATIO,
    "abandon_cap": ABANDON_CAP,
    "abandon_target": ABANDON_TARGET,
    "max_dial_ratio": MAX_DIAL_RATIO,
    "abandon_message": ABANDON_MESSAGE,
    "agent_wait_s": AGENT_WAIT_S,
}
WEBHOOK_ATTEMPTS = {
    "type": "boolean",
    "description": "Send an attempt.result webhook for each attempt (default false).",
}
_CAMPAIGN_SETTINGS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
    "strategy": {"type": "string", "pattern": STRATEGY_NAME},
    "strategy_version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "trunk": nullable(
        {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,80}$", "description": "PJSIP endpoint"}
    ),
    "caller_id": nullable({"type": "string", "maxLength": 80}),
    "max_concurrent_calls": {"type": "integer", "minimum": 1, "maximum": 10000},
    "max_calls_per_second": {"type": "number", "minimum": 0.001, "maximum": 1000},
    "default_region": {"type": "string", "pattern": "^[A-Z]{2}$"},
    "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
    "calling_window": CALLING_WINDOW,
    "mode": MODE,
    "amd": AMD,
    "ivr_playback": IVR_PLAYBACK,
    "machine_message": MACHINE_MESSAGE,
    "webhook_attempts": WEBHOOK_ATTEMPTS,
    **_AGENT_SCHEMAS,
}

CAMPAIGN_CREATE = obj(_CAMPAIGN_SETTINGS, required=["name"])
CAMPAIGN_UPDATE = obj(_CAMPAIGN_SETTINGS, minProperties=1)

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
_RULES = {"type": "object", "additionalProperties": _RULE}
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

# Rows are checked for shape only: their content (numbers, lengths, unknown
# columns) is the import's to judge, row by row, so one bad row never refuses
# the others. Names starting with $ are the file readers' own.
_CELL = {"type": ["string", "integer", "null"]}
CONTACT_ROW = {
    "type": "object",
    "properties": {
        "external_id": _CELL,
        **{f: _CELL for f in PHONE_FIELDS},
        **{f: _CELL for f in PARAM_FIELDS},
        "timezone": _CELL,
    },
    "additionalProperties": _CELL,
    "propertyNames": {"pattern": "^[^$]"},
    "description": "One contact, with the columns of a CSV import; a row with another "
    "column is rejected (reported in the import report).",
}
MAX_BATCH = 100_000
CONTACTS_BATCH = obj(
    {
        "contacts": {"type": "array", "maxItems": MAX_BATCH, "items": CONTACT_ROW},
        "all_or_nothing": {"type": "boolean"},
    },
    required=["contacts"],
)

CONTACT_UPDATE = obj(
    {
        "phone1": {"type": "string", "minLength": 1, "maxLength": 28},
        **{f: nullable({"type": "string", "maxLength": 28}) for f in PHONE_FIELDS[1:]},
        **{f: nullable({"type": "string", "maxLength": 255}) for f in PARAM_FIELDS},
        "timezone": nullable({"type": "string", "minLength": 1, "maxLength": 64}),
    },
    minProperties=1,
)

RESCHEDULE = obj(
    {
        "step": nullable({"type": "integer", "minimum": 0, "maximum": 1000}),
        "at": nullable(DATETIME),
    },
    description="step: the strategy attempt (from 0) to continue at; null or absent: "
    "start over with the strategy's first action. at: when (default now).",
)

DNC_ADD = obj(
    {
        "numbers": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10000,
            "items": {"type": "string", "minLength": 1, "maxLength": 28},
        },
        "reason": nullable({"type": "string", "maxLength": 500}),
        "region": {"type": "string", "pattern": "^[A-Z]{2}$"},
    },
    required=["numbers"],
)

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


# --- responses ------------------------------------------------------------------------

ERROR = obj(
    {
        "error": obj(
            {"code": TEXT, "message": TEXT, "details": {}},
            required=["code", "message", "details"],
        )
    },
    required=["error"],
)

_COUNTS = obj(
    {
        "total": INT,
        "by_state": {"type": "object", "additionalProperties": INT},
        "by_status": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": INT},
        },
        "open_attempts": INT,
    },
    required=["total", "by_state", "by_status", "open_attempts"],
)

# What a campaign reads as: its identity and state, every setting the API may
# change (one list, so a new setting cannot be writable but unreadable), times.
CAMPAIGN_FIELDS = ("id", "name", "state", "strategy", *SETTINGS[1:], "created_at", "updated_at")
CAMPAIGN = obj(
    {
        "id": ID,
        "name": TEXT,
        "state": {"type": "string", "enum": list(STATES)},
        "strategy": nullable(
            obj({"id": ID, "name": TEXT, "version": INT}, required=["id", "name", "version"])
        ),
        "trunk": nullable(TEXT),
        "caller_id": nullable(TEXT),
        "max_concurrent_calls": INT,
        "max_calls_per_second": NUMBER,
        "default_region": TEXT,
        "timezone": TEXT,
        "calling_window": CALLING_WINDOW,
        "mode": MODE,
        "amd": AMD,
        "ivr_playback": IVR_PLAYBACK,
        "machine_message": MACHINE_MESSAGE,
        "webhook_attempts": WEBHOOK_ATTEMPTS,
        **_AGENT_SCHEMAS,
        "created_at": DATETIME,
        "updated_at": DATETIME,
        "contacts": _COUNTS,
    },
    required=CAMPAIGN_FIELDS,
)
TRANSITION = obj(
    {
        "campaign": {"$ref": "#/components/schemas/Campaign"},
        "changed": {"type": "boolean"},
        "previous_state": {"type": "string", "enum": list(STATES)},
        "action": {"type": "string", "enum": list(ACTIONS)},
    },
    required=["campaign", "changed", "previous_state", "action"],
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

CONTACT_FIELDS = (
    "id",
    "campaign_id",
    "external_id",
    *PHONE_FIELDS,
    *PARAM_FIELDS,
    "timezone",
    "state",
    "status",
    "status_detail",
    "next_attempt_at",
    "next_step",
    "next_channel",
    "next_phone_slot",
    "callback_agent",
    "closed_at",
    "created_at",
    "updated_at",
)
CONTACT = obj(
    {
        "id": ID,
        "campaign_id": ID,
        "external_id": nullable(TEXT),
        "phone1": TEXT,
        **{f: nullable(TEXT) for f in PHONE_FIELDS[1:]},
        **{f: nullable(TEXT) for f in PARAM_FIELDS},
        "timezone": nullable(TEXT),
        "state": {"type": "string", "enum": list(CONTACT_STATES)},
        "status": {"type": "string", "enum": list(STATUSES)},
        "status_detail": TEXT,
        "next_attempt_at": nullable(DATETIME),
        "next_step": nullable(INT),
        "next_channel": nullable({"type": "string", "enum": ["call", "sms"]}),
        "next_phone_slot": nullable(INT),
        "callback_agent": nullable(
            {"type": "string", "description": "A personal callback's owner ($follow_up_personal)"}
        ),
        "closed_at": nullable(DATETIME),
        "created_at": DATETIME,
        "updated_at": DATETIME,
    },
    required=CONTACT_FIELDS,
)

ATTEMPT_FIELDS = (
    "id",
    "step",
    "channel",
    "phone_slot",
    "number",
    "state",
    "outcome",
    "created_at",
    "sent_at",
    "answered_at",
    "ended_at",
    "hangup_cause",
    "hangup_cause_text",
    "detail",
    "amd_status",
    "ivr_digits",
    "agent",
    "agent_connected_at",
    "agent_wait_ms",
    "abandoned",
    "disposition",
)
ATTEMPT = obj(
    {
        "id": {"type": "string", "format": "uuid"},
        "step": nullable(INT),
        "channel": {"type": "string", "enum": ["call", "sms"]},
        "phone_slot": nullable(INT),
        "number": TEXT,
        "state": {"type": "string", "enum": ["created", "sent", "answered", "ended"]},
        "outcome": nullable(TEXT),
        "created_at": DATETIME,
        "sent_at": nullable(DATETIME),
        "answered_at": nullable(DATETIME),
        "ended_at": nullable(DATETIME),
        "hangup_cause": nullable(INT),
        "hangup_cause_text": nullable(TEXT),
        "detail": nullable(TEXT),
        # What the dialplan reported: AMD's verdict (MACHINE, HUMAN, NOTSURE; null
        # without AMD) and the keys pressed in the IVR ("" for none; null: no IVR).
        "amd_status": nullable(TEXT),
        "ivr_digits": nullable(TEXT),
        "agent": nullable(
            {**TEXT, "description": "Agent modes: the queue member who took the call."}
        ),
        "agent_connected_at": nullable(DATETIME),
        "agent_wait_ms": nullable(
            {**INT, "description": "Agent modes: how long the answered caller waited."}
        ),
        "abandoned": nullable(
            {
                "type": "boolean",
                "description": "Agent modes: true when no agent took the answered call in "
                "time (outcome abandoned), false when one did; null otherwise.",
            }
        ),
        "disposition": nullable(
            {"type": "string", "description": "The status an agent set for the call"}
        ),
    },
    required=ATTEMPT_FIELDS,
)

AGENT_STATS = obj(
    {
        "campaign_id": ID,
        "from": DATETIME,
        "to": DATETIME,
        "hours": {"type": "number", "description": "to - from, in hours."},
        "agents": {
            "type": "integer",
            "description": "Agents counted for agent-hours: the agents query parameter, "
            "else the distinct agents who took a call in the range.",
        },
        "agent_hours": NUMBER,
        "calls": {"type": "integer", "description": "Calls placed in the range."},
        "answered": {
            "type": "integer",
            "description": "Calls answered by a person: connected to an agent or abandoned.",
        },
        "connected": {"type": "integer", "description": "Calls an agent took."},
        "abandoned": INT,
        "abandon_rate": {"type": "number", "description": "abandoned / answered (0 with none)."},
        "talk_s": {
            "type": "number",
            "description": "Agent talk time: from the agent taking the call to its hangup, summed.",
        },
        "talk_min_per_agent_hour": NUMBER,
        "calls_per_agent_hour": {
            "type": "number",
            "description": "Connected calls per agent-hour.",
        },
        "occupancy": {
            "type": "number",
            "description": "talk time / agent time (talk_min_per_agent_hour / 60).",
        },
        "by_agent": {
            "type": "array",
            "items": obj(
                {"agent": TEXT, "calls": INT, "talk_s": NUMBER},
                required=["agent", "calls", "talk_s"],
            ),
        },
    },
    required=[
        "campaign_id",
        "from",
        "to",
        "hours",
        "agents",
        "agent_hours",
        "calls",
        "answered",
        "connected",
        "abandoned",
        "abandon_rate",
        "talk_s",
        "talk_min_per_agent_hour",
        "calls_per_agent_hour",
        "occupancy",
        "by_agent",
    ],
)

IMPORT_REPORT = obj(
    {
        "received": INT,
        "inserted": INT,
        "updated": INT,
        "stored": {"type": "boolean"},
        "rejected_rows": INT,
        "rejected": {
            "type": "array",
            "items": obj(
                {"row": INT, "field": nullable(TEXT), "reason": TEXT},
                required=["row", "field", "reason"],
            ),
        },
    },
    required=["received", "inserted", "updated", "stored", "rejected", "rejected_rows"],
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


def page_of(name: str) -> Schema:
    return obj(
        {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "next_after": nullable(INT),
        },
        required=["items", "next_after"],
    )


COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "Campaign": CAMPAIGN,
    "CampaignPage": page_of("Campaign"),
    "Transition": TRANSITION,
    "AgentStats": AGENT_STATS,
    "Strategy": STRATEGY,
    "StrategySummary": STRATEGY_SUMMARY,
    "Contact": CONTACT,
    "ContactPage": page_of("Contact"),
    "Attempt": ATTEMPT,
    "ImportReport": IMPORT_REPORT,
    "DncEntry": DNC_ENTRY,
    "DncPage": page_of("DncEntry"),
    "DncCheck": DNC_CHECK,
    "DncAdded": DNC_ADDED,
    "DncRemoved": DNC_REMOVED,
    "DictionaryEntry": DICTIONARY_ENTRY,
    "Dictionary": obj(
        {"items": {"type": "array", "items": ref_schema("DictionaryEntry")}}, required=["items"]
    ),
    "Disposition": DISPOSITION,
    "DispositionSet": DISPOSITION_SET_RESULT,
}

# --- OpenAPI fragments --------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: Schema, description: str = "", required: bool = True) -> Schema:
    body: Schema = {"required": required, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def ok(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def linked(response: Schema, targets: Mapping[str, Mapping[str, str]]) -> Schema:
    """``response`` with OpenAPI links: operationId -> {parameter: runtime expression}.

    Clients (and schemathesis' stateful phase) follow them from a created resource
    to the operations that use it."""
    links = {
        f"to_{op}": {"operationId": op, "parameters": dict(params)}
        for op, params in targets.items()
    }
    return {**response, "links": links}


def no_content(description: str = "Done") -> Schema:
    return {"description": description}


ERROR_DESCRIPTIONS = {
    "400": "Malformed request (the body is not JSON)",
    "401": "No bearer token, or an unknown one",
    "403": "The token's scope does not allow this",
    "404": "No such resource",
    "409": "The resource's state does not allow this",
    "413": "The body is too large",
    "415": "The body's content type is not accepted",
    "422": "Invalid data: details names each bad field",
    "503": "The database is unavailable",
}


def errors(*statuses: str) -> dict[str, Schema]:
    return {status: {"$ref": f"#/components/responses/E{status}"} for status in statuses}


def error_components() -> dict[str, Schema]:
    return {
        f"E{status}": {
            "description": description,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status, description in ERROR_DESCRIPTIONS.items()
    }


def path_param(name: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        param["description"] = description
    return param


def query_param(name: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


CAMPAIGN_ID = path_param("campaign_id", ID)
CONTACT_ID = path_param("contact_id", ID)
PAGE_PARAMS = (
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    query_param(
        "after",
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "Only items with an id above this (the next_after of the previous page)",
    ),
)
