"""The shipped systemd unit: valid for systemd, hardened, and patient enough for the drain."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dialer_server.cli import exit_status
from dialer_server.config import DialingConfig
from dialer_server.daemon import STOP_GRACE_S
from dialer_server.errors import AmiAuthError, ConfigError, DatabaseUnavailable, DialerError

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "dialer-server.service"
# scripts/test installs the systemd package, which ships systemd-analyze.
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "systemd-analyze"


def directives() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, by key (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "min": 60.0}
    for suffix, factor in units.items():
        if value.endswith(suffix) and value[: -len(suffix)].isdigit():
            return int(value[: -len(suffix)]) * factor
    return float(value)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # A root with the system's units, ours, and an executable where ExecStart
    # points (verify checks it exists): verify then reads the unit as installed.
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc/systemd/system" / UNIT.name)
    (exec_start,) = directives()["ExecStart"]
    binary = tmp_path / exec_start.split()[0].lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={tmp_path}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on mere warnings (an unknown key, a bad value): none allowed.
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_unit_exposure_is_rated_ok_by_systemd_analyze_security() -> None:
    proc = subprocess.run(
        # The threshold is in tenths: 20 means an overall exposure of 2.0 ("OK").
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unit_runs_as_a_dedicated_user_with_hardening() -> None:
    unit = directives()
    assert unit["User"] == ["dialer"] and unit["Group"] == ["dialer"]
    assert unit["EnvironmentFile"] == ["/etc/dialer-server/dialer.env"]
    assert "DIALER_CONFIG=/etc/dialer-server/dialer.toml" in unit["Environment"]
    assert unit["Restart"] == ["on-failure"]
    # A configuration error (exit 2) is not retried in a loop.
    assert unit["RestartPreventExitStatus"] == ["2"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
    }.items():
        assert unit[key] == [value], key


def test_stop_timeout_outlasts_the_drain() -> None:
    unit = directives()
    assert unit["KillSignal"] == ["SIGTERM"]
    # Only the daemon gets SIGTERM; its drain, then the rest, each bounded.
    assert unit["KillMode"] == ["mixed"]
    (timeout,) = unit["TimeoutStopSec"]
    assert seconds(timeout) >= DialingConfig().drain_s + 2 * STOP_GRACE_S + 5


def test_what_a_restart_cannot_fix_exits_with_a_status_the_unit_does_not_restart() -> None:
    (prevented,) = directives()["RestartPreventExitStatus"]
    not_restarted = {int(status) for status in prevented.split()}
    # A refused AMI login at start: the credentials are wrong until someone fixes them;
    # restarted every few seconds it would only fill the journal.
    assert exit_status(AmiAuthError("refused")) in not_restarted
    assert exit_status(ConfigError("typo")) in not_restarted
    # What may pass (PostgreSQL or AMI not up yet, a crash) is restarted.
    assert exit_status(DatabaseUnavailable("down")) not in not_restarted
    assert exit_status(DialerError("internal")) not in not_restarted
