"""Data rights: a person's contacts, their erasure."""

from __future__ import annotations

from .common import DATETIME, ID, INT, REGION, TEXT, Schema, nullable, obj

ERASE = obj(
    {
        "phone": {"type": "string", "minLength": 1, "maxLength": 28},
        "external_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "region": REGION,
    },
    minProperties=1,
)
PERSON_CONTACT_FIELDS = (
    "id",
    "campaign_id",
    "campaign_name",
    "external_id",
    "phone1",
    "phone2",
    "phone3",
    "phone4",
    "phone5",
    "state",
    "status",
    "status_detail",
    "created_at",
)
PERSON_CONTACTS = obj(
    {
        "query": obj(
            {"numbers": {"type": "array", "items": TEXT}, "external_id": nullable(TEXT)},
            required=["numbers", "external_id"],
        ),
        "contacts": {
            "type": "array",
            "items": obj(
                {
                    "id": ID,
                    "campaign_id": ID,
                    "campaign_name": TEXT,
                    "external_id": nullable(TEXT),
                    **{f"phone{i}": nullable(TEXT) for i in range(1, 6)},
                    "state": TEXT,
                    "status": TEXT,
                    "status_detail": TEXT,
                    "created_at": DATETIME,
                },
                required=list(PERSON_CONTACT_FIELDS),
            ),
        },
    },
    required=["query", "contacts"],
)
ERASURE = obj(
    {
        "contacts": INT,
        "attempts": INT,
        "numbers": {**INT, "description": "Numbers now kept only as a keyed hash"},
        "sms_replies": INT,
        "webhook_events": INT,
        "recordings_deleted": INT,
        "recordings_missing": {**INT, "description": "Not found where this dialer reads them"},
        "recordings_failed": {"type": "array", "items": TEXT},
    },
    required=["contacts", "attempts", "numbers", "recordings_deleted", "recordings_failed"],
)

COMPONENTS: dict[str, Schema] = {"PersonContacts": PERSON_CONTACTS, "Erasure": ERASURE}
