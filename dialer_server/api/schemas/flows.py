"""Task flows, in the same form as their YAML files; a campaign's tasks, task log,
manual moves and export files."""

from __future__ import annotations

from ...engine.flow import END_STATUSES, TASK_TYPES
from ...states import CONTACT_STATES, STATUSES
from .common import DATETIME, ID, INT, STRATEGY_NAME, TEXT, Schema, nullable, obj

_TASK = obj(
    {
        "type": {"type": "string", "enum": list(TASK_TYPES)},
        "max_passes": nullable(INT),
        "text": TEXT,
        "phone": INT,
        "to": TEXT,
        "subject": TEXT,
        "body": TEXT,
        "max_tries": INT,
        "url": TEXT,
        "format": TEXT,
        "wait_s": INT,
        "campaign": TEXT,
    },
    required=["type"],
)
_RULE = obj(
    {
        "from": TEXT,
        "status": {"type": "string", "enum": list(END_STATUSES)},
        "status_detail": nullable(TEXT),
        "to": TEXT,
        "delay_s": INT,
    },
    required=["from", "status", "to"],
)
_FLOW_KEYS: dict[str, Schema] = {
    "name": {"type": "string", "pattern": STRATEGY_NAME},
    "version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "description": nullable(TEXT),
    "start": {"type": "string", "pattern": STRATEGY_NAME},
    "tasks": {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 50,
        "propertyNames": {"pattern": STRATEGY_NAME},
        "additionalProperties": _TASK,
    },
    "rules": nullable({"type": "array", "maxItems": 200, "items": _RULE}),
}
FLOW_DEFINITION = obj(
    _FLOW_KEYS,
    required=["name", "tasks"],
    description="A task flow, as in the YAML files (docs/flows.md).",
)
FLOW_DEFINITION_UPDATE = obj(
    _FLOW_KEYS,
    required=["tasks"],
    description="A new version of the flow named in the path; name and version may be left out.",
)
FLOW = obj(
    {
        "id": ID,
        "name": TEXT,
        "version": INT,
        "created_at": DATETIME,
        "definition": {"type": "object"},
    },
    required=["id", "name", "version", "created_at", "definition"],
)
FLOW_SUMMARY = obj(
    {
        "name": TEXT,
        "latest_version": INT,
        "versions": {"type": "array", "items": INT},
        "updated_at": DATETIME,
    },
    required=["name", "latest_version", "versions", "updated_at"],
)


def _one_or_many(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "array", "minItems": 1, "maxItems": 100, "items": schema}]}


MOVE_FILTER = obj(
    {
        "task": _one_or_many({"type": "string", "pattern": STRATEGY_NAME}),
        "state": _one_or_many({"type": "string", "enum": list(CONTACT_STATES)}),
        "status": _one_or_many({"type": "string", "enum": list(STATUSES)}),
        "status_detail": _one_or_many({"type": "string", "minLength": 1, "maxLength": 100}),
        "contact_ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10000,
            "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        },
    }
)
MOVE = obj(
    {
        "filter": MOVE_FILTER,
        "to_task": {"type": "string", "pattern": STRATEGY_NAME},
        "status": {"type": "string", "enum": list(STATUSES)},
        "status_detail": {"type": "string", "minLength": 1, "maxLength": 100},
        "delay_s": {"type": "integer", "minimum": 0, "maximum": 2592000},
        "dry_run": {"type": "boolean"},
    },
    description="Either to_task, or status (with an optional status_detail).",
)
MOVE_RESULT = obj(
    {"matched": INT, "moved": INT, "busy": INT, "dry_run": {"type": "boolean"}},
    required=["matched", "moved", "busy", "dry_run"],
)
TASK_SUMMARY = obj(
    {
        "name": TEXT,
        "type": nullable({"type": "string", "enum": list(TASK_TYPES)}),
        "max_passes": nullable(INT),
        "contacts": INT,
        "due": INT,
        "by_status": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": INT},
        },
    },
    required=["name", "type", "max_passes", "contacts", "due", "by_status"],
)
TASKS = obj(
    {
        "campaign_id": ID,
        "flow": nullable(obj({"id": ID, "name": TEXT, "version": INT})),
        "tasks": {"type": "array", "items": TASK_SUMMARY},
    },
    required=["campaign_id", "flow", "tasks"],
)
TASK_RUN = obj(
    {
        "id": ID,
        "contact_id": ID,
        "task": TEXT,
        "task_type": {"type": "string", "enum": list(TASK_TYPES)},
        "pass": INT,
        "try": INT,
        "idempotency_key": TEXT,
        "state": {"type": "string", "enum": ["running", "ended", "interrupted"]},
        "status": nullable({"type": "string", "enum": list(STATUSES)}),
        "status_detail": nullable(TEXT),
        "started_at": DATETIME,
        "ended_at": nullable(DATETIME),
        "error": nullable(TEXT),
        "moved_to": nullable(TEXT),
    },
    required=[
        "id",
        "contact_id",
        "task",
        "task_type",
        "pass",
        "try",
        "idempotency_key",
        "state",
        "status",
        "status_detail",
        "started_at",
        "ended_at",
        "error",
        "moved_to",
    ],
)
EXPORT_FILE = obj(
    {
        "task": TEXT,
        "day": {"type": "string", "format": "date"},
        "format": {"type": "string", "enum": ["csv", "xlsx"]},
        "rows": INT,
        "written_rows": INT,
        "written_at": nullable(DATETIME),
        "url": TEXT,
    },
    required=["task", "day", "format", "rows", "written_rows", "written_at", "url"],
)

COMPONENTS: dict[str, Schema] = {
    "Flow": FLOW,
    "FlowSummary": FLOW_SUMMARY,
    "Tasks": TASKS,
    "TaskRun": TASK_RUN,
    "MoveResult": MOVE_RESULT,
    "ExportFile": EXPORT_FILE,
}
