"""A campaign's own webhook."""

from __future__ import annotations

from ...events import WEBHOOK_TYPES
from .common import DATETIME, ID, Schema, nullable, obj

SECRET = {"type": "string", "minLength": 16, "maxLength": 200, "pattern": "^[!-~]+$"}
EVENTS = nullable(
    {
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "enum": list(WEBHOOK_TYPES)},
    }
)

HOOK_PUT = obj(
    {
        "url": {"type": "string", "minLength": 1, "maxLength": 2000},
        "secret": nullable(SECRET),
        "events": EVENTS,
    },
    required=["url"],
)
HOOK_ROTATE = obj(
    {
        "secret": nullable(SECRET),
        "grace_s": {"type": "integer", "minimum": 0, "maximum": 30 * 86400},
    }
)

HOOK = obj(
    {
        "campaign_id": ID,
        "url": {"type": "string"},
        "events": EVENTS,
        "previous_secret_valid_until": nullable(DATETIME),
        "created_at": DATETIME,
        "updated_at": DATETIME,
    },
    required=["campaign_id", "url", "events", "previous_secret_valid_until"],
)
HOOK_SET = obj(
    {"webhook": {"$ref": "#/components/schemas/CampaignWebhook"}, "secret": nullable(SECRET)},
    required=["webhook", "secret"],
)

COMPONENTS: dict[str, Schema] = {"CampaignWebhook": HOOK, "CampaignWebhookSet": HOOK_SET}
