"""Agents for the agent modes' tests: sipp phones registered as the queue's members.

One sipp UAS (scripts/sipp/agent.xml) answers for every agent at once and
holds each call for a random talk time; agents log in and out by REGISTER
(scripts/sipp/agent-register.xml, expires 0 to log out), which Asterisk turns
into the members' device states: registered and idle is NOT_INUSE (free),
unregistered is UNAVAILABLE.

    async with SippAgents(talk=TalkTime(min_s=2, exp_s=3)) as agents:
        await agents.register(3)        # agent01..agent03 log in
        ...
        await agents.unregister(["agent02"])

Ports: the agents' UAS listens on SIPP_PORT + 5 (control SIPP_PORT + 6), the
REGISTER runs use SIPP_PORT + 7 (control SIPP_PORT + 8), media from
SIPP_MEDIA_PORT + 100, where SIPP_PORT, SIPP_MEDIA_PORT and SIP_PORT are the
stack's, as ``scripts/stack env`` prints them for the stack named by
TEST_STACK_NAME ("test"). AGENT_SIPP_PORT and AGENT_SIPP_MEDIA_PORT override the
base ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SIPP_DIR = ROOT / "scripts" / "sipp"
# agent01..agent20 exist in the shipped pjsip.conf and queues.conf.
MAX_AGENTS = 20
QUEUE = "dialer-agents"


def agent_name(number: int) -> str:
    return f"agent{number:02d}"


@dataclasses.dataclass(frozen=True)
class TalkTime:
    """An agent's talk time per call: min_s + U * spread_s + E * exp_s.

    U is uniform on [0, 1), E exponential of mean 1, both drawn by sipp per
    call: TalkTime(min_s=2, exp_s=3) talks at least 2 s, 5 s on average.
    """

    min_s: float = 2.0
    spread_s: float = 0.0
    exp_s: float = 0.0

    @property
    def mean_s(self) -> float:
        return self.min_s + self.spread_s / 2 + self.exp_s


@dataclasses.dataclass(frozen=True)
class AgentPorts:
    asterisk_sip: int
    uas: int
    uas_control: int
    register: int
    register_control: int
    media: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AgentPorts:
        """The ports for the test stack named by TEST_STACK_NAME (see the module's doc)."""
        env = dict(os.environ if env is None else env)
        stack = stack_ports(env.get("TEST_STACK_NAME", "test"))
        sip = stack["SIP_PORT"]
        sipp = int(env.get("AGENT_SIPP_PORT", stack["SIPP_PORT"] + 5))
        media = int(env.get("AGENT_SIPP_MEDIA_PORT", stack["SIPP_MEDIA_PORT"] + 100))
        return cls(sip, sipp, sipp + 1, sipp + 2, sipp + 3, media)


def stack_ports(name: str) -> dict[str, int]:
    """A stack's ports as ``scripts/stack env`` gives them (its slot decides them)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DIALER_") and not key.endswith("_PORT") and key != "STACK_ENV_OF"
    }
    env["STACK_NAME"] = name
    out = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    ports = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key.endswith("_PORT"):
            ports[key] = int(value)
    return ports


class SippAgents:
    """Sipp agents against the local stack's Asterisk: start, log in/out, stop."""

    def __init__(self, talk: TalkTime | None = None, ports: AgentPorts | None = None) -> None:
        self.talk = talk or TalkTime()
        self.ports = ports or AgentPorts.from_env()
        self.registered: list[str] = []
        self._uas: asyncio.subprocess.Process | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="dialer-agents-"))

    async def __aenter__(self) -> SippAgents:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the agents' phone (the UAS); nobody is logged in yet.

        What an interrupted earlier run left behind goes first: its phone (found
        by the pid file of this port) and every agent's registration, so that no
        agent looks free with nobody to answer.
        """
        if shutil.which("sipp") is None:
            raise RuntimeError("sipp is not installed (scripts/stack start installs it)")
        await self._stop_leftover()
        await self._register(_names(MAX_AGENTS), expires=0)
        talk = self.talk
        stderr = (self._dir / "agent-stderr.log").open("wb")
        self._uas = await asyncio.create_subprocess_exec(
            "sipp",
            "-sf",
            str(SIPP_DIR / "agent.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.ports.uas),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(self.ports.media),
            "-cp",
            str(self.ports.uas_control),
            "-aa",
            "-nostdin",
            "-set",
            "talk_min_ms",
            str(round(talk.min_s * 1000)),
            "-set",
            "talk_spread_ms",
            str(round(talk.spread_s * 1000)),
            "-set",
            "talk_exp_ms",
            str(round(talk.exp_s * 1000)),
            "-trace_err",
            "-error_file",
            str(self._dir / "agent-errors.log"),
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: a pipe nobody reads would block sipp when full.
            stderr=stderr,
        )
        stderr.close()
        self._pid_file.write_text(str(self._uas.pid))
        # sipp exits at once on a bad scenario or a port in use.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._uas.wait(), 0.3)
            err = (self._dir / "agent-stderr.log").read_text(errors="replace")
            raise RuntimeError(f"the agents' sipp exited at start: {err}")

    async def register(self, agents: int | list[str]) -> list[str]:
        """Log agents in: the first ``agents`` (agent01...) or those named; returns their names."""
        names = _names(agents)
        await self._register(names, expires=3600)
        self.registered = sorted(set(self.registered) | set(names))
        return names

    async def unregister(self, agents: int | list[str] | None = None) -> None:
        """Log agents out (all registered ones by default): they become UNAVAILABLE."""
        names = self.registered if agents is None else _names(agents)
        if names:
            await self._register(names, expires=0)
        self.registered = sorted(set(self.registered) - set(names))

    async def stop(self) -> None:
        """Log everyone out, stop the phone and remove its files."""
        try:
            if self.registered:
                await self.unregister()
        finally:
            uas, self._uas = self._uas, None
            if uas is not None and uas.returncode is None:
                uas.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(uas.wait(), 10)
                except TimeoutError:
                    uas.kill()
                    await uas.wait()
            if uas is not None:
                self._pid_file.unlink(missing_ok=True)
            shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def _pid_file(self) -> Path:
        return Path(tempfile.gettempdir()) / f"dialer-agents-{self.ports.uas}.pid"

    async def _stop_leftover(self) -> None:
        pid = _leftover_phone(self._pid_file)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.05)
        self._pid_file.unlink(missing_ok=True)

    def errors(self) -> str:
        """What the agents' sipp logged as errors (unexpected messages, retransmissions)."""
        path = self._dir / "agent-errors.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def _register(self, names: list[str], *, expires: int) -> None:
        inf = self._dir / f"register-{expires}.csv"
        contact = f"127.0.0.1:{self.ports.uas}"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{name};{contact};{expires}\n" for name in names))
        proc = await asyncio.create_subprocess_exec(
            "sipp",
            f"127.0.0.1:{self.ports.asterisk_sip}",
            "-sf",
            str(SIPP_DIR / "agent-register.xml"),
            "-inf",
            str(inf),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.ports.register),
            "-cp",
            str(self.ports.register_control),
            "-m",
            str(len(names)),
            "-r",
            "200",
            "-timeout",
            "15",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(self._dir / "register-errors.log"),
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        if proc.returncode != 0:
            log = self._dir / "register-errors.log"
            detail = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(
                f"REGISTER (expires {expires}) of {names} failed, sipp exit {proc.returncode}: "
                f"{err.decode(errors='replace')} {detail}"
            )


def _leftover_phone(pid_file: Path) -> int | None:
    """The pid of an interrupted run's phone, if it still runs (not a reused pid)."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"sipp" in cmdline and b"agent.xml" in cmdline else None


def _names(agents: int | list[str]) -> list[str]:
    if isinstance(agents, int):
        if not 0 < agents <= MAX_AGENTS:
            raise ValueError(f"1 to {MAX_AGENTS} agents exist, not {agents}")
        return [agent_name(n) for n in range(1, agents + 1)]
    return list(agents)


async def seed_call_history(
    conn: Any,
    campaign_id: int,
    number: str,
    *,
    answered: int,
    abandoned: int = 0,
    not_answered: int = 0,
    hours_ago: float = 4.0,
) -> None:
    """Calls the campaign made earlier today, for pacing to measure: ``answered`` calls
    a person answered (``abandoned`` of them reached no agent, the others agent01),
    then ``not_answered`` busy ones. Predictive pacing reads its answer rate and its
    abandon windows from these, as it would in a campaign's working day."""
    calls = answered + not_answered
    if not calls:
        return
    contact = await conn.fetchval(
        "INSERT INTO contacts (campaign_id, phone1, state, closed_at) "
        "VALUES ($1, $2, 'connected', now()) RETURNING id",
        campaign_id,
        number,
    )
    earlier = datetime.now(UTC) - timedelta(hours=hours_ago)
    rows = []
    for i in range(calls):
        at = earlier + timedelta(seconds=20 * i)
        took = abandoned <= i < answered
        outcome = "busy" if i >= answered else "answered" if took else "abandoned"
        rows.append(
            (
                campaign_id,
                contact,
                number,
                outcome,
                at,
                at + timedelta(seconds=1) if i < answered else None,
                "agent01" if took else None,
                at + timedelta(seconds=1) if took else None,
                None if i >= answered else not took,
                at + timedelta(seconds=15),
            )
        )
    await conn.executemany(
        "INSERT INTO attempts (campaign_id, contact_id, number, state, outcome, created_at, "
        "answered_at, agent, agent_connected_at, abandoned, ended_at) "
        "VALUES ($1, $2, $3, 'ended', $4, $5, $6, $7, $8, $9, $10)",
        rows,
    )
