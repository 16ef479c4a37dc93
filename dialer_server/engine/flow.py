"""Task flows: a campaign's tasks and the rules that move a contact between them.

A flow (seeds 000, 002) is a set of named tasks, each of a type (``call``, ``sms``,
``email``, ``webhook``, ``export``, ``wait``, ``new_contact``), and rules
``(from task, status, optional status_detail) -> (to task, delay)``. A contact
sits in one task at a time with a status: ``open`` while the task works on it,
then ``success``, ``declined`` or ``failed`` with a status detail; the rule for
that status (a rule naming the detail wins over one that does not) moves it on,
or, with no rule, the contact ends there. A call task runs the campaign's call
strategy: its final state gives the status and status detail.

Invariants a stored flow keeps (``parse_flow`` refuses anything else, naming the
place): the first task is a call task (contacts are imported to be called); every
rule goes from a task to a task of the flow, with a delay >= 0, and no two rules
are for the same (task, status, detail); a template names only placeholders that
exist; and every cycle of rules passes through a task with ``max_passes``, so no
contact loops for ever. A contact enters a task at most ``max_passes`` times: a rule
into a task whose passes are used up is not followed, the contact ends where it is.

Pure: parsing, validation and routing take data and return data. The YAML and
API format is documented for users in docs/flows.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DialerError
from ..states import PREDEFINED_DETAILS, STATUSES
from ..telephony.sms import TEMPLATE_FIELDS, unknown_placeholders
from .strategy import (
    DETAIL_PATTERN,
    MAX_DELAY_S,
    MAX_DESCRIPTION,
    MAX_SMS_TEXT,
    NAME_PATTERN,
    PHONE_SLOTS,
    load_yaml_mapping,
)


class FlowError(DialerError):
    """The task flow is invalid."""


TASK_TYPES = ("call", "sms", "email", "webhook", "export", "wait", "new_contact")
# The statuses a task ends with: a rule is for one of them (open means not ended).
END_STATUSES = tuple(s for s in STATUSES if s != "open")
EXPORT_FORMATS = ("csv", "xlsx")
MAX_TASKS = 50
MAX_RULES = 200
MAX_PASSES = 1000
MAX_TRIES = 20
MAX_SUBJECT = 255
MAX_BODY = 100_000
MAX_URL = 2000
# Keys each task type takes besides type and max_passes.
_TASK_KEYS: Mapping[str, tuple[str, ...]] = {
    "call": (),
    "sms": ("text", "phone"),
    "email": ("to", "subject", "body", "max_tries"),
    "webhook": ("url", "max_tries"),
    "export": ("format",),
    "wait": ("wait_s",),
    "new_contact": ("campaign",),
}
_TOP_KEYS = ("name", "version", "description", "start", "tasks", "rules")
_RULE_KEYS = ("from", "status", "status_detail", "to", "delay_s")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")
_CAMPAIGN_NAME_MAX = 200
DEFAULT_TRIES = 5


@dataclass(frozen=True)
class Task:
    """One task of a flow. ``options`` holds the type's own keys (see _TASK_KEYS)."""

    name: str
    type: str
    max_passes: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, self.type, self.max_passes, tuple(sorted(self.options.items()))))

    @property
    def max_tries(self) -> int:
        """Executions of one pass before it fails (email, webhook: retried on a
        temporary failure); 1 for the other types."""
        return int(self.options.get("max_tries", DEFAULT_TRIES if self.retries else 1))

    @property
    def retries(self) -> bool:
        return self.type in ("email", "webhook")


@dataclass(frozen=True)
class Rule:
    source: str
    status: str
    target: str
    status_detail: str | None = None
    delay_s: int = 0


@dataclass(frozen=True)
class Flow:
    """A validated flow: ``tasks`` start with the one where contacts start, then the
    others by name (a canonical order: a stored flow reads back equal)."""

    name: str
    version: int
    description: str
    tasks: tuple[Task, ...]
    rules: tuple[Rule, ...]

    @property
    def start(self) -> Task:
        return self.tasks[0]

    def task(self, name: str | None) -> Task | None:
        """The task named ``name`` (None: the first task); None if the flow has none."""
        if name is None:
            return self.start
        return next((t for t in self.tasks if t.name == name), None)


@dataclass(frozen=True)
class Move:
    """Where a contact that ended a task goes: ``target`` after ``delay_s``."""

    target: Task
    delay_s: int
    rule: Rule


@dataclass(frozen=True)
class Stay:
    """The contact ends in its task: no rule for its status, or (``reason``) the
    rule's target has no pass left."""

    reason: str | None = None


def route(
    flow: Flow, task: str, status: str, detail: str, passes: Mapping[str, int]
) -> Move | Stay:
    """What follows a contact ending ``task`` with ``status``/``detail``.

    ``passes``: how many times the contact entered each task so far. A rule naming
    ``detail`` wins over the rule for the status alone; a target whose
    ``max_passes`` the contact used up is not entered (Stay with the reason).
    """
    chosen: Rule | None = None
    for rule in flow.rules:
        if rule.source != task or rule.status != status:
            continue
        if rule.status_detail == detail:
            chosen = rule
            break
        if rule.status_detail is None and chosen is None:
            chosen = rule
    if chosen is None:
        return Stay()
    target = flow.task(chosen.target)
    assert target is not None  # validated
    used = passes.get(target.name, 0)
    if target.max_passes is not None and used >= target.max_passes:
        return Stay(
            f"task {target.name} was entered {used} times already (max_passes "
            f"{target.max_passes}): the contact ends in {task}"
        )
    return Move(target, chosen.delay_s, chosen)


def entry_delay_s(task: Task, rule_delay_s: int) -> int:
    """When a task entered now is due: the rule's delay, plus a wait task's wait."""
    return rule_delay_s + (int(task.options.get("wait_s", 0)) if task.type == "wait" else 0)


# --- validation ------------------------------------------------------------------


def _fail(message: str) -> FlowError:
    return FlowError(message)


def _int(value: object, path: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{path} must be an integer, got {value!r}")
    if value < low:
        raise _fail(f"{path} must be >= {low}")
    if value > high:
        raise _fail(f"{path} must be <= {high}")
    return value


def _text(value: object, path: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{path} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise _fail(f"{path} must be at most {max_len} characters")
    return value


def _template(value: object, path: str, max_len: int) -> str:
    text = _text(value, path, max_len)
    unknown = unknown_placeholders(text)
    if unknown:
        known = ", ".join("{" + f + "}" for f in sorted(TEMPLATE_FIELDS, key=_field_order))
        raise _fail(
            f"{path}: placeholder {{{unknown[0]}}} does not exist (known: {known}; "
            "{{ and }} write a brace)"
        )
    return text


def _field_order(name: str) -> tuple[int, str]:
    digits = name.removeprefix("param")
    return (int(digits), name) if digits.isdigit() else (99, name)


def _mapping(value: object, path: str, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(f"{path} must be a mapping, got {value!r}")
    for key in value:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise _fail(f"{where} is not a known key (known: {', '.join(known)})")
    return value


def _parse_task(name: object, raw: object) -> Task:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise _fail(f"tasks: a task name must match {NAME_PATTERN.pattern}, got {name!r}")
    path = f"tasks.{name}"
    if not isinstance(raw, Mapping):
        raise _fail(f"{path} must be a mapping, got {raw!r}")
    kind = raw.get("type")
    if kind not in TASK_TYPES:
        raise _fail(f"{path}.type must be one of {', '.join(TASK_TYPES)}, got {kind!r}")
    data = _mapping(raw, path, ("type", "max_passes", *_TASK_KEYS[kind]))
    max_passes = data.get("max_passes")
    if max_passes is not None:
        _int(max_passes, f"{path}.max_passes", 1, MAX_PASSES)
    options: dict[str, Any] = {}
    if kind == "sms":
        options["text"] = _template(data.get("text"), f"{path}.text", MAX_SMS_TEXT)
        options["phone"] = _int(data.get("phone", 1), f"{path}.phone", 1, PHONE_SLOTS)
    elif kind == "email":
        options["to"] = _template(data.get("to"), f"{path}.to", 255)
        options["subject"] = _template(data.get("subject"), f"{path}.subject", MAX_SUBJECT)
        options["body"] = _template(data.get("body"), f"{path}.body", MAX_BODY)
        options["max_tries"] = _int(
            data.get("max_tries", DEFAULT_TRIES), f"{path}.max_tries", 1, MAX_TRIES
        )
    elif kind == "webhook":
        url = _text(data.get("url"), f"{path}.url", MAX_URL)
        if not _URL.fullmatch(url):
            raise _fail(f"{path}.url must be an http(s):// URL, got {url!r}")
        options["url"] = url
        options["max_tries"] = _int(
            data.get("max_tries", DEFAULT_TRIES), f"{path}.max_tries", 1, MAX_TRIES
        )
    elif kind == "export":
        fmt = data.get("format", "csv")
        if fmt not in EXPORT_FORMATS:
            raise _fail(f"{path}.format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
        options["format"] = fmt
    elif kind == "wait":
        options["wait_s"] = _int(data.get("wait_s", 0), f"{path}.wait_s", 0, MAX_DELAY_S)
    elif kind == "new_contact":
        options["campaign"] = _text(data.get("campaign"), f"{path}.campaign", _CAMPAIGN_NAME_MAX)
    return Task(name, kind, max_passes, options)


def _parse_rule(raw: object, index: int, tasks: Mapping[str, Task]) -> Rule:
    path = f"rules[{index}]"
    data = _mapping(raw, path, _RULE_KEYS)
    for key in ("from", "status", "to"):
        if key not in data:
            raise _fail(f"{path}.{key} is required")
    source, target = data["from"], data["to"]
    if source not in tasks:
        raise _fail(f"{path}.from: {source!r} is not a task of this flow")
    if target not in tasks:
        raise _fail(f"{path}.to: {target!r} is not a task of this flow (a rule to nowhere)")
    status = data["status"]
    if status not in END_STATUSES:
        raise _fail(
            f"{path}.status must be one of {', '.join(END_STATUSES)} (a task that is open "
            f"has not ended), got {status!r}"
        )
    detail = data.get("status_detail")
    if detail is not None and not (
        isinstance(detail, str)
        and (detail in PREDEFINED_DETAILS or DETAIL_PATTERN.fullmatch(detail))
    ):
        raise _fail(
            f"{path}.status_detail must be a predefined detail ($none, $unavailable...) "
            f"or match {DETAIL_PATTERN.pattern}, got {detail!r}"
        )
    delay = _int(data.get("delay_s", 0), f"{path}.delay_s", 0, MAX_DELAY_S)
    return Rule(source, status, target, detail, delay)


def parse_flow(data: Mapping[str, Any]) -> Flow:
    """Build a Flow from its YAML/JSON form (docs/flows.md), validating everything.

    Raises FlowError whose message names the place: ``rules[2].to: 'nowhere' is
    not a task of this flow``, ``tasks.mail.subject: placeholder {param13} does not
    exist``, ``rules[0].delay_s must be >= 0`` (rules count from 0).
    """
    top = _mapping(data, "", _TOP_KEYS)
    for key in ("name", "version", "tasks"):
        if key not in top:
            raise _fail(f"{key} is required")
    name = top["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise _fail(f"name must match {NAME_PATTERN.pattern}, got {name!r}")
    version = _int(top["version"], "version", 1, 2**31 - 1)
    description = top.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise _fail(f"description must be a string of at most {MAX_DESCRIPTION} characters")
    raw_tasks = top["tasks"]
    if not isinstance(raw_tasks, Mapping) or not raw_tasks:
        raise _fail("tasks must map task names to tasks, at least one")
    if len(raw_tasks) > MAX_TASKS:
        raise _fail(f"tasks must hold at most {MAX_TASKS} tasks")
    tasks = {task.name: task for task in (_parse_task(k, v) for k, v in raw_tasks.items())}
    start = top.get("start", next(iter(tasks)))
    if start not in tasks:
        raise _fail(f"start: {start!r} is not a task of this flow")
    first = tasks[start]
    if first.type != "call":
        raise _fail(
            f"tasks.{first.name}: the first task is where new contacts start and must be a "
            f"call task, got {first.type} (start names the first task; without it, the "
            "first one listed)"
        )
    raw_rules = top.get("rules") or []
    if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str | bytes):
        raise _fail(f"rules must be a list, got {raw_rules!r}")
    if len(raw_rules) > MAX_RULES:
        raise _fail(f"rules must hold at most {MAX_RULES} rules")
    rules = tuple(_parse_rule(raw, i, tasks) for i, raw in enumerate(raw_rules))
    seen: dict[tuple[str, str, str | None], int] = {}
    for index, rule in enumerate(rules):
        rule_key = (rule.source, rule.status, rule.status_detail)
        if rule_key in seen:
            raise _fail(
                f"rules[{index}] is for the same task, status and status_detail as "
                f"rules[{seen[rule_key]}]"
            )
        seen[rule_key] = index
    ordered = (first, *sorted((t for t in tasks.values() if t is not first), key=lambda t: t.name))
    flow = Flow(name, version, description, ordered, rules)
    _check_cycles(flow)
    return flow


def _check_cycles(flow: Flow) -> None:
    """Every cycle of rules must pass through a task with max_passes.

    Removing the tasks that have a pass limit must leave no cycle: a contact going
    round any cycle then enters one of them each time, and stops once it is used up.
    """
    # In the flow's order (the first task first): the message names the same cycle
    # every time.
    edges: dict[str, list[str]] = {t.name: [] for t in flow.tasks if t.max_passes is None}
    unbounded = set(edges)
    for rule in flow.rules:
        if rule.source in unbounded and rule.target in unbounded:
            edges[rule.source].append(rule.target)
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise _fail(
                    f"rules: the cycle {' -> '.join(cycle)} has no pass limit: give one of "
                    "its tasks max_passes (how many times a contact may enter it)"
                )
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)


def flow_to_dict(flow: Flow) -> dict[str, Any]:
    """The flow in its YAML/JSON form with every default filled in: ``parse_flow``
    gives it back equal."""
    tasks: dict[str, Any] = {}
    for task in flow.tasks:
        item: dict[str, Any] = {"type": task.type}
        if task.max_passes is not None:
            item["max_passes"] = task.max_passes
        item.update(task.options)
        tasks[task.name] = item
    rules = []
    for rule in flow.rules:
        item = {"from": rule.source, "status": rule.status}
        if rule.status_detail is not None:
            item["status_detail"] = rule.status_detail
        item.update({"to": rule.target, "delay_s": rule.delay_s})
        rules.append(item)
    return {
        "name": flow.name,
        "version": flow.version,
        "description": flow.description,
        "start": flow.start.name,
        "tasks": tasks,
        "rules": rules,
    }


# --- files -----------------------------------------------------------------------


def load_flow_file(path: str | Path) -> Flow:
    """Read one flow from a YAML file. FlowError messages start with the file."""
    data = load_yaml_mapping(Path(path), FlowError, "one flow")
    try:
        return parse_flow(data)
    except FlowError as exc:
        raise FlowError(f"{path}: {exc}") from None


def load_flows_dir(path: str | Path) -> list[Flow]:
    """Every ``*.yaml`` / ``*.yml`` file of a directory, sorted by name then version;
    two files with the same name and version are an error."""
    directory = Path(path)
    if not directory.is_dir():
        raise FlowError(f"{directory}: not a directory")
    seen: dict[tuple[str, int], Path] = {}
    flows: list[Flow] = []
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for file in files:
        flow = load_flow_file(file)
        key = (flow.name, flow.version)
        if key in seen:
            raise FlowError(
                f"{file}: flow {flow.name} version {flow.version} is also defined in {seen[key]}"
            )
        seen[key] = file
        flows.append(flow)
    return sorted(flows, key=lambda f: (f.name, f.version))
