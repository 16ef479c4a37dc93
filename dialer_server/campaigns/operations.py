"""Campaign and strategy operations shared by the HTTP API and the CLI.

Every function works in the caller's transaction over one connection, so a
request either happens whole or not at all. The allowed state changes are a
table of pure code (``next_state``); the scheduler dials only campaigns in state
``running``, so a campaign leaves that state and no new call starts: its claims
lock the campaign row and re-check the state.

States: ``stopped`` (new, or stopped by an operator) → ``running`` ⇄ ``paused``;
``running``/``paused`` → ``stopped``; ``running`` → ``completed`` when the
engine finds every contact closed. A completed campaign starts again only when
it has open contacts (added or rescheduled since).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import phonenumbers

from ..config import PBX_NAME
from ..db.queries import queries_of
from ..engine import store
from ..engine.agent_pacing import Mode
from ..engine.calling_window import CallingWindowError, parse_window, window_to_dict
from ..engine.strategy import NAME_PATTERN, StrategyError, parse_strategy, strategy_to_dict
from ..errors import Conflict, InvalidInput, NotFound
from . import flows

query = queries_of(__name__)

logger = logging.getLogger(__name__)

ACTIONS = ("start", "pause", "resume", "stop")

# (action, current state) -> the state it leads to. A pair that is missing is
# refused; a pair that leads to the current state changes nothing (every
# action is idempotent).
TRANSITIONS: Mapping[tuple[str, str], str] = {
    ("start", "stopped"): "running",
    ("start", "completed"): "running",  # only with open contacts: see next_state
    ("start", "running"): "running",
    ("pause", "running"): "paused",
    ("pause", "paused"): "paused",
    ("resume", "paused"): "running",
    ("resume", "running"): "running",
    ("stop", "running"): "stopped",
    ("stop", "paused"): "stopped",
    ("stop", "stopped"): "stopped",
    ("stop", "completed"): "completed",
}

_REFUSALS = {
    ("start", "paused"): "campaign is paused: resume it",
    ("pause", "stopped"): "campaign is stopped: only a running campaign can be paused",
    ("pause", "completed"): "campaign is completed: only a running campaign can be paused",
    ("resume", "stopped"): "campaign is stopped: start it",
    ("resume", "completed"): "campaign is completed: start it (it needs open contacts)",
}

# The settings of the agent modes (migration 0009); their defaults are
# store.CAMPAIGN_DEFAULTS'.
AGENT_SETTINGS = (
    "queue",
    "dial_ratio",
    "abandon_cap",
    "abandon_target",
    "max_dial_ratio",
    "abandon_message",
    "agent_wait_s",
)
# Numeric agent settings: (lowest, highest, decimals the column keeps).
_AGENT_NUMBERS: Mapping[str, tuple[float, float, int]] = {
    "dial_ratio": (1.0, 5.0, 2),
    "abandon_cap": (0.0001, 0.5, 4),
    "abandon_target": (0.0001, 0.5, 4),
    "max_dial_ratio": (1.0, 5.0, 2),
    "agent_wait_s": (1.0, 60.0, 1),
}
# The agent desk's settings (migration 0012): the script and parameter names the
# desk shows, and preview mode's.
DESK_SETTINGS = (
    "script",
    "param_names",
    "preview_dial",
    "preview_timeout_s",
    "preview_skip_delay_s",
)
PREVIEW_DIALS = ("agent_first", "customer_first")
MAX_SCRIPT = 20_000
_PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
# A queue name goes into the dialplan (Queue(${DIALER_QUEUE})): a plain name only.
_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,80}")

# Settings the API may change, with the column order of update_campaign_settings.
SETTINGS = (
    "name",
    "trunk",
    "caller_id",
    "max_concurrent_calls",
    "max_calls_per_second",
    "default_region",
    "timezone",
    "calling_window",
    "mode",
    "amd",
    "ivr_playback",
    "machine_message",
    "webhook_attempts",
    *AGENT_SETTINGS,
    *DESK_SETTINGS,
    "pbxs",
)
DEFAULT_STRATEGY = "default"
# What happens once someone answers (answered_calls.py). The agent modes hand
# answered calls to the members of an Asterisk queue (the campaign's ``queue``).
AGENT_MODES = tuple(mode.value for mode in Mode)
# preview: the desk shows an agent each contact first; the agent calls or skips it.
MODES = ("automated", "ivr", *AGENT_MODES, "preview")
# Asterisk sound names (ivr_playback, machine_message, abandon_message) become
# dialplan arguments, and Asterisk reads them under its sounds folder: names, never
# paths. A name is segments of A-Z a-z 0-9 _ - (a dot only between two of them: no
# "..", no hidden file) joined by "/" (no leading "/": not absolute); "&" joins
# several; 1-255 characters in all. The CHECK constraints of those columns
# (migration 0013) are this pattern character for character, and the API's schema
# uses it. Use it with fullmatch: Python's $ also matches before a final "\n".
_SOUND_SEGMENT = r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"
_SOUND_NAME = rf"{_SOUND_SEGMENT}(/{_SOUND_SEGMENT})*"
SOUND_PATTERN = rf"^(?=.{{1,255}}$){_SOUND_NAME}(&{_SOUND_NAME})*$"
_SOUND = re.compile(SOUND_PATTERN)
# A trunk goes into the Originate channel (PJSIP/number@trunk): only the
# characters of an endpoint name, so it cannot smuggle in a second channel.
_TRUNK = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_CALLER_ID = 80
# The PBXs a campaign may use: names of the pool ([[pbx]] name), or null for all.
MAX_PBXS = 64


def next_state(
    state: str, action: str, *, has_open_contacts: bool, has_strategy: bool = True
) -> str:
    """The state ``action`` leads a campaign in ``state`` to; Conflict if refused."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    target = TRANSITIONS.get((action, state))
    if target is None:
        raise Conflict(
            _REFUSALS.get((action, state), f"cannot {action} a campaign that is {state}"),
            code="invalid_transition",
            details={"state": state, "action": action},
        )
    if target == "running" and state != "running":
        if not has_strategy:
            raise Conflict(
                "campaign has no call strategy: set one before starting it",
                code="invalid_transition",
                details={"state": state, "action": action},
            )
        if state == "completed" and not has_open_contacts:
            raise Conflict(
                "campaign is completed and has no open contacts: add or reschedule "
                "contacts before starting it again",
                code="invalid_transition",
                details={"state": state, "action": action},
            )
    return target


# --- campaigns ---------------------------------------------------------------


async def get(conn: Any, campaign_id: int) -> dict[str, Any]:
    """The campaign with its strategy's name and version; NotFound if none."""
    row = await conn.fetchrow(query("campaign_view"), campaign_id)
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return dict(row)


async def list_campaigns(
    conn: Any, *, state: str | None = None, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    rows = await conn.fetch(query("list_campaigns"), state, after, limit)
    return [dict(r) for r in rows]


async def contact_totals(conn: Any) -> dict[int, tuple[int, int]]:
    """Per campaign id: (contacts, open contacts)."""
    rows = await conn.fetch(query("campaign_contact_totals"))
    return {r["campaign_id"]: (r["total"], r["open"]) for r in rows}


async def counts(conn: Any, campaign_id: int) -> dict[str, Any]:
    """Contacts by state and by status and status detail, and calls in progress."""
    by_state = {
        r["state"]: r["n"] for r in await conn.fetch(query("campaign_counts_by_state"), campaign_id)
    }
    by_status: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(query("campaign_counts_by_status"), campaign_id):
        by_status.setdefault(r["status"], {})[r["status_detail"]] = r["n"]
    return {
        "total": sum(by_state.values()),
        "by_state": by_state,
        "by_status": by_status,
        "open_attempts": await conn.fetchval(query("campaign_open_attempts"), campaign_id),
    }


async def create(
    conn: Any, settings: Mapping[str, Any], *, known_pbxs: Sequence[str] | None = None
) -> dict[str, Any]:
    """A new campaign, stopped. ``settings``: name (required), strategy (a name,
    default "default"), strategy_version (default: the latest), flow and
    flow_version (none by default), and any of SETTINGS. ``known_pbxs``: the PBX names
    ``pbxs`` may use (None: any name)."""
    name = _check_name(settings["name"])
    if await conn.fetchval(query("campaign_name_taken"), name, None):
        raise Conflict(f"a campaign named {name!r} exists", code="name_taken")
    strategy = await _resolve_strategy(
        conn, settings.get("strategy") or DEFAULT_STRATEGY, settings.get("strategy_version")
    )
    values = _checked_settings(settings, known_pbxs)
    _check_abandon_target({**store.CAMPAIGN_DEFAULTS, **values})
    campaign_id = await store.create_campaign(
        conn,
        name,
        strategy_id=strategy["id"],
        **{key: value for key, value in values.items() if key in store.CAMPAIGN_DEFAULTS},
    )
    if settings.get("flow") is not None:
        flow = await flows.resolve(conn, settings["flow"], settings.get("flow_version"))
        await conn.execute(query("set_campaign_flow"), campaign_id, flow["id"])
    logger.info(
        "campaign created",
        extra={"action": "campaign", "campaign_id": campaign_id, "campaign_name": name},
    )
    return await get(conn, campaign_id)


async def update(
    conn: Any,
    campaign_id: int,
    changes: Mapping[str, Any],
    *,
    known_pbxs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Change settings (any of SETTINGS, strategy, strategy_version, flow, flow_version).

    The strategy can change only before the engine has acted on any contact:
    the contacts' plans are steps of the strategy they were made under.
    ``known_pbxs``: the PBX names ``pbxs`` may use (None: any name).
    """
    current = await _lock(conn, campaign_id)
    values = {key: current[key] for key in SETTINGS}
    values.update(_checked_settings(changes, known_pbxs))
    _check_abandon_target(values)
    if "name" in changes:
        values["name"] = _check_name(changes["name"])
        if await conn.fetchval(query("campaign_name_taken"), values["name"], campaign_id):
            raise Conflict(f"a campaign named {values['name']!r} exists", code="name_taken")
    strategy_id = current["strategy_id"]
    if "strategy" in changes or "strategy_version" in changes:
        name = changes.get("strategy")
        if name is None:
            view = await get(conn, campaign_id)
            name = view["strategy_name"] or DEFAULT_STRATEGY
        strategy = await _resolve_strategy(conn, name, changes.get("strategy_version"))
        if strategy["id"] != strategy_id:
            if current["state"] != "stopped" or await conn.fetchval(
                query("campaign_touched"), campaign_id
            ):
                raise Conflict(
                    "the strategy of a campaign can change only while it is stopped and "
                    "before any contact was dialled: create a new campaign instead",
                    code="strategy_locked",
                )
            strategy_id = strategy["id"]
    if "flow" in changes or "flow_version" in changes:
        await _change_flow(conn, campaign_id, current, changes)
    for key in ("calling_window", "param_names"):
        if isinstance(values[key], dict):
            values[key] = json.dumps(values[key])
    await conn.execute(
        query("update_campaign_settings"),
        campaign_id,
        *(values[key] for key in SETTINGS),
        strategy_id,
    )
    return await get(conn, campaign_id)


async def _change_flow(
    conn: Any, campaign_id: int, current: Mapping[str, Any], changes: Mapping[str, Any]
) -> None:
    """Give the campaign another flow (or none): like its strategy, only while it is
    stopped and before the engine acted on any contact (their tasks are the flow's)."""
    name = changes.get("flow", ...)
    if name is ...:
        view = await get(conn, campaign_id)
        name = view["flow_name"]
        if name is None:
            raise InvalidInput(
                "flow_version needs a flow", details=[_field("flow_version", "no flow")]
            )
    flow_id = None
    if name is not None:
        flow_id = (await flows.resolve(conn, name, changes.get("flow_version")))["id"]
    if flow_id == current["flow_id"]:
        return
    if current["state"] != "stopped" or await conn.fetchval(query("campaign_touched"), campaign_id):
        raise Conflict(
            "the flow of a campaign can change only while it is stopped and before any "
            "contact was dialled: create a new campaign instead",
            code="flow_locked",
        )
    await conn.execute(query("set_campaign_flow"), campaign_id, flow_id)


async def transition(conn: Any, campaign_id: int, action: str) -> tuple[dict[str, Any], str]:
    """Apply start/pause/resume/stop; (the campaign after it, its state before)."""
    current = await _lock(conn, campaign_id)
    state = current["state"]
    has_open = bool(
        state == "completed"
        and await conn.fetchval(query("campaign_has_open_contacts"), campaign_id)
    )
    target = next_state(
        state, action, has_open_contacts=has_open, has_strategy=current["strategy_id"] is not None
    )
    if target != state:
        await store.set_campaign_state(conn, campaign_id, target)
        logger.info(
            "campaign %s: %s -> %s",
            action,
            state,
            target,
            extra={"action": "campaign", "campaign_id": campaign_id},
        )
    return await get(conn, campaign_id), state


async def delete(conn: Any, campaign_id: int) -> None:
    """Delete a stopped or completed campaign with its contacts and attempts."""
    current = await _lock(conn, campaign_id)
    if current["state"] not in ("stopped", "completed"):
        raise Conflict(
            f"campaign is {current['state']}: stop it before deleting it",
            code="campaign_active",
            details={"state": current["state"]},
        )
    open_attempts = await conn.fetchval(query("campaign_open_attempts"), campaign_id)
    if open_attempts:
        raise Conflict(
            f"campaign has {open_attempts} attempts in progress: wait for them to end",
            code="calls_in_progress",
            details={"open_attempts": open_attempts},
        )
    await conn.execute(query("delete_campaign"), campaign_id)
    logger.info("campaign deleted", extra={"action": "campaign", "campaign_id": campaign_id})


async def _lock(conn: Any, campaign_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(query("lock_campaign"), campaign_id)
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return dict(row)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("name must be 1-200 characters, not blank", details=[_field("name")])
    if _CONTROL.search(name):
        raise InvalidInput("name must not hold control characters", details=[_field("name")])
    return name


def _checked_settings(
    settings: Mapping[str, Any], known_pbxs: Sequence[str] | None = None
) -> dict[str, Any]:
    """The settings among ``settings`` (not name), checked beyond their JSON types."""
    out: dict[str, Any] = {}
    if "pbxs" in settings:
        out["pbxs"] = check_pbxs(settings["pbxs"], known_pbxs)
    if "trunk" in settings:
        trunk = settings["trunk"]
        if trunk is not None and not (isinstance(trunk, str) and _TRUNK.fullmatch(trunk)):
            raise InvalidInput(
                "trunk must be a PJSIP endpoint name (A-Z a-z 0-9 _ . -, at most 80) or null",
                details=[_field("trunk")],
            )
        out["trunk"] = trunk
    if "caller_id" in settings:
        caller_id = settings["caller_id"]
        if caller_id is not None and (
            not isinstance(caller_id, str)
            or len(caller_id) > MAX_CALLER_ID
            or _CONTROL.search(caller_id)
        ):
            raise InvalidInput(
                f"caller_id must be at most {MAX_CALLER_ID} characters without control "
                "characters, or null",
                details=[_field("caller_id")],
            )
        out["caller_id"] = caller_id
    if "max_concurrent_calls" in settings:
        value = settings["max_concurrent_calls"]
        if not _is_int(value) or not 1 <= value <= 10_000:
            raise InvalidInput(
                "max_concurrent_calls must be an integer from 1 to 10000",
                details=[_field("max_concurrent_calls")],
            )
        out["max_concurrent_calls"] = value
    if "max_calls_per_second" in settings:
        value = settings["max_calls_per_second"]
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0.001 <= value <= 1000
        ):
            raise InvalidInput(
                "max_calls_per_second must be a number from 0.001 to 1000",
                details=[_field("max_calls_per_second")],
            )
        # numeric(8, 3) in the table: a Decimal of the text keeps 2.5 exactly 2.5.
        out["max_calls_per_second"] = Decimal(str(value))
    if "default_region" in settings:
        region = settings["default_region"]
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidInput(
                f"default_region must be a region code phonenumbers knows (US, GB, FR...), "
                f"got {region!r}",
                details=[_field("default_region")],
            )
        out["default_region"] = region
    if "timezone" in settings:
        out["timezone"] = check_timezone(settings["timezone"], "timezone")
    if "calling_window" in settings:
        out["calling_window"] = check_calling_window(settings["calling_window"])
    if "mode" in settings:
        out["mode"] = check_mode(settings["mode"])
    for flag in ("amd", "webhook_attempts"):
        if flag in settings:
            if not isinstance(settings[flag], bool):
                raise InvalidInput(f"{flag} must be true or false", details=[_field(flag)])
            out[flag] = settings[flag]
    for sound in ("ivr_playback", "machine_message", "abandon_message"):
        if sound in settings:
            out[sound] = check_sound(settings[sound], sound)
    if "queue" in settings:
        queue = settings["queue"]
        if not isinstance(queue, str) or not _QUEUE.fullmatch(queue):
            raise InvalidInput(
                "queue must be an Asterisk queue name (A-Z a-z 0-9 _ . -, at most 80)",
                details=[_field("queue")],
            )
        out["queue"] = queue
    for key, (low, high, decimals) in _AGENT_NUMBERS.items():
        if key in settings:
            out[key] = _check_number(settings[key], key, low, high, decimals)
    out.update(_checked_desk_settings(settings))
    return out


def _checked_desk_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "script" in settings:
        script = settings["script"]
        if script is not None and (not isinstance(script, str) or len(script) > MAX_SCRIPT):
            raise InvalidInput(
                f"script must be text of at most {MAX_SCRIPT} characters, or null",
                details=[_field("script")],
            )
        out["script"] = script
    if "param_names" in settings:
        out["param_names"] = check_param_names(settings["param_names"])
    if "preview_dial" in settings:
        if settings["preview_dial"] not in PREVIEW_DIALS:
            raise InvalidInput(
                f"preview_dial must be one of {', '.join(PREVIEW_DIALS)}",
                details=[_field("preview_dial")],
            )
        out["preview_dial"] = settings["preview_dial"]
    if "preview_timeout_s" in settings:
        value = settings["preview_timeout_s"]
        if value is not None and (not _is_int(value) or not 5 <= value <= 3600):
            raise InvalidInput(
                "preview_timeout_s must be an integer from 5 to 3600, or null",
                details=[_field("preview_timeout_s")],
            )
        out["preview_timeout_s"] = value
    if "preview_skip_delay_s" in settings:
        value = settings["preview_skip_delay_s"]
        if not _is_int(value) or not 0 <= value <= 2_592_000:
            raise InvalidInput(
                "preview_skip_delay_s must be an integer from 0 to 2592000",
                details=[_field("preview_skip_delay_s")],
            )
        out["preview_skip_delay_s"] = value
    return out


def check_param_names(value: Any) -> dict[str, str] | None:
    """The CRM's names of param1..param12 ({"param1": "first_name"}), or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput("param_names must be an object or null", details=[_field("param_names")])
    names: dict[str, str] = {}
    for key, name in value.items():
        if key not in {f"param{i}" for i in range(1, 13)}:
            raise InvalidInput(
                f"param_names: {key!r} is not param1..param12", details=[_field("param_names")]
            )
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            raise InvalidInput(
                f"param_names.{key} must be a name: a letter, then letters, digits or _ "
                "(at most 40)",
                details=[_field("param_names")],
            )
        names[key] = name
    if len(set(names.values())) != len(names):
        raise InvalidInput("param_names: a name is used twice", details=[_field("param_names")])
    return names


def check_pbxs(value: Any, known: Sequence[str] | None = None) -> list[str] | None:
    """The PBXs a campaign may use: null (every PBX), or 1-64 distinct PBX names,
    each one of ``known`` (the serving daemon's pool) when given."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_PBXS
        or not all(isinstance(name, str) and PBX_NAME.fullmatch(name) for name in value)
        or len(set(value)) != len(value)
    ):
        raise InvalidInput(
            f"pbxs must be null (every PBX) or 1-{MAX_PBXS} distinct PBX names "
            "(A-Z a-z 0-9 _ . -, at most 64 each)",
            details=[_field("pbxs")],
        )
    unknown = [name for name in value if known is not None and name not in known]
    if unknown:
        message = f"unknown PBX {unknown[0]!r} (the pool: {', '.join(known or [])})"
        raise InvalidInput(f"pbxs: {message}", details=[_field("pbxs", message)])
    return list(value)


def _check_number(value: Any, field: str, low: float, high: float, decimals: int) -> Decimal:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        message = f"must be a number from {low:g} to {high:g}"
        raise InvalidInput(f"{field} {message}", details=[_field(field, message)])
    # Rounded as the numeric column stores it: what is read back is what was kept.
    return round(Decimal(str(value)), decimals)


def _check_abandon_target(values: Mapping[str, Any]) -> None:
    """The predictive target must not be above the cap (checked on the merged settings)."""
    if Decimal(values["abandon_target"]) > Decimal(values["abandon_cap"]):
        message = "must not be above abandon_cap"
        raise InvalidInput(
            f"abandon_target ({values['abandon_target']}) {message} ({values['abandon_cap']})",
            details=[_field("abandon_target", message)],
        )


def check_mode(value: Any) -> str:
    """One of MODES; InvalidInput otherwise."""
    if value not in MODES:
        raise InvalidInput(
            f"mode must be one of {', '.join(MODES)}, got {value!r}", details=[_field("mode")]
        )
    return str(value)


def check_sound(value: Any, field: str) -> str | None:
    """An Asterisk sound name as the database accepts it (``custom/offer``, ``a&b``), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SOUND.fullmatch(value):
        message = (
            "must be an Asterisk sound name (custom/offer; a&b plays two): 1-255 of "
            'A-Z a-z 0-9 _ . / & -, never a path (no "..", no leading "/")'
        )
        raise InvalidInput(f"{field} {message}, or null", details=[_field(field, message)])
    return value


def check_calling_window(value: Any) -> dict[str, Any] | None:
    """A calling window in its normal form (calling_window.py); None: the default hours."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "calling_window must be an object or null", details=[_field("calling_window")]
        )
    try:
        return window_to_dict(parse_window(value))
    except CallingWindowError as exc:
        raise InvalidInput(str(exc), details=[_field("calling_window", str(exc))]) from None


def check_timezone(value: Any, field: str) -> str:
    """An IANA time zone name (Europe/Paris); InvalidInput naming ``field``."""
    if not isinstance(value, str) or value not in _timezones():
        raise InvalidInput(
            f"{field} must be an IANA time zone name such as Europe/Paris, got {value!r}",
            details=[_field(field)],
        )
    return value


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(name: str, message: str | None = None) -> dict[str, str]:
    return {"field": name, "message": message or "invalid"}


# --- strategies --------------------------------------------------------------


async def _resolve_strategy(conn: Any, name: Any, version: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"strategy must be a strategy name ({NAME_PATTERN.pattern})",
            details=[_field("strategy")],
        )
    if version is None:
        row = await conn.fetchrow(query("strategy_latest_version"), name)
    elif _is_int(version) and 1 <= version <= 2**31 - 1:
        row = await conn.fetchrow(query("strategy_version"), name, version)
    else:
        raise InvalidInput(
            "strategy_version must be a positive integer", details=[_field("strategy_version")]
        )
    if row is None:
        which = f"strategy {name!r}" + (f" version {version}" if version is not None else "")
        raise InvalidInput(f"{which} not found", details=[_field("strategy", "not found")])
    return _strategy_row(row)


def _strategy_row(row: Any) -> dict[str, Any]:
    return {**dict(row), "definition": json.loads(row["definition"])}


async def list_strategies(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(query("list_strategies"))]


async def get_strategy(conn: Any, name: str, version: int | None = None) -> dict[str, Any]:
    """A stored strategy version (the latest when ``version`` is None); NotFound if none."""
    if version is None:
        row = await conn.fetchrow(query("strategy_latest_version"), name)
    else:
        row = await conn.fetchrow(query("strategy_version"), name, version)
    if row is None:
        which = f"strategy {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFound(f"{which} not found")
    return _strategy_row(row)


async def create_strategy(conn: Any, definition: Mapping[str, Any]) -> dict[str, Any]:
    """Store a strategy under a new name (version 1 unless the definition says)."""
    data = {"version": 1, **definition}
    strategy = _parse(data)
    if await conn.fetchrow(query("strategy_latest_version"), strategy.name) is not None:
        raise Conflict(
            f"strategy {strategy.name!r} exists: PUT /api/v1/strategies/{strategy.name} "
            "stores a new version",
            code="strategy_exists",
        )
    return await _insert_strategy(conn, strategy_to_dict(strategy))


async def update_strategy(
    conn: Any, name: str, definition: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Store a new version of strategy ``name``; (the stored version, whether it is new).

    Without a version in the definition it gets the latest + 1. A definition
    equal to the latest version's stores nothing: the call is idempotent.
    """
    if "name" in definition and definition["name"] != name:
        raise InvalidInput(
            f"name {definition['name']!r} differs from the strategy in the path ({name!r})",
            details=[_field("name")],
        )
    latest = await conn.fetchrow(query("strategy_latest_version"), name)
    if latest is None:
        raise NotFound(f"strategy {name!r} not found: POST /api/v1/strategies creates it")
    latest_row = _strategy_row(latest)
    version = definition.get("version", latest_row["version"] + 1)
    strategy = _parse({**definition, "name": name, "version": version})
    stored = strategy_to_dict(strategy)
    same = {**stored, "version": latest_row["version"]} == latest_row["definition"]
    if same and "version" not in definition:
        return latest_row, False
    if strategy.version <= latest_row["version"]:
        if same and strategy.version == latest_row["version"]:
            return latest_row, False
        raise Conflict(
            f"strategy {name!r} is at version {latest_row['version']}: a new version must be "
            "higher (stored versions never change)",
            code="version_exists",
        )
    return await _insert_strategy(conn, stored), True


async def _insert_strategy(conn: Any, definition: dict[str, Any]) -> dict[str, Any]:
    try:
        # A savepoint: a concurrent insert of the same version must not end
        # the caller's transaction with a bare error.
        async with conn.transaction():
            row = await conn.fetchrow(
                query("insert_strategy"),
                definition["name"],
                definition["version"],
                json.dumps(definition),
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            f"strategy {definition['name']!r} version {definition['version']} was just stored "
            "by another request",
            code="version_exists",
        ) from None
    logger.info(
        "strategy stored",
        extra={
            "action": "strategy",
            "strategy": definition["name"],
            "version": definition["version"],
        },
    )
    return _strategy_row(row)


def _parse(data: Mapping[str, Any]) -> Any:
    try:
        return parse_strategy(data)
    except StrategyError as exc:
        raise InvalidInput(str(exc), code="invalid_strategy") from None
