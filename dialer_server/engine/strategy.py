"""Call strategies: what to do with a contact after each attempt.

A strategy is an ordered list of steps (call phone k, or send an SMS to it), each
with a rule per outcome: retry the step, move to the next step, send an SMS, or
close the contact. Caps bound the attempts per contact, per number and per
rolling day. A call the carrier refused (``trunk_error``) counts for none of
them: it never reached the contact. The YAML format and the engine's semantics
are documented for users in ``strategies/README.md``.

Everything here but the two file loaders is pure: the scheduler passes the
contact's phones, its attempt history and ``now``; the engine answers with one
Decision. Steps are numbered from 0, phone slots from 1.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import DialerError
from ..states import (
    PREDEFINED_DETAILS,
    SMS_CLOSE_STATES,
    STATUSES,
)
from ..telephony.outcomes import Outcome


class StrategyError(DialerError):
    """The call strategy is invalid."""


class Action(StrEnum):
    RETRY = "retry"
    NEXT = "next"
    SMS = "sms"
    CLOSE = "close"


CHANNELS = ("call", "sms")
CALL_OUTCOMES: tuple[str, ...] = tuple(outcome.value for outcome in Outcome)
# What an SMS provider can tell us: the message left, or it did not.
SMS_SENT = "sent"
SMS_FAILED = "failed"
SMS_OUTCOMES = (SMS_SENT, SMS_FAILED)

# Regulations in several countries require at least 15 s of ringing; beyond
# 5 minutes nobody is going to pick up.
MIN_RING_TIMEOUT_S = 15
MAX_RING_TIMEOUT_S = 300
DEFAULT_RING_TIMEOUT_S = 30
# Bounds that catch typos (a delay in milliseconds, a cap of 10000) early.
MAX_DELAY_S = 30 * 86400
MAX_TRIES = 100
MAX_STEPS = 50
MAX_ATTEMPTS_CAP = 1000
MAX_SMS_TEXT = 640
MAX_DESCRIPTION = 1000
PHONE_SLOTS = 5

# Names of strategies and of status dictionary entries, as the schema's CHECK
# constraints allow them (use with fullmatch; JSON Schemas take NAME_JSON_PATTERN).
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NAME_JSON_PATTERN = f"^{NAME_PATTERN.pattern}$"
DETAIL_PATTERN = re.compile(r"[a-z0-9_][a-z0-9_ -]{0,99}")

_DAY = timedelta(hours=24)

# The status and status detail a close gets when a rule names only the state.
_CLOSE_DEFAULTS: dict[str, tuple[str, str]] = {
    "connected": ("success", "$none"),
    "not_connected": ("failed", "$unavailable"),
    "retries_completed": ("failed", "$unavailable"),
    "sms_sent": ("open", "$none"),
    "sms_sent_closed": ("success", "$none"),
    "sms_responded": ("success", "$none"),
    "dangling": ("failed", "$error"),
    "dnc_listed": ("failed", "$do_not_call"),
    "cancelled": ("failed", "$cancelled"),
}
# States a rule may close a call outcome with. sms_responded is set only by an
# inbound reply, dangling only by a call whose result never came, and the
# sms_* states only once an SMS has actually left.
_CALL_CLOSE_STATES = frozenset(
    {"connected", "not_connected", "retries_completed", "dnc_listed", "cancelled"}
)


@dataclass(frozen=True)
class Rule:
    """What to do after one outcome of a step."""

    action: Action
    # RETRY: wait before the next try; NEXT: added to the next step's own delay.
    delay_s: int = 0
    # CLOSE only. status and status_detail default from the state.
    state: str | None = None
    status: str | None = None
    status_detail: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "action", Action(self.action))
        except ValueError:
            raise StrategyError(
                f"unknown action {self.action!r} (known: {', '.join(Action)})"
            ) from None
        if self.action is Action.CLOSE and isinstance(self.state, str):
            status, detail = _CLOSE_DEFAULTS.get(self.state, (None, None))
            if self.status is None:
                object.__setattr__(self, "status", status)
            if self.status_detail is None:
                object.__setattr__(self, "status_detail", detail)


@dataclass(frozen=True)
class Step:
    """One attempt step. Rules missing for an outcome get the built-in defaults
    when the step becomes part of a Strategy."""

    channel: str
    phone: int
    ring_timeout_s: int = DEFAULT_RING_TIMEOUT_S
    delay_s: int = 0
    max_tries: int = 1
    rules: Mapping[str, Rule] = field(default_factory=dict)
    text: str | None = None

    def __post_init__(self) -> None:
        # Our own copy: a caller's dict changing later must not change the step.
        object.__setattr__(self, "rules", dict(self.rules))

    def __hash__(self) -> int:
        return hash(
            (
                self.channel,
                self.phone,
                self.ring_timeout_s,
                self.delay_s,
                self.max_tries,
                tuple(sorted(self.rules.items())),
                self.text,
            )
        )


@dataclass(frozen=True)
class Caps:
    # Call and SMS attempts per contact, in total. Always finite: it is what
    # guarantees that every contact closes.
    per_contact: int = 10
    # Call attempts on one dialled number (after the phone-1 fallback).
    per_phone: int | None = None
    # Call attempts per contact in any rolling 24 hours.
    per_day: int | None = None


@dataclass(frozen=True)
class Strategy:
    """A validated strategy; every step's rules are complete.

    Constructing one validates it (StrategyError names the bad field by its
    YAML path) and fills in the built-in default rules.
    """

    name: str
    version: int
    description: str
    steps: tuple[Step, ...]
    caps: Caps = Caps()
    sms_text: str | None = None
    sms_close_state: str = "sms_sent"

    def __post_init__(self) -> None:
        _validate_header(self)
        object.__setattr__(
            self, "steps", tuple(_complete_rules(s, self.sms_close_state) for s in self.steps)
        )
        for index, step in enumerate(self.steps):
            _validate_step(step, f"attempts[{index}]", self.sms_text)


@dataclass(frozen=True)
class PastAttempt:
    """One attempt already made. ``outcome`` is an Outcome value for calls,
    "sent" or "failed" for SMS."""

    step: int
    channel: str
    phone_slot: int | None
    number: str
    outcome: str
    started_at: datetime


@dataclass(frozen=True)
class Dial:
    step: int
    phone_slot: int
    number: str
    at: datetime
    ring_timeout_s: int


@dataclass(frozen=True)
class SendSms:
    step: int
    phone_slot: int
    number: str
    at: datetime
    # The template as written in the strategy: the caller renders its parameters.
    text: str


@dataclass(frozen=True)
class Close:
    state: str
    status: str
    status_detail: str


Decision: TypeAlias = Dial | SendSms | Close


# How soon an abandoned call (agent modes) is dialled again by default.
ABANDONED_RETRY_S = 300
# A person who pressed decline is not called again the same morning.
REJECTED_RETRY_S = 4 * 3600
# A refused trunk is the carrier's problem, usually fixed by an operator within
# minutes; the campaign pauses itself if it goes on (dialing.trunk_error_pause_after).
TRUNK_ERROR_RETRY_S = 300


def default_rules(channel: str, sms_close_state: str = "sms_sent") -> dict[str, Rule]:
    """The built-in rule for every outcome a step of ``channel`` can produce."""
    if channel == "sms":
        return {
            SMS_SENT: Rule(Action.CLOSE, state=sms_close_state),
            SMS_FAILED: Rule(Action.NEXT),
        }
    return {
        Outcome.ANSWERED.value: Rule(Action.CLOSE, state="connected"),
        Outcome.BUSY.value: Rule(Action.RETRY, delay_s=600),
        Outcome.NO_ANSWER.value: Rule(Action.RETRY, delay_s=1800),
        Outcome.CONGESTION.value: Rule(Action.RETRY, delay_s=300),
        Outcome.INVALID_NUMBER.value: Rule(Action.NEXT),
        Outcome.FAILED.value: Rule(Action.NEXT),
        Outcome.MACHINE.value: Rule(Action.RETRY, delay_s=3600),
        # A predictive drop: the person answered and we had nobody for them.
        # Call back soon, while they still remember the call.
        Outcome.ABANDONED.value: Rule(Action.RETRY, delay_s=ABANDONED_RETRY_S),
        Outcome.DANGLING.value: Rule(Action.CLOSE, state="dangling"),
        Outcome.REJECTED.value: Rule(Action.RETRY, delay_s=REJECTED_RETRY_S),
        Outcome.TRUNK_ERROR.value: Rule(Action.RETRY, delay_s=TRUNK_ERROR_RETRY_S),
    }


def counts(attempt: PastAttempt) -> bool:
    """Whether an attempt counts against its contact (caps, tries).

    A call our carrier refused (trunk_error) never reached the contact: it
    uses none of their tries, and the same step is tried again.
    """
    return attempt.outcome != Outcome.TRUNK_ERROR


def _counted(history: Sequence[PastAttempt]) -> list[PastAttempt]:
    return [attempt for attempt in history if counts(attempt)]


def close_for(state: str) -> Close:
    """A Close in ``state`` with that state's default status and status detail."""
    try:
        status, detail = _CLOSE_DEFAULTS[state]
    except KeyError:
        raise ValueError(f"unknown contact state {state!r}") from None
    return Close(state, status, detail)


# --- Validation -------------------------------------------------------------


def _fail(message: str) -> StrategyError:
    return StrategyError(message)


def _check_int(value: object, path: str, low: int, high: int) -> None:
    # bool is an int to Python, never to a user writing YAML.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{path} must be an integer, got {value!r}")
    if value < low:
        raise _fail(f"{path} must be >= {low}")
    if value > high:
        raise _fail(f"{path} must be <= {high}")


def _check_text(value: object, path: str, max_len: int, *, empty_ok: bool = False) -> None:
    if not isinstance(value, str):
        raise _fail(f"{path} must be a string, got {value!r}")
    if not empty_ok and not value.strip():
        raise _fail(f"{path} must not be empty")
    if len(value) > max_len:
        raise _fail(f"{path} must be at most {max_len} characters")


def _validate_header(strategy: Strategy) -> None:
    if not isinstance(strategy.name, str) or not NAME_PATTERN.fullmatch(strategy.name):
        raise _fail(f"name must match {NAME_PATTERN.pattern}, got {strategy.name!r}")
    _check_int(strategy.version, "version", 1, 2**31 - 1)
    _check_text(strategy.description, "description", MAX_DESCRIPTION, empty_ok=True)
    caps = strategy.caps
    if not isinstance(caps, Caps):
        raise _fail("caps must be a Caps")
    _check_int(caps.per_contact, "caps.per_contact", 1, MAX_ATTEMPTS_CAP)
    if caps.per_phone is not None:
        _check_int(caps.per_phone, "caps.per_phone", 1, MAX_ATTEMPTS_CAP)
    if caps.per_day is not None:
        _check_int(caps.per_day, "caps.per_day", 1, MAX_ATTEMPTS_CAP)
    if strategy.sms_text is not None:
        _check_text(strategy.sms_text, "sms.text", MAX_SMS_TEXT)
    if strategy.sms_close_state not in SMS_CLOSE_STATES:
        raise _fail(
            f"sms.close_state must be one of {', '.join(SMS_CLOSE_STATES)}, "
            f"got {strategy.sms_close_state!r}"
        )
    if not isinstance(strategy.steps, Sequence) or not strategy.steps:
        raise _fail("attempts must list at least one attempt")
    if len(strategy.steps) > MAX_STEPS:
        raise _fail(f"attempts must list at most {MAX_STEPS} attempts")
    for index, step in enumerate(strategy.steps):
        if not isinstance(step, Step):
            raise _fail(f"attempts[{index}] must be a Step")


def _complete_rules(step: Step, sms_close_state: str) -> Step:
    if step.channel not in CHANNELS:
        return step  # reported by _validate_step
    merged = default_rules(step.channel, sms_close_state)
    merged.update(step.rules)
    if merged == step.rules:
        return step
    return dataclasses.replace(step, rules=merged)


def _validate_step(step: Step, path: str, sms_text: str | None) -> None:
    if step.channel not in CHANNELS:
        raise _fail(f"{path}.channel must be one of {', '.join(CHANNELS)}, got {step.channel!r}")
    _check_int(step.phone, f"{path}.phone", 1, PHONE_SLOTS)
    if step.channel == "call":
        _check_int(
            step.ring_timeout_s, f"{path}.ring_timeout_s", MIN_RING_TIMEOUT_S, MAX_RING_TIMEOUT_S
        )
        if step.text is not None:
            raise _fail(f"{path}.text is only for SMS steps (an SMS action uses sms.text)")
    else:
        if step.ring_timeout_s != DEFAULT_RING_TIMEOUT_S:
            raise _fail(f"{path}.ring_timeout_s is only for call steps")
        if step.text is not None:
            _check_text(step.text, f"{path}.text", MAX_SMS_TEXT)
        elif sms_text is None:
            raise _fail(f"{path}.text is required for an SMS step when sms.text is not set")
    _check_int(step.delay_s, f"{path}.delay_s", 0, MAX_DELAY_S)
    _check_int(step.max_tries, f"{path}.max_tries", 1, MAX_TRIES)
    outcomes = CALL_OUTCOMES if step.channel == "call" else SMS_OUTCOMES
    for outcome, rule in step.rules.items():
        rule_path = f"{path}.on.{outcome}"
        if outcome not in outcomes:
            raise _fail(
                f"{rule_path}: {outcome!r} is not an outcome of {_a(step.channel)} step "
                f"(known: {', '.join(outcomes)})"
            )
        _validate_rule(rule, rule_path, step.channel, outcome)
        if rule.action is Action.SMS and sms_text is None:
            raise _fail(f"{rule_path}: action sms needs sms.text")


def _validate_rule(rule: Rule, path: str, channel: str, outcome: str) -> None:
    if not isinstance(rule, Rule):
        raise _fail(f"{path} must be a Rule")
    _check_int(rule.delay_s, f"{path}.delay_s", 0, MAX_DELAY_S)
    if rule.delay_s and rule.action not in (Action.RETRY, Action.NEXT):
        raise _fail(f"{path}.delay_s is only for retry and next")
    if outcome == Outcome.DANGLING and channel == "call":
        # A call whose result never came may still be ringing, or answered by
        # an agent: redialling it automatically risks calling a person twice.
        if rule.action is not Action.CLOSE or rule.state != "dangling":
            raise _fail(
                f"{path} must close with state dangling (a dangling call is never redialled)"
            )
    if outcome == Outcome.TRUNK_ERROR and channel == "call" and rule.action is not Action.RETRY:
        # The carrier refused us, not the contact: moving on or closing would
        # spend the contact's chances on our own outage.
        raise _fail(
            f"{path} must be retry (a trunk error never counts against the contact; "
            "only its delay_s may change)"
        )
    if rule.action is Action.SMS and channel == "sms":
        raise _fail(f"{path}: action sms is only for call steps")
    if rule.action is not Action.CLOSE:
        for key in ("state", "status", "status_detail"):
            if getattr(rule, key) is not None:
                raise _fail(f"{path}.{key} is only for close")
        return
    if rule.state is None:
        raise _fail(f"{path}.state is required for close")
    allowed = _allowed_close_states(channel, outcome)
    if rule.state not in allowed:
        why = " (only an inbound reply sets it)" if rule.state == "sms_responded" else ""
        raise _fail(
            f"{path}.state must be one of {', '.join(sorted(allowed))}, got {rule.state!r}{why}"
        )
    if rule.status not in STATUSES:
        raise _fail(f"{path}.status must be one of {', '.join(STATUSES)}, got {rule.status!r}")
    detail = rule.status_detail
    if not isinstance(detail, str) or not (
        detail in PREDEFINED_DETAILS or DETAIL_PATTERN.fullmatch(detail)
    ):
        raise _fail(
            f"{path}.status_detail must be a predefined detail ($none, $unavailable...) "
            f"or match {DETAIL_PATTERN.pattern}, got {detail!r}"
        )


def _a(channel: str) -> str:
    return "an SMS" if channel == "sms" else "a call"


def _allowed_close_states(channel: str, outcome: str) -> frozenset[str]:
    if channel == "call":
        return frozenset({"dangling"}) if outcome == Outcome.DANGLING else _CALL_CLOSE_STATES
    if outcome == SMS_SENT:
        return _CALL_CLOSE_STATES | frozenset(SMS_CLOSE_STATES)
    return _CALL_CLOSE_STATES


# --- Parsing ----------------------------------------------------------------

_TOP_KEYS = ("name", "version", "description", "caps", "sms", "on", "attempts")
_CAPS_KEYS = ("per_contact", "per_phone", "per_day")
_SMS_KEYS = ("text", "close_state")
_STEP_KEYS = ("phone", "sms", "ring_timeout_s", "delay_s", "max_tries", "text", "on")
_RULE_KEYS = ("action", "delay_s", "state", "status", "status_detail")


def _mapping(value: object, path: str, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(f"{path} must be a mapping, got {value!r}")
    for key in value:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise _fail(f"{where} is not a known key (known: {', '.join(known)})")
    return value


def _optional_str(value: object, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _fail(f"{path} must be a string, got {value!r}")
    return value


def _parse_rule(raw: object, path: str, channel: str, outcome: str) -> Rule:
    if isinstance(raw, str):
        raw = {"action": raw}  # short form: `invalid_number: next`
    data = _mapping(raw, path, _RULE_KEYS)
    if "action" not in data:
        raise _fail(f"{path}.action is required")
    action = data["action"]
    if action not in tuple(Action):
        raise _fail(f"{path}.action must be one of {', '.join(Action)}, got {action!r}")
    if "delay_s" in data and action not in (Action.RETRY, Action.NEXT):
        raise _fail(f"{path}.delay_s is only for retry and next")
    delay = data.get("delay_s", 0)
    _check_int(delay, f"{path}.delay_s", 0, MAX_DELAY_S)
    rule = Rule(
        Action(action),
        delay_s=delay,
        state=_optional_str(data.get("state"), f"{path}.state"),
        status=_optional_str(data.get("status"), f"{path}.status"),
        status_detail=_optional_str(data.get("status_detail"), f"{path}.status_detail"),
    )
    _validate_rule(rule, path, channel, outcome)
    return rule


def _parse_rules(raw: object, path: str, channel: str) -> dict[str, Rule]:
    outcomes = CALL_OUTCOMES if channel == "call" else SMS_OUTCOMES
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(f"{path} must be a mapping of outcome to rule, got {raw!r}")
    rules: dict[str, Rule] = {}
    for outcome, rule in raw.items():
        if outcome not in outcomes:
            raise _fail(
                f"{path}.{outcome}: {outcome!r} is not an outcome of {_a(channel)} step "
                f"(known: {', '.join(outcomes)})"
            )
        rules[outcome] = _parse_rule(rule, f"{path}.{outcome}", channel, outcome)
    return rules


def _parse_step(raw: object, path: str, call_defaults: Mapping[str, Rule]) -> Step:
    data = _mapping(raw, path, _STEP_KEYS)
    is_sms = data.get("sms", False)
    if not isinstance(is_sms, bool):
        raise _fail(f"{path}.sms must be true or false, got {is_sms!r}")
    channel = "sms" if is_sms else "call"
    if is_sms and "ring_timeout_s" in data:
        raise _fail(f"{path}.ring_timeout_s is only for call steps")
    if not is_sms and "text" in data:
        raise _fail(f"{path}.text is only for SMS steps (an SMS action uses sms.text)")
    rules = dict(call_defaults) if channel == "call" else {}
    rules.update(_parse_rules(data.get("on"), f"{path}.on", channel))
    return Step(
        channel=channel,
        phone=data.get("phone", 1),
        ring_timeout_s=data.get("ring_timeout_s", DEFAULT_RING_TIMEOUT_S),
        delay_s=data.get("delay_s", 0),
        max_tries=data.get("max_tries", 1),
        rules=rules,
        text=_optional_str(data.get("text"), f"{path}.text"),
    )


def parse_strategy(data: Mapping[str, Any]) -> Strategy:
    """Build a Strategy from its YAML/JSON form (strategies/README.md).

    Validates everything; unknown keys are errors. Raises StrategyError whose
    message names the bad field by its path, e.g.
    ``attempts[1].on.busy.delay_s must be >= 0`` (attempts count from 0).
    """
    top = _mapping(data, "", _TOP_KEYS)
    for key in ("name", "version", "attempts"):
        if key not in top:
            raise _fail(f"{key} is required")
    caps_raw = _mapping(top.get("caps") or {}, "caps", _CAPS_KEYS)
    caps = Caps(
        per_contact=caps_raw.get("per_contact", Caps.per_contact),
        per_phone=caps_raw.get("per_phone"),
        per_day=caps_raw.get("per_day"),
    )
    sms_raw = _mapping(top.get("sms") or {}, "sms", _SMS_KEYS)
    sms_text = _optional_str(sms_raw.get("text"), "sms.text")
    close_state = sms_raw.get("close_state", "sms_sent")
    call_defaults = _parse_rules(top.get("on"), "on", "call")
    for outcome, rule in call_defaults.items():
        if rule.action is Action.SMS and sms_text is None:
            raise _fail(f"on.{outcome}: action sms needs sms.text")
    attempts = top["attempts"]
    if not isinstance(attempts, Sequence) or isinstance(attempts, str | bytes):
        raise _fail(f"attempts must be a list, got {attempts!r}")
    steps = tuple(
        _parse_step(raw, f"attempts[{index}]", call_defaults) for index, raw in enumerate(attempts)
    )
    description = top.get("description")
    return Strategy(
        name=top["name"],
        version=top["version"],
        description="" if description is None else description,
        steps=steps,
        caps=caps,
        sms_text=sms_text,
        sms_close_state=close_state,
    )


def _rule_to_dict(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"action": rule.action.value}
    if rule.action in (Action.RETRY, Action.NEXT):
        out["delay_s"] = rule.delay_s
    if rule.action is Action.CLOSE:
        out.update(state=rule.state, status=rule.status, status_detail=rule.status_detail)
    return out


def strategy_to_dict(strategy: Strategy) -> dict[str, Any]:
    """The strategy in its YAML/JSON form: ``parse_strategy`` gives it back equal.

    Rules equal to the built-in defaults are left out; the top-level ``on`` is
    already merged into each step.
    """
    attempts: list[dict[str, Any]] = []
    for step in strategy.steps:
        item: dict[str, Any] = {"phone": step.phone}
        if step.channel == "sms":
            item["sms"] = True
        else:
            item["ring_timeout_s"] = step.ring_timeout_s
        item["delay_s"] = step.delay_s
        item["max_tries"] = step.max_tries
        if step.text is not None:
            item["text"] = step.text
        defaults = default_rules(step.channel, strategy.sms_close_state)
        on = {
            str(outcome): _rule_to_dict(rule)
            for outcome, rule in step.rules.items()
            if rule != defaults[outcome]
        }
        if on:
            item["on"] = on
        attempts.append(item)
    return {
        "name": strategy.name,
        "version": strategy.version,
        "description": strategy.description,
        "caps": {
            "per_contact": strategy.caps.per_contact,
            "per_phone": strategy.caps.per_phone,
            "per_day": strategy.caps.per_day,
        },
        "sms": {"text": strategy.sms_text, "close_state": strategy.sms_close_state},
        "attempts": attempts,
    }


# --- Files ------------------------------------------------------------------


@functools.cache
def _yaml_loader() -> Any:
    # Imported here: the engine itself needs no YAML, only the file loaders do.
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.2 booleans (so ``on:`` stays a key) and no duplicate keys."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable: the base class reports it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
            return super().construct_mapping(node, deep)

    bool_tag = "tag:yaml.org,2002:bool"
    # PyYAML follows YAML 1.1, where on/off/yes/no are booleans: `on:` would
    # become the key True.
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return yaml, Loader


def load_yaml_mapping(path: Path, error: type[DialerError], what: str) -> Mapping[str, Any]:
    """The mapping a YAML file holds (our loader: YAML 1.2 booleans, no duplicate
    keys); ``error`` naming the file when it cannot be read or holds anything else."""
    yaml, loader = _yaml_loader()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{path}: not valid YAML: {where}{problem}") from None
    if not isinstance(data, Mapping):
        raise error(f"{path}: must hold {what} (a mapping), got {data!r}")
    return data


def load_strategy_file(path: str | Path) -> Strategy:
    """Read one strategy from a YAML file. StrategyError messages start with the file."""
    path = Path(path)
    data = load_yaml_mapping(path, StrategyError, "one strategy")
    try:
        return parse_strategy(data)
    except StrategyError as exc:
        raise StrategyError(f"{path}: {exc}") from None


def load_strategies_dir(path: str | Path) -> list[Strategy]:
    """Every ``*.yaml`` / ``*.yml`` file of a directory, sorted by name then version.

    Two files defining the same name and version are an error.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise StrategyError(f"{directory}: not a directory")
    seen: dict[tuple[str, int], Path] = {}
    strategies: list[Strategy] = []
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for file in files:
        strategy = load_strategy_file(file)
        key = (strategy.name, strategy.version)
        if key in seen:
            raise StrategyError(
                f"{file}: strategy {strategy.name} version {strategy.version} "
                f"is also defined in {seen[key]}"
            )
        seen[key] = file
        strategies.append(strategy)
    return sorted(strategies, key=lambda s: (s.name, s.version))


# --- The engine -------------------------------------------------------------

_INVALID_CONTACT = Close("not_connected", "failed", "$invalid_contact")


def first_action(strategy: Strategy, phones: Sequence[str | None], now: datetime) -> Decision:
    """What to do first with a fresh contact.

    ``phones`` holds slots 1..5 (None or blank = empty; a shorter sequence
    means the rest are empty). Returns the first step that has a number to use,
    at ``now`` + its delay_s; Close not_connected/failed/$invalid_contact when
    no step has one.
    """
    return _advance(strategy, phones, (), 0, now, now)


def next_action(
    strategy: Strategy,
    phones: Sequence[str | None],
    history: Sequence[PastAttempt],
    now: datetime,
    *,
    run_since: datetime | None = None,
) -> Decision:
    """What to do after the attempt that just ended, ``history[-1]``.

    ``history`` is every attempt of the contact under this strategy, ordered by
    started_at. A returned Dial or SendSms is never due before ``now`` and
    respects the caps; every sequence of outcomes ends in a Close within
    ``caps.per_contact`` + 1 decisions, not counting trunk errors: those count
    for nothing (``counts``), and after one the same step is due again.
    Raises ValueError when the history does not fit the strategy (empty,
    unknown step or outcome). ``run_since``: the start of this run of the strategy
    (a flow's call task entered again, ``rerun_action``): a step's ``max_tries``
    counts the tries made since then; the caps count every attempt.
    """
    if not history:
        raise ValueError("history must end with the attempt that just ended")
    last = history[-1]
    if not 0 <= last.step < len(strategy.steps):
        raise ValueError(f"attempt step {last.step} is not a step of strategy {strategy.name}")
    step = strategy.steps[last.step]

    if last.channel == "sms" and step.channel == "call":
        # The SMS that an `sms` rule of this call step sent.
        if last.outcome == SMS_SENT:
            return close_for(strategy.sms_close_state)
        if last.outcome != SMS_FAILED:
            raise ValueError(f"unknown SMS outcome {last.outcome!r}")
        history = _counted(history)
        if len(history) >= strategy.caps.per_contact:
            return close_for("retries_completed")
        return _advance(strategy, phones, history, last.step + 1, now, now)

    if last.channel != step.channel:
        raise ValueError(f"{_a(last.channel)} attempt on step {last.step}, {_a(step.channel)} step")
    if last.outcome not in step.rules:
        raise ValueError(f"unknown {last.channel} outcome {last.outcome!r}")
    rule = step.rules[last.outcome]
    if not counts(last):
        # The same step again after the rule's delay, as if this call never
        # happened (validation allows only retry for a trunk error).
        counted = _counted(history)
        base = now + timedelta(seconds=rule.delay_s)
        if len(counted) >= strategy.caps.per_contact:
            return close_for("retries_completed")
        again = _schedule(strategy, phones, counted, last.step, base, now)
        return again or _advance(strategy, phones, counted, last.step + 1, base, now)
    history = _counted(history)
    # A dangling call always lands here: validation allows it only `close: dangling`.
    if rule.action is Action.CLOSE:
        assert rule.state is not None and rule.status is not None
        assert rule.status_detail is not None
        return Close(rule.state, rule.status, rule.status_detail)
    if len(history) >= strategy.caps.per_contact:
        return close_for("retries_completed")
    if rule.action is Action.SMS:
        slot = last.phone_slot
        if slot is None:
            resolved = _resolve(phones, step.phone)
            slot = resolved[0] if resolved else 1
        return SendSms(last.step, slot, last.number, now, _sms_text(strategy, step))

    base = now + timedelta(seconds=rule.delay_s)
    if rule.action is Action.RETRY:
        tries = sum(
            1
            for a in history
            if a.step == last.step
            and a.channel == step.channel
            and (run_since is None or a.started_at >= run_since)
        )
        if tries < step.max_tries:
            decision = _schedule(strategy, phones, history, last.step, base, now)
            if decision is not None:
                return decision
    # NEXT, or a RETRY that has no try left or whose number reached its cap.
    return _advance(strategy, phones, history, last.step + 1, base, now)


def rerun_action(
    strategy: Strategy,
    phones: Sequence[str | None],
    history: Sequence[PastAttempt],
    at: datetime,
    now: datetime,
) -> Decision:
    """The first action of another run of the strategy for a contact that has
    attempts already (a flow's call task entered again), due from ``at``.

    Like ``first_action``, from the first usable step; unlike it, within the caps,
    which count every attempt of the contact: ``per_contact`` reached closes it
    retries_completed at once, a number at its ``per_phone`` cap is skipped,
    ``per_day`` pushes the time back. Never due before ``now``.
    """
    counted = _counted(history)
    if len(counted) >= strategy.caps.per_contact:
        return close_for("retries_completed")
    return _advance(strategy, phones, counted, 0, at, now)


def redial(
    strategy: Strategy,
    phones: Sequence[str | None],
    history: Sequence[PastAttempt],
    step: int,
    at: datetime,
    now: datetime,
) -> Decision:
    """Dial step ``step`` again at ``at`` (an agent's "call again"), within the caps.

    Unlike a retry rule, step ``step``'s max_tries does not stop it: the person
    asked for it. The caps do: per_contact reached closes the contact
    retries_completed; a number at its per_phone cap moves on to the next usable
    step; per_day pushes the time back. Never due before ``now``.
    """
    if not 0 <= step < len(strategy.steps):
        raise ValueError(f"step {step} is not a step of strategy {strategy.name}")
    history = _counted(history)
    if len(history) >= strategy.caps.per_contact:
        return close_for("retries_completed")
    decision = _schedule(strategy, phones, history, step, at, now)
    if decision is not None:
        return decision
    return _advance(strategy, phones, history, step + 1, at, now)


def _advance(
    strategy: Strategy,
    phones: Sequence[str | None],
    history: Sequence[PastAttempt],
    start: int,
    base: datetime,
    now: datetime,
) -> Decision:
    """The first usable step from ``start`` on, due at base + its own delay."""
    for index in range(start, len(strategy.steps)):
        at = base + timedelta(seconds=strategy.steps[index].delay_s)
        decision = _schedule(strategy, phones, history, index, at, now)
        if decision is not None:
            return decision
    # Nothing was ever tried: no step had a number to use.
    return _INVALID_CONTACT if not history else close_for("retries_completed")


def _schedule(
    strategy: Strategy,
    phones: Sequence[str | None],
    history: Sequence[PastAttempt],
    index: int,
    at: datetime,
    now: datetime,
) -> Dial | SendSms | None:
    """Step ``index`` due at ``at``, or None when it cannot be used."""
    step = strategy.steps[index]
    resolved = _resolve(phones, step.phone)
    if resolved is None:
        return None
    slot, number = resolved
    at = max(at, now)
    if step.channel == "sms":
        return SendSms(index, slot, number, at, _sms_text(strategy, step))
    calls = [a for a in history if a.channel == "call"]
    per_phone = strategy.caps.per_phone
    if per_phone is not None and sum(1 for a in calls if a.number == number) >= per_phone:
        return None
    if strategy.caps.per_day is not None:
        at = _after_day_window(at, [a.started_at for a in calls], strategy.caps.per_day)
    return Dial(index, slot, number, at, step.ring_timeout_s)


def _after_day_window(at: datetime, call_times: Sequence[datetime], per_day: int) -> datetime:
    """The earliest moment from ``at`` on when one more call keeps every rolling
    24 h window at or under ``per_day`` calls."""
    times = sorted(call_times)
    while True:
        in_window = [t for t in times if t > at - _DAY]
        if len(in_window) < per_day:
            return at
        # Each pass drops at least the oldest call in the window: it terminates.
        at = in_window[0] + _DAY


def _resolve(phones: Sequence[str | None], slot: int) -> tuple[int, str] | None:
    """The slot and number a step on ``slot`` uses: an empty slot falls back to phone 1."""
    for candidate in (slot, 1):
        number = phones[candidate - 1] if candidate <= len(phones) else None
        if number is not None and number.strip():
            return candidate, number.strip()
    return None


def _sms_text(strategy: Strategy, step: Step) -> str:
    text = step.text if step.channel == "sms" and step.text is not None else strategy.sms_text
    if text is None:  # pragma: no cover - validation requires a text
        raise StrategyError(f"strategy {strategy.name} has no SMS text")
    return text
