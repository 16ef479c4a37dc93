"""scripts/stack's port slots: every slot gives ports a stack can bind, none shared.

Read from ``scripts/stack ports`` (the table every slot's stack starts with) and checked
here on their own, not by trusting the script's verdict; ``scripts/stack env`` of a slot
must give the ports of that slot's row.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack"
SLOTS = 10


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Nothing of a developer's shell (a stack's exported settings) may leak in.
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run(
        ["bash", str(STACK), *args], env=clean, capture_output=True, text=True, timeout=60
    )


def _ranges(cell: str) -> list[range]:
    out = []
    for part in cell.split(","):
        first, _, last = part.partition("-")
        out.append(range(int(first), int(last or first) + 1))
    return out


def _table() -> dict[int, dict[str, list[range]]]:
    proc = _run("ports")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    assert header[:2] == ["slot", "stack"], lines[0]
    slots: dict[int, dict[str, list[range]]] = {}
    for line in lines[1:-1]:
        cells = line.split()
        slot = int(cells[0])
        # Slots past 2 have no stack name: their port cells start one column earlier.
        ports = cells[2:] if not cells[1][0].isdigit() else cells[1:]
        names = ["PG", "AMI", "SIP", "HTTP", "sipp", "agents", "media", "control", "RTP"]
        assert len(ports) == len(names), line
        slots[slot] = {name: _ranges(cell) for name, cell in zip(names, ports, strict=True)}
    assert "none used twice" in lines[-1]
    return slots


def test_every_slot_gives_valid_ports_that_no_other_port_of_any_slot_shares() -> None:
    slots = _table()
    assert sorted(slots) == list(range(SLOTS))
    owner: dict[int, str] = {}
    for slot, ports in slots.items():
        for name, ranges in ports.items():
            for span in ranges:
                assert len(span) >= 1
                for port in span:
                    assert 1024 <= port <= 65535, (slot, name, port)
                    assert port not in owner, (slot, name, port, owner[port])
                    owner[port] = f"slot {slot} {name}"
        # 1,000 calls: two RTP ports each.
        assert sum(len(r) for r in ports["RTP"]) == 2000, slot


@pytest.mark.parametrize("slot", range(SLOTS))
def test_a_stack_on_a_slot_takes_the_ports_of_its_row(slot: int, tmp_path: Path) -> None:
    row = _table()[slot]
    proc = _run(
        "env", STACK_NAME="slotcheck", STACK_PORT_SLOT=str(slot), STACK_STATE_DIR=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in proc.stdout.splitlines()
        if "=" in line
    )
    assert env["STACK_PORT_SLOT"] == str(slot)
    assert int(env["PG_PORT"]) == row["PG"][0].start
    assert int(env["DIALER_AMI_PORT"]) == row["AMI"][0].start
    assert int(env["SIP_PORT"]) == row["SIP"][0].start
    assert int(env["DIALER_HTTP_PORT"]) == row["HTTP"][0].start
    assert int(env["SIPP_PORT"]) == row["sipp"][0].start
    assert int(env["SIPP_MEDIA_PORT"]) == row["media"][0].start
    assert int(env["SIPP_CONTROL_PORT"]) == row["control"][0].start


def test_a_slot_beyond_the_table_is_refused_with_a_pointer_to_it(tmp_path: Path) -> None:
    proc = _run(
        "env", STACK_NAME="slotcheck", STACK_PORT_SLOT=str(SLOTS), STACK_STATE_DIR=str(tmp_path)
    )
    assert proc.returncode != 0
    assert "scripts/stack ports" in proc.stderr
