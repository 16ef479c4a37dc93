"""Task flows as data: parsing, the refusals that name the place, routing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.engine.flow import (
    FlowError,
    Move,
    Stay,
    entry_delay_s,
    flow_to_dict,
    load_flow_file,
    load_flows_dir,
    parse_flow,
    route,
)

ROOT = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "name": "f",
    "version": 1,
    "tasks": {
        "call": {"type": "call", "max_passes": 3},
        "mail": {"type": "email", "to": "{param3}", "subject": "Hi {param1}", "body": "{param2}"},
        "won": {"type": "export"},
        "later": {"type": "wait", "wait_s": 2},
    },
    "rules": [
        {"from": "call", "status": "success", "to": "mail"},
        {"from": "call", "status": "failed", "status_detail": "$unavailable", "to": "later"},
        {"from": "later", "status": "success", "to": "call", "delay_s": 5},
        {"from": "mail", "status": "success", "to": "won"},
    ],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(FlowError) as info:
        parse_flow(data)
    return str(info.value)


def test_the_shipped_flow_files_load() -> None:
    flows = load_flows_dir(ROOT / "flows")
    assert [f.name for f in flows] == ["brochure"]
    assert flows[0].start.name == "call"


def test_a_flow_reads_back_equal_from_its_stored_form() -> None:
    flow = parse_flow(BASE)
    assert parse_flow(flow_to_dict(flow)) == flow
    # Stored as jsonb, an object's keys come back in another order: the start stays.
    stored = flow_to_dict(flow)
    stored["tasks"] = dict(sorted(stored["tasks"].items(), reverse=True))
    assert parse_flow(stored) == flow


def test_an_unknown_task_in_a_rule_is_refused_naming_the_rule() -> None:
    rules = [*BASE["rules"], {"from": "mial", "status": "success", "to": "won"}]
    assert refused(with_changes(rules=rules)) == "rules[4].from: 'mial' is not a task of this flow"


def test_a_rule_to_nowhere_is_refused_naming_the_rule() -> None:
    rules = [*BASE["rules"], {"from": "won", "status": "success", "to": "nowhere"}]
    message = refused(with_changes(rules=rules))
    assert message.startswith("rules[4].to: 'nowhere' is not a task of this flow")


def test_a_negative_delay_is_refused_naming_the_rule() -> None:
    rules = copy.deepcopy(BASE["rules"])
    rules[2]["delay_s"] = -1
    assert refused(with_changes(rules=rules)) == "rules[2].delay_s must be >= 0"


def test_a_placeholder_that_does_not_exist_is_refused_naming_the_field() -> None:
    tasks = copy.deepcopy(BASE["tasks"])
    tasks["mail"]["subject"] = "Hi {first_name}"
    message = refused(with_changes(tasks=tasks))
    assert message.startswith("tasks.mail.subject: placeholder {first_name} does not exist")
    tasks["mail"]["subject"] = "Hi {param13}"
    assert refused(with_changes(tasks=tasks)).startswith(
        "tasks.mail.subject: placeholder {param13}"
    )


def test_an_unknown_task_type_is_refused_naming_the_task() -> None:
    tasks = copy.deepcopy(BASE["tasks"])
    tasks["won"]["type"] = "fax"
    assert refused(with_changes(tasks=tasks)).startswith("tasks.won.type must be one of call, sms")


def test_a_cycle_without_a_pass_limit_is_refused() -> None:
    tasks = copy.deepcopy(BASE["tasks"])
    del tasks["call"]["max_passes"]
    message = refused(with_changes(tasks=tasks))
    assert message.startswith("rules: the cycle call -> later -> call has no pass limit")
    # A limit on any task of the cycle bounds it.
    tasks["later"]["max_passes"] = 2
    parse_flow(with_changes(tasks=tasks))


def test_two_rules_for_the_same_status_are_refused() -> None:
    rules = [*BASE["rules"], {"from": "call", "status": "success", "to": "won"}]
    assert refused(with_changes(rules=rules)) == (
        "rules[4] is for the same task, status and status_detail as rules[0]"
    )


def test_the_first_task_must_be_a_call() -> None:
    assert refused(with_changes(start="mail")).startswith(
        "tasks.mail: the first task is where new contacts start and must be a call task"
    )


def test_unknown_keys_and_bad_values_name_their_place() -> None:
    tasks = copy.deepcopy(BASE["tasks"])
    tasks["won"]["format"] = "pdf"
    assert refused(with_changes(tasks=tasks)).startswith("tasks.won.format must be one of csv")
    tasks = copy.deepcopy(BASE["tasks"])
    tasks["later"]["url"] = "http://x"
    assert refused(with_changes(tasks=tasks)).startswith("tasks.later.url is not a known key")
    rules = copy.deepcopy(BASE["rules"])
    rules[0]["status"] = "open"
    assert refused(with_changes(rules=rules)).startswith("rules[0].status must be one of success")
    tasks = copy.deepcopy(BASE["tasks"])
    tasks["hook"] = {"type": "webhook", "url": "ftp://crm"}
    assert refused(with_changes(tasks=tasks)).startswith("tasks.hook.url must be an http(s)://")


def test_a_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nversion: 1\ntasks:\n  call: {type: call}\n  x: {type: wait, wait_s: -2}\n"
    )
    with pytest.raises(FlowError, match=r"bad.yaml: tasks.x.wait_s must be >= 0"):
        load_flow_file(path)


def test_a_status_detail_rule_wins_over_the_status_rule() -> None:
    data = with_changes(
        rules=[
            {"from": "call", "status": "failed", "to": "won"},
            {"from": "call", "status": "failed", "status_detail": "$unavailable", "to": "later"},
            {"from": "later", "status": "success", "to": "call"},
        ]
    )
    flow = parse_flow(data)
    moved = route(flow, "call", "failed", "$unavailable", {"call": 1})
    assert isinstance(moved, Move) and moved.target.name == "later"
    moved = route(flow, "call", "failed", "$wrong_number", {"call": 1})
    assert isinstance(moved, Move) and moved.target.name == "won"
    assert route(flow, "call", "declined", "$none", {"call": 1}) == Stay()


def test_a_target_whose_passes_are_used_up_is_not_entered() -> None:
    flow = parse_flow(BASE)
    assert isinstance(route(flow, "later", "success", "$none", {"call": 2}), Move)
    stay = route(flow, "later", "success", "$none", {"call": 3})
    assert isinstance(stay, Stay) and stay.reason is not None and "max_passes 3" in stay.reason


def test_a_wait_task_is_due_after_the_rule_delay_and_its_wait() -> None:
    flow = parse_flow(BASE)
    later = flow.task("later")
    assert later is not None and entry_delay_s(later, 3) == 5
    mail = flow.task("mail")
    assert mail is not None and entry_delay_s(mail, 3) == 3


@given(
    st.lists(st.sampled_from(["success", "declined", "failed"]), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=5),
)
def test_no_sequence_of_results_loops_for_ever(statuses: list[str], limit: int) -> None:
    """Whatever each task ends with, a contact enters a limited task at most its limit."""
    data = with_changes(
        tasks={
            "call": {"type": "call"},
            "later": {"type": "wait", "max_passes": limit},
            "hook": {"type": "webhook", "url": "http://127.0.0.1/x"},
        },
        rules=[
            {"from": "call", "status": s, "to": "later"} for s in ("success", "declined", "failed")
        ]
        + [
            {"from": "later", "status": "success", "to": "hook"},
            {"from": "hook", "status": "failed", "to": "call"},
            {"from": "hook", "status": "success", "to": "call"},
        ],
    )
    flow = parse_flow(data)
    passes = {"call": 1}
    task = "call"
    moves = 0
    for status in statuses * 10:
        result = route(flow, task, status if task != "later" else "success", "$none", passes)
        if isinstance(result, Stay):
            break
        task = result.target.name
        passes[task] = passes.get(task, 0) + 1
        moves += 1
    assert passes.get("later", 0) <= limit
    assert moves <= 3 * limit + 2
