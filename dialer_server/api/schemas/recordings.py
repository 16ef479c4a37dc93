"""Call recordings: a campaign's settings."""

from __future__ import annotations

from ...campaigns.operations import SOUND_PATTERN
from .common import Schema, nullable, obj

SETTINGS_PUT = obj(
    {
        "enabled": {"type": "boolean"},
        "announcement": nullable({"type": "string", "pattern": SOUND_PATTERN}),
        "retention_days": nullable({"type": "integer", "minimum": 1, "maximum": 36500}),
    },
    minProperties=1,
)
SETTINGS = obj(
    {
        "enabled": {"type": "boolean"},
        "announcement": nullable({"type": "string"}),
        "retention_days": nullable({"type": "integer"}),
    },
    required=["enabled", "announcement", "retention_days"],
)

COMPONENTS: dict[str, Schema] = {"RecordingSettings": SETTINGS}
