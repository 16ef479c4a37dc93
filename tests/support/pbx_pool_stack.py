"""Daemons on a pool of the stack's PBXs (``scripts/stack pbx-start 2``).

PBX n of the stack is named ``pbx<n>`` here; its AMI port and its far end's
directory come from ``scripts/stack env`` (``PBX<n>_AMI_PORT``, ``PBX<n>_DIR``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dialer_server.config import Config, PbxConfig

from .daemon_process import DaemonProcess, daemon_env, wait_for


@dataclasses.dataclass(frozen=True)
class StackPbx:
    """PBX ``number`` of the stack, as a daemon's pool names it, with its limit."""

    number: int
    max_channels: int = 0
    weight: float = 0.0

    @property
    def name(self) -> str:
        return f"pbx{self.number}"

    def far_end(self, stack: Any) -> Path:
        """Where its sipp far end writes its trace (tests/support/far_end.py)."""
        return Path(stack.env[f"PBX{self.number}_DIR"])

    def config(self, stack: Any) -> PbxConfig:
        return PbxConfig(
            name=self.name,
            host="127.0.0.1",
            port=int(stack.env[f"PBX{self.number}_AMI_PORT"]),
            username=stack.env["DIALER_AMI_USERNAME"],
            secret=stack.env["DIALER_AMI_SECRET"],
            trunk="carrier",
            max_channels=self.max_channels,
            weight=self.weight,
        )


def pool_config(config: Config, stack: Any, *pbxs: StackPbx) -> Config:
    """``config`` dialling through these PBXs of the stack."""
    return dataclasses.replace(config, pbx=tuple(pbx.config(stack) for pbx in pbxs))


def pool_env(stack: Any, *pbxs: StackPbx) -> dict[str, str]:
    """The DIALER_PBX_<n>_* variables of a daemon dialling through these PBXs."""
    env: dict[str, str] = {}
    for index, pbx in enumerate(pbxs, start=1):
        prefix = f"DIALER_PBX_{index}_"
        env[prefix + "NAME"] = pbx.name
        env[prefix + "HOST"] = "127.0.0.1"
        env[prefix + "PORT"] = stack.env[f"PBX{pbx.number}_AMI_PORT"]
        env[prefix + "MAX_CHANNELS"] = str(pbx.max_channels)
        if pbx.weight:
            env[prefix + "WEIGHT"] = str(pbx.weight)
    return env


def start_pool_daemon(
    stack: Any, url: str, log: Path, pbxs: tuple[StackPbx, ...], **extra: str
) -> DaemonProcess:
    """A daemon subprocess on these PBXs of the stack, once /readyz says 200 (a PBX is up)."""
    env = daemon_env(stack, url, **pool_env(stack, *pbxs), **extra)
    # With [[pbx]] the [ami] section keeps only the login and timeouts.
    del env["DIALER_AMI_HOST"], env["DIALER_AMI_PORT"]
    daemon = DaemonProcess(env, log)
    try:
        wait_for(lambda: daemon.ready()[0] == 200 or not daemon.alive(), 20, "/readyz 200")
    except BaseException:
        daemon.close()
        raise
    assert daemon.alive(), daemon.log.read_text()
    return daemon
