"""Attempts across a campaign."""

from __future__ import annotations

from ...campaigns.export import XLSX_MEDIA_TYPE
from .common import DATETIME, ID, INT, NUMBER, TEXT, Schema, nullable, obj

CAMPAIGN_ATTEMPT = obj(
    {
        "id": {"type": "string", "format": "uuid"},
        "contact_id": ID,
        "external_id": nullable(TEXT),
        "channel": {"type": "string", "enum": ["call", "sms"]},
        "phone_slot": nullable(INT),
        "number": nullable(TEXT),
        "caller_id": nullable(TEXT),
        "step": nullable(INT),
        "state": {"type": "string", "enum": ["created", "sent", "answered", "ended"]},
        "outcome": nullable(TEXT),
        "detail": nullable(TEXT),
        "hangup_cause": nullable(INT),
        "hangup_cause_text": nullable(TEXT),
        "created_at": DATETIME,
        "sent_at": nullable(DATETIME),
        "answered_at": nullable(DATETIME),
        "ended_at": nullable(DATETIME),
        "talk_s": nullable({**NUMBER, "description": "From the answer to the hangup"}),
        "amd_status": nullable(TEXT),
        "ivr_digits": nullable(TEXT),
        "agent": nullable(TEXT),
        "agent_connected_at": nullable(DATETIME),
        "agent_wait_ms": nullable(INT),
        "abandoned": nullable({"type": "boolean"}),
        "disposition": nullable(TEXT),
        "recording_status": nullable({"type": "string", "enum": ["stored", "missing", "deleted"]}),
        "recording_duration_s": nullable(NUMBER),
    },
    required=["id", "contact_id", "channel", "state", "created_at"],
)
ATTEMPT_PAGE = obj(
    {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/CampaignAttempt"}},
        "next_after": nullable({**TEXT, "description": "The after of the next page"}),
    },
    required=["items", "next_after"],
)

COMPONENTS: dict[str, Schema] = {"CampaignAttempt": CAMPAIGN_ATTEMPT, "AttemptPage": ATTEMPT_PAGE}
__all__ = ["COMPONENTS", "XLSX_MEDIA_TYPE"]
