"""scripts/stack's pool of PBXs and its PostgreSQL replica: ports no other stack uses.

Read from ``scripts/stack ports`` (each slot's stack: PBX 1) and ``ports pool`` (PBX 2
and 3 of each slot, and its replica) and checked here on their own, not by trusting the
script's verdict; ``scripts/stack env`` of a slot must give the ports of its rows.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack"
SLOTS = 10
PBX_MAX = 3


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


def _rows(*args: str) -> list[list[str]]:
    proc = _run("ports", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "none used twice" in lines[-1]
    return [line.split() for line in lines[1:-1]]


def _stacks() -> dict[int, dict[str, list[range]]]:
    """Each slot's own ports (``ports``), by column."""
    names = ["PG", "AMI", "SIP", "HTTP", "sipp", "agents", "media", "control", "RTP"]
    slots = {}
    for cells in _rows():
        ports = cells[2:] if not cells[1][0].isdigit() else cells[1:]
        slots[int(cells[0])] = {n: _ranges(c) for n, c in zip(names, ports, strict=True)}
    return slots


def _pool() -> dict[tuple[int, int], dict[str, list[range]]]:
    """The ports of PBX 2 and 3 of each slot and of its replica (``ports pool``)."""
    names = ["AMI", "SIP", "sipp", "agents", "media", "control", "RTP", "PG replica"]
    return {
        (int(cells[0]), int(cells[1])): {
            n: _ranges(c) for n, c in zip(names, cells[2:], strict=True)
        }
        for cells in _rows("pool")
    }


def test_every_pbx_of_every_slot_and_its_replica_have_ports_of_their_own() -> None:
    owner: dict[int, str] = {}

    def claim(what: str, ranges: list[range]) -> None:
        for span in ranges:
            for port in span:
                assert 1024 <= port <= 65535, (what, port)
                assert port not in owner, (what, port, owner[port])
                owner[port] = what

    for slot, ports in _stacks().items():
        for name, ranges in ports.items():
            claim(f"slot {slot} {name}", ranges)
    pool = _pool()
    assert sorted(pool) == [(s, p) for s in range(SLOTS) for p in range(2, PBX_MAX + 1)]
    replicas = {}
    for (slot, pbx), ports in pool.items():
        replicas[slot] = ports.pop("PG replica")
        for name, ranges in ports.items():
            claim(f"slot {slot} PBX {pbx} {name}", ranges)
        # The agents of a PBX take its sipp port + 5 to + 8, like PBX 1's.
        assert ports["agents"] == [range(ports["sipp"][0].start + 5, ports["sipp"][0].start + 9)]
        assert sum(len(r) for r in ports["RTP"]) == 400, (slot, pbx)
    for slot, ranges in replicas.items():
        claim(f"slot {slot} PG replica", ranges)


@pytest.mark.parametrize("slot", [0, 1, 7, 9])
def test_a_stack_env_gives_every_pbx_and_the_replica_the_ports_of_their_rows(
    slot: int, tmp_path: Path
) -> None:
    proc = _run(
        "env", STACK_NAME="slotcheck", STACK_PORT_SLOT=str(slot), STACK_STATE_DIR=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in proc.stdout.splitlines()
        if "=" in line
    )
    own = _stacks()[slot]
    assert int(env["PBX1_AMI_PORT"]) == int(env["DIALER_AMI_PORT"]) == own["AMI"][0].start
    assert int(env["PBX1_SIPP_PORT"]) == own["sipp"][0].start
    assert env["PBX1_DIR"] == str(tmp_path)
    for pbx in range(2, PBX_MAX + 1):
        row = _pool()[(slot, pbx)]
        assert int(env[f"PBX{pbx}_AMI_PORT"]) == row["AMI"][0].start
        assert int(env[f"PBX{pbx}_SIP_PORT"]) == row["SIP"][0].start
        assert int(env[f"PBX{pbx}_SIPP_PORT"]) == row["sipp"][0].start
        assert int(env[f"PBX{pbx}_SIPP_MEDIA_PORT"]) == row["media"][0].start
        assert int(env[f"PBX{pbx}_SIPP_CONTROL_PORT"]) == row["control"][0].start
        assert env[f"PBX{pbx}_DIR"] == str(tmp_path / f"pbx{pbx}")
        replica = row["PG replica"][0].start
    assert int(env["PG_REPLICA_PORT"]) == replica
    assert env["DATABASE_FAILOVER_URL"] == (
        f"postgresql://postgres@127.0.0.1:{own['PG'][0].start},127.0.0.1:{replica}/dialer"
        "?target_session_attrs=read-write"
    )


@pytest.mark.parametrize("pbx", ["0", "4", "x"])
def test_a_pbx_outside_the_pool_is_refused(pbx: str, tmp_path: Path) -> None:
    proc = _run(
        "asterisk-kill",
        pbx,
        STACK_NAME="slotcheck",
        STACK_PORT_SLOT="7",
        STACK_STATE_DIR=str(tmp_path),
    )
    assert proc.returncode != 0
    assert f"PBX {pbx}: a stack's PBXs are numbered 1 to {PBX_MAX}" in proc.stderr
