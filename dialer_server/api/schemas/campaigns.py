"""Campaigns: their settings (create, change), how they read, state changes, agent statistics."""

from __future__ import annotations

from decimal import Decimal

from ...campaigns.operations import (
    ACTIONS,
    AGENT_MODES,
    MAX_PBXS,
    MODES,
    SETTINGS,
    SOUND_PATTERN,
)
from ...config import PBX_NAME
from ...engine.store import CAMPAIGN_DEFAULTS
from ...states import CAMPAIGN_STATES
from .common import (
    DATETIME,
    ID,
    INT,
    NUMBER,
    REGION,
    STRATEGY_NAME,
    TEXT,
    Schema,
    nullable,
    obj,
    page_of,
)

# --- requests ---

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
    "description": "What happens once someone answers. automated: the "
    "campaign's message (ivr_playback), then hang up; ivr: a prompt (ivr_playback) and one "
    f"key read. {', '.join(AGENT_MODES)}: the agent modes: answered calls go to the members "
    "of an Asterisk queue (queue); progressive places one call per free agent, power "
    "dial_ratio calls per free agent, predictive an adaptive ratio that keeps the abandon "
    "rate under abandon_cap. preview: the agent desk shows an agent each contact first; "
    "the agent calls it (preview_dial) or skips it with a reason.",
}
AMD = {
    "type": "boolean",
    "description": "Answering-machine detection on every answered call: a "
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
    "description": "Agent modes: the Asterisk queue whose members take the answered calls.",
}
DIAL_RATIO = {
    "type": "number",
    "minimum": 1,
    "maximum": 5,
    "description": "power: calls placed per free agent.",
}
ABANDON_CAP = {
    "type": "number",
    "minimum": 0.0001,
    "maximum": 0.5,
    "description": "predictive: the abandon rate (abandoned / answered, rolling 24 h and 30 "
    "days) never to exceed; on a breach the ratio falls back to 1.",
}
ABANDON_TARGET = {
    "type": "number",
    "minimum": 0.0001,
    "maximum": 0.5,
    "description": "predictive: the abandon rate steered for, at most abandon_cap.",
}
MAX_DIAL_RATIO = {
    "type": "number",
    "minimum": 1,
    "maximum": 5,
    "description": "predictive: the highest calls per free agent.",
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
    "the call counts as abandoned.",
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
_DESK_SCHEMAS: dict[str, Schema] = {
    "script": nullable(
        {
            "type": "string",
            "maxLength": 20000,
            "description": "What the agent desk shows the agent to read, with {param1}..{param12}, "
            "{external_id} and the names of param_names as placeholders. null: none.",
        }
    ),
    "param_names": {
        "type": ["object", "null"],
        "propertyNames": {"enum": [f"param{i}" for i in range(1, 13)]},
        "additionalProperties": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,39}$"},
        "description": 'The CRM\'s names of param1..param12 ({"param1": "first_name"}): the '
        "desk shows them, and the script may use them as placeholders.",
    },
    "preview_dial": {
        "type": "string",
        "enum": ["agent_first", "customer_first"],
        "description": "preview: agent_first rings the agent's phone, then the customer's; "
        "customer_first rings the customer's and connects the agent once they answer.",
    },
    "preview_timeout_s": nullable(
        {
            "type": "integer",
            "minimum": 5,
            "maximum": 3600,
            "description": "preview: a contact shown this long is dialled without Call. "
            "null: only Call dials.",
        }
    ),
    "preview_skip_delay_s": {
        "type": "integer",
        "minimum": 0,
        "maximum": 2592000,
        "description": "preview: a skipped contact is due again after this long, at the "
        "step its strategy planned.",
    },
}
WEBHOOK_ATTEMPTS = {
    "type": "boolean",
    "description": "Send an attempt.result webhook for each attempt.",
}
PBXS = nullable(
    {
        "type": "array",
        "items": {"type": "string", "pattern": f"^{PBX_NAME.pattern}$"},
        "minItems": 1,
        "maxItems": MAX_PBXS,
        "uniqueItems": True,
        "description": "The PBXs of the pool ([[pbx]] names) the campaign's calls may go "
        "to, spread by their free capacity; null (the default): every PBX.",
    }
)
_CAMPAIGN_SETTINGS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
    "strategy": {"type": "string", "pattern": STRATEGY_NAME},
    "strategy_version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "flow": nullable(
        {
            "type": "string",
            "pattern": STRATEGY_NAME,
            "description": "The campaign's task flow (docs/flows.md); null: none, the "
            "campaign is one call task.",
        }
    ),
    "flow_version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "trunk": nullable(
        {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,80}$", "description": "PJSIP endpoint"}
    ),
    "caller_id": nullable({"type": "string", "maxLength": 80}),
    "max_concurrent_calls": {"type": "integer", "minimum": 1, "maximum": 10000},
    "max_calls_per_second": {"type": "number", "minimum": 0.001, "maximum": 1000},
    "default_region": REGION,
    "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
    "calling_window": CALLING_WINDOW,
    "mode": MODE,
    "amd": AMD,
    "ivr_playback": IVR_PLAYBACK,
    "machine_message": MACHINE_MESSAGE,
    "webhook_attempts": WEBHOOK_ATTEMPTS,
    **_AGENT_SCHEMAS,
    **_DESK_SCHEMAS,
    "pbxs": PBXS,
}


def _with_defaults(settings: dict[str, Schema]) -> dict[str, Schema]:
    """Each setting's schema with the default a new campaign gets (store.CAMPAIGN_DEFAULTS)."""
    out = dict(settings)
    for key, value in CAMPAIGN_DEFAULTS.items():
        if key in out and value is not None:
            out[key] = {
                **out[key],
                "default": float(value) if isinstance(value, Decimal) else value,
            }
    return out


_CAMPAIGN_SETTINGS = _with_defaults(_CAMPAIGN_SETTINGS)
CAMPAIGN_CREATE = obj(_CAMPAIGN_SETTINGS, required=["name"])
CAMPAIGN_UPDATE = obj(_CAMPAIGN_SETTINGS, minProperties=1)


# --- responses ---

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
CAMPAIGN_FIELDS = (
    "id",
    "name",
    "state",
    "state_reason",
    "strategy",
    "flow",
    *SETTINGS[1:],
    "created_at",
    "updated_at",
)
CAMPAIGN = obj(
    {
        "id": ID,
        "name": TEXT,
        "state": {"type": "string", "enum": list(CAMPAIGN_STATES)},
        "state_reason": nullable(
            {
                **TEXT,
                "description": "Why the campaign is in its state when the dialer put it "
                "there itself (paused after trunk errors in a row); null after any change "
                "made over the API or the CLI.",
            }
        ),
        "strategy": nullable(
            obj({"id": ID, "name": TEXT, "version": INT}, required=["id", "name", "version"])
        ),
        "flow": nullable(
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
        **_DESK_SCHEMAS,
        "pbxs": nullable({"type": "array", "items": TEXT}),
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
        "previous_state": {"type": "string", "enum": list(CAMPAIGN_STATES)},
        "action": {"type": "string", "enum": list(ACTIONS)},
    },
    required=["campaign", "changed", "previous_state", "action"],
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


COMPONENTS: dict[str, Schema] = {
    "Campaign": CAMPAIGN,
    "CampaignPage": page_of("Campaign"),
    "Transition": TRANSITION,
    "AgentStats": AGENT_STATS,
}
