"""Contacts: import rows and reports, reading and changing them, their attempts."""

from __future__ import annotations

from ...contacts.operations import PARAM_FIELDS, PHONE_FIELDS
from ...states import CONTACT_STATES, STATUSES
from .common import DATETIME, ID, INT, TEXT, Schema, nullable, obj, page_of

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
# A JSON batch's contacts at most: bigger imports go as files (read as they stream).
MAX_BATCH = 10_000
# Dedup on import (contacts/importer.py's Dedup).
DEDUP = {
    "type": "string",
    "enum": ["off", "campaign", "running"],
    "description": "Look for duplicates by phone number: off, in the campaign, or in the "
    "campaign and every running campaign",
}
DUPLICATES = {
    "type": "string",
    "enum": ["keep", "skip"],
    "description": "A duplicate is stored as failed/$duplicate (keep) or not stored (skip)",
}

CONTACTS_BATCH = obj(
    {
        "contacts": {"type": "array", "maxItems": MAX_BATCH, "items": CONTACT_ROW},
        "all_or_nothing": {"type": "boolean"},
        "dedup": DEDUP,
        "duplicates": DUPLICATES,
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
    "task",
    "task_due_at",
    "closed_at",
    "created_at",
    "updated_at",
    "erased_at",
)
CONTACT = obj(
    {
        "id": ID,
        "campaign_id": ID,
        "external_id": nullable(TEXT),
        "phone1": nullable({**TEXT, "description": "null only once the contact was erased"}),
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
        "task": nullable(
            {
                "type": "string",
                "description": "Its task in the campaign's flow (docs/flows.md); null: the "
                "flow's first task, or the campaign has no flow",
            }
        ),
        "task_due_at": nullable(
            {**DATETIME, "description": "When its task (not a call) is due to run"}
        ),
        "closed_at": nullable(DATETIME),
        "created_at": DATETIME,
        "updated_at": DATETIME,
        "erased_at": nullable(
            {**DATETIME, "description": "When the person was erased (GDPR): no data is left"}
        ),
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
    "sip_code",
    "result_source",
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
        "number": nullable({**TEXT, "description": "null once its contact was erased"}),
        "state": {"type": "string", "enum": ["created", "sent", "answered", "ended"]},
        "outcome": nullable(TEXT),
        "created_at": DATETIME,
        "sent_at": nullable(
            {**DATETIME, "description": "When the Originate went out (never after ended_at)."}
        ),
        "answered_at": nullable(DATETIME),
        "ended_at": nullable(DATETIME),
        "hangup_cause": nullable(INT),
        "hangup_cause_text": nullable(TEXT),
        "sip_code": nullable(
            {
                **INT,
                "description": "The far end's last SIP status when Asterisk told it: "
                "603 (outcome rejected), 401, 402, 403, 407 (trunk_error), 486...",
            }
        ),
        "result_source": nullable(
            {
                "type": "string",
                "enum": ["live", "pbx", "lost"],
                "description": "How a call's result was learned: live (the call's own "
                "AMI events), pbx (the record the PBX kept of a call whose end no daemon "
                "saw, read back by reconciliation), lost (neither: the PBX lost the call; "
                "the outcome is dangling, or answered if it was seen answered). null for "
                "SMS and open attempts.",
            }
        ),
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


IMPORT_REPORT = obj(
    {
        "import_id": {**ID, "description": "Names the import's report"},
        "received": INT,
        "inserted": INT,
        "updated": INT,
        "stored": {"type": "boolean"},
        "rejected_rows": INT,
        "problems": {**INT, "description": "Every problem of every rejected row"},
        "problems_listed": {**INT, "description": "Those the report lists (the first 1,000,000)"},
        "rejected": {
            "type": "array",
            "maxItems": 100,
            "description": "The first 100 problems, in row order: the report has them all",
            "items": obj(
                {"row": INT, "field": nullable(TEXT), "reason": TEXT},
                required=["row", "field", "reason"],
            ),
        },
        "report": {
            "type": "string",
            "description": "Where the report is: GET it for every problem as CSV",
        },
        "duplicates": {**INT, "description": "Rows dedup found (listed in the report)"},
        "duplicate_rows": {
            "type": "array",
            "maxItems": 100,
            "description": "The first 100 duplicates, in row order: the report has them all",
            "items": obj(
                {"row": INT, "field": nullable(TEXT), "reason": TEXT},
                required=["row", "field", "reason"],
            ),
        },
    },
    required=[
        "import_id",
        "received",
        "inserted",
        "updated",
        "stored",
        "rejected",
        "rejected_rows",
        "problems",
        "problems_listed",
        "report",
    ],
)


COMPONENTS: dict[str, Schema] = {
    "Contact": CONTACT,
    "ContactPage": page_of("Contact"),
    "Attempt": ATTEMPT,
    "ImportReport": IMPORT_REPORT,
}
