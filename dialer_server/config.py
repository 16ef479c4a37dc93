"""Settings: typed dataclasses read from a TOML file, then the environment.

Precedence: defaults < TOML file < environment. Environment variables are named
``DIALER_<SECTION>_<KEY>`` (``DIALER_AMI_SECRET``), and ``DIALER_PBX_<n>_<KEY>``
for the n-th ``[[pbx]]`` table of the pool; ``DATABASE_URL`` is honoured as well,
since that is what most hosting and tooling set. Unknown keys are errors: a typo
in a config file must not silently fall back to a default. Without ``[[pbx]]``
the pool is one PBX built from ``[ami]`` and ``dialing.trunk`` (``Config.pool``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "DIALER_"
# Environment variables with our prefix that are not settings.
_NON_SETTING_ENV = {"DIALER_CONFIG", "DIALER_CACHE_DIR", "DIALER_VENV"}


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    url: str = "postgresql://postgres@127.0.0.1:55432/dialer"
    min_connections: int = 2
    max_connections: int = 10
    connect_timeout_s: float = 5.0


@dataclasses.dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "dialer"
    secret: str = ""
    connect_timeout_s: float = 5.0
    # Every AMI action is bounded: a dropped link must never leave a waiter hanging.
    action_timeout_s: float = 10.0
    # Our own Ping watchdog (panoramisk's never checks the reply).
    ping_interval_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


PBX_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The PBX of a daemon configured the single-PBX way ([ami] and dialing.trunk).
DEFAULT_PBX = "default"


@dataclasses.dataclass(frozen=True)
class PbxConfig:
    """One Asterisk server of the pool (a ``[[pbx]]`` table).

    Empty values are inherited: ``username`` and ``secret`` from ``[ami]``,
    ``trunk`` from ``dialing.trunk``; ``Config.pool`` gives them filled in.
    """

    name: str = ""
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = dataclasses.field(default="", repr=False)
    # The PJSIP endpoint calls leave through on this PBX.
    trunk: str = ""
    # The most calls the dialers may have on it at once, counted across every
    # daemon (0: no limit of its own).
    max_channels: int = 0
    # Its share of the calls while it has free channels (0: its max_channels,
    # or 1 without a limit): calls spread in proportion to the weights.
    weight: float = 0.0

    @property
    def share(self) -> float:
        """The weight placement spreads calls by."""
        if self.weight > 0:
            return self.weight
        return float(self.max_channels) if self.max_channels > 0 else 1.0

    @property
    def limit(self) -> int | None:
        return self.max_channels if self.max_channels > 0 else None

    def ami(self, base: AmiConfig) -> AmiConfig:
        """The AMI settings of this PBX: its endpoint and login, [ami]'s timeouts."""
        return dataclasses.replace(
            base, host=self.host, port=self.port, username=self.username, secret=self.secret
        )


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclasses.dataclass(frozen=True)
class DialingConfig:
    # The PJSIP endpoint campaign calls leave through (pjsip.conf).
    trunk: str = "carrier"
    # Where answered calls enter the dialplan (extensions.conf); IVR campaigns'
    # calls enter ivr_context instead.
    context: str = "dialer-answered"
    ivr_context: str = "dialer-ivr"
    # Agent campaigns' (progressive, power, predictive) answered calls enter
    # agent_context ([dialer-agents]: a queue of agents, a grace time, an
    # abandon message).
    agent_context: str = "dialer-agents"
    # Preview calls dialled agent-first: the agent's phone is rung into
    # preview_agent_context ([dialer-preview-agent]: it waits there), then the
    # customer's, whose answer enters preview_context ([dialer-preview]: bridged
    # to the waiting agent).
    preview_context: str = "dialer-preview"
    preview_agent_context: str = "dialer-preview-agent"
    # How long the agent's phone rings before a preview call is given up.
    preview_agent_ring_s: float = 20.0
    # The queue's wrapuptime (queues.conf, 0 as shipped): an agent whose call
    # just ended is not counted as free for this long, as Asterisk gives them
    # no call then.
    agent_wrapup_s: float = 0.0
    extension: str = "s"
    caller_id: str = ""
    # Regulations in several countries require at least 15 s of ringing.
    ring_timeout_s: float = 30.0
    # How long after the ring timeout we still wait for Asterisk's verdict on a
    # call before calling it dangling.
    result_margin_s: float = 30.0
    # An answered call is followed at most this long (then it is left to Asterisk).
    max_call_s: float = 3600.0
    # Call strategy files (*.yaml) loaded into the database at start.
    strategies_dir: str = "strategies"
    # How often the scheduler looks for due contacts.
    tick_s: float = 0.2
    # How often open attempts nobody follows (a dead daemon's) are looked for.
    reconcile_interval_s: float = 5.0
    # On SIGTERM no new call starts; calls in flight get this long to end and
    # be recorded (what is left is reconciled at the next start). Keep it above
    # ring_timeout_s, and the service manager's stop timeout above it.
    drain_s: float = 60.0
    # The hangup handler every call carries ([dialer-call-end]): it records how
    # the call ended in AstDB, read back when no daemon saw the end. Empty: no
    # handler, and such calls close as dangling.
    call_end_context: str = "dialer-call-end"
    # A campaign pauses itself after this many trunk errors in a row (calls the
    # carrier refused: SIP 401, 402, 403, 407); 0: never.
    trunk_error_pause_after: int = 5


@dataclasses.dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"


SMS_PROVIDERS = ("none", "ami", "http")


@dataclasses.dataclass(frozen=True)
class SmsConfig:
    # "none", "ami" (MessageSend over a PJSIP endpoint) or "http" (a gateway).
    provider: str = "none"
    # ami: the PJSIP endpoint (pjsip.conf) the MESSAGE leaves through, and the
    # From of the MESSAGE ("15550001111" or "sip:15550001111@host"; empty: the
    # endpoint's default). Replies come back to that number.
    endpoint: str = "carrier"
    from_uri: str = ""
    # http: POSTed to url with body_template (JSON; {number}, {text} and
    # {attempt_id} become JSON strings); auth_header is sent as Authorization.
    url: str = ""
    auth_header: str = dataclasses.field(default="", repr=False)
    body_template: str = '{"to": {number}, "text": {text}, "id": {attempt_id}}'
    timeout_s: float = 10.0


API_SCOPES = ("read", "write")


@dataclasses.dataclass(frozen=True)
class ApiToken:
    """One bearer token of the HTTP API. ``write`` can also read."""

    name: str
    token: str = dataclasses.field(repr=False)
    scope: str = "write"


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    # Bearer tokens of /api/v1: comma-separated "name:token" or "name:token:scope"
    # (scope read or write; without one, write, which can read too). A token is
    # at least 16 characters. No tokens: every API request is refused (401).
    tokens: str = dataclasses.field(default="", repr=False)


def parse_api_tokens(text: str) -> tuple[ApiToken, ...]:
    """The tokens of ``api.tokens``; ConfigError naming the bad entry."""
    tokens: list[ApiToken] = []
    for index, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(f"config key api.tokens entry {index} must be name:token[:scope]")
        name, token = parts[0].strip(), parts[1].strip()
        scope = parts[2].strip() if len(parts) == 3 else "write"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(
                f"config key api.tokens entry {index}: name must be 1-64 of A-Z a-z 0-9 _ . -"
            )
        if len(token) < 16 or any(c.isspace() for c in token):
            raise ConfigError(
                f"config key api.tokens entry {index} ({name}): the token must be at least "
                "16 characters, without spaces"
            )
        if scope not in API_SCOPES:
            raise ConfigError(
                f"config key api.tokens entry {index} ({name}): scope must be one of "
                f"{', '.join(API_SCOPES)}, got {scope!r}"
            )
        if any(t.name == name for t in tokens):
            raise ConfigError(f"config key api.tokens: name {name!r} is used twice")
        if any(t.token == token for t in tokens):
            raise ConfigError(f"config key api.tokens: entry {index} ({name}) repeats a token")
        tokens.append(ApiToken(name, token, scope))
    return tuple(tokens)


@dataclasses.dataclass(frozen=True)
class WebhooksConfig:
    # Events are POSTed to url, signed with secret (HMAC-SHA256), unless their
    # campaign has a hook of its own (set over the API). No url: only those
    # campaigns get events. enabled = false: nothing is sent at all.
    enabled: bool = True
    url: str = ""
    secret: str = dataclasses.field(default="", repr=False)
    # Each POST is bounded; a slower CRM counts as a failed delivery.
    timeout_s: float = 10.0
    # Retries: the delay doubles from min to max (with jitter), forever.
    min_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    # LISTEN/NOTIFY wakes the sender at once; this is the fallback poll.
    poll_interval_s: float = 5.0
    # Events sent at once (each to a different contact or campaign).
    batch_size: int = 20
    # Delivered events are deleted after this many days (0: kept forever).
    retention_days: float = 7.0
    # Host names, addresses and networks (CIDR) that campaigns' own hooks, set over
    # the API, may lead to although they are loopback, link-local or cloud metadata
    # addresses (refused otherwise), comma-separated: "127.0.0.1, crm.internal".
    allowed_hosts: str = ""

    @property
    def active(self) -> bool:
        """The daemon's own hook is on (a url, and enabled)."""
        return self.enabled and bool(self.url)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class AllowedHosts:
    """``[webhooks] allowed_hosts``: host names, addresses and networks a campaign's hook
    may lead to although they are loopback, link-local or cloud metadata."""

    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowedHosts:
        """ValueError naming a bad entry."""
        names: set[str] = set()
        networks: list[Network] = []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            with contextlib.suppress(ValueError):  # not a network: a host name, then
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            labels = entry.rstrip(".").split(".")
            if not all(
                re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", x) for x in labels
            ):
                raise ValueError(f"{entry!r} is not a host name, an address or a network")
            names.add(entry.lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def allows_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    # How long a log-in (the desk's session token) lasts.
    session_hours: float = 12.0


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    # Audit log rows older than this are deleted (0: kept forever).
    retention_days: float = 365.0


@dataclasses.dataclass(frozen=True)
class EventsConfig:
    # Record the events of /api/v1/events (the webhook events and the live ones);
    # false: the stream sends nothing.
    enabled: bool = True
    # Events are kept this long for clients resuming with Last-Event-ID.
    retention_hours: float = 24.0
    # A comment line this often keeps idle streams (and proxies) open.
    keepalive_s: float = 15.0
    # Streams open at once; more are refused (503).
    max_clients: int = 2000


@dataclasses.dataclass(frozen=True)
class DeskConfig:
    # The reason codes an agent (or a supervisor) may pause with, comma-separated.
    pause_reasons: str = "break,lunch,meeting,training,technical"
    # Pause a desk agent (a user with role agent) as soon as a call reaches them,
    # with reason wrap-up, until they set the call's disposition: no new call
    # comes while they finish the last one.
    wrapup: bool = True

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(r.strip() for r in self.pause_reasons.split(",") if r.strip())


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    # A folder the daemon watches for contact files named <campaign_id>-<anything>.csv
    # or .xlsx; each is imported, then moved to done/ (or failed/) with a .report.json
    # beside it. Empty: off.
    drop_dir: str = ""
    # How often the folder is looked at.
    poll_interval_s: float = 2.0
    # A file is taken once its size and modification time stayed the same this long:
    # one still being written is left alone (writing it under another name, then
    # renaming it into place, is safer still).
    settle_s: float = 2.0
    # Refuse a whole file (store nothing) when one of its rows is bad.
    all_or_nothing: bool = False
    # How long the report of an import (its counts and every problem of its rejected
    # rows: GET /api/v1/imports/{id}/report) is kept, in days. Every import has one.
    report_days: float = 7.0
    # Dedup of the drop folder's imports by phone number: "off", "campaign" (a number
    # the campaign has already) or "running" (any running campaign has); duplicates are
    # stored as failed/$duplicate ("keep") or left out ("skip").
    dedup: str = "off"
    duplicates: str = "keep"


@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
    # The key of the keyed hash (HMAC-SHA256) an erased person's numbers are kept as,
    # so that no import brings them back: at least 16 characters, never changed once
    # a person was erased (the daemon refuses a key other than the one it was used
    # with). Empty: erasing is refused. Masked by check-config.
    hash_key: str = dataclasses.field(default="", repr=False)


@dataclasses.dataclass(frozen=True)
class RecordingConfig:
    # Where this daemon finds the recordings of answered calls: the folder Asterisk's
    # MixMonitor writes to (its spool's monitor/dialer, e.g.
    # /var/spool/asterisk/monitor/dialer), as this machine sees it: the same folder
    # when Asterisk runs here, shared storage (NFS...) mounted here when it does not.
    # Empty: recordings are made but never found (the API says so).
    dir: str = ""
    # Recordings are deleted after this many days, unless the campaign says otherwise.
    retention_days: float = 90.0
    # How often new recordings are looked for, and old ones deleted.
    scan_interval_s: float = 5.0
    # A recording not found this long after its call ended is "missing".
    missing_after_s: float = 60.0


SMTP_TLS = ("none", "starttls", "tls")


@dataclasses.dataclass(frozen=True)
class FlowsConfig:
    # Task flow files (*.yaml) loaded into the database at start (docs/flows.md).
    dir: str = "flows"
    # Where export tasks write their files (<campaign id>/<task>-<day>.csv or .xlsx);
    # empty: no files, the rows are downloaded over the API only.
    export_dir: str = ""
    # How often the task executor looks for due tasks (sms, email, webhook...).
    poll_interval_s: float = 0.5
    # Tasks run at once by one daemon.
    batch_size: int = 20
    # Each email and each webhook task's call is bounded by this.
    timeout_s: float = 10.0
    # A temporary failure (SMTP 4xx, HTTP 5xx, a timeout) is tried again after a
    # delay doubling from min to max (with jitter), up to the task's max_tries.
    min_backoff_s: float = 5.0
    max_backoff_s: float = 600.0


@dataclasses.dataclass(frozen=True)
class SmtpConfig:
    # The mail server email tasks send through; empty host: email tasks fail
    # ("no SMTP server configured").
    host: str = ""
    port: int = 25
    # "none", "starttls" (upgrade after connecting, port 587) or "tls" (implicit, 465).
    tls: str = "none"
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    # The From of every email (required with a host).
    from_address: str = ""


@dataclasses.dataclass(frozen=True)
class Config:
    database: DatabaseConfig = dataclasses.field(default_factory=DatabaseConfig)
    ami: AmiConfig = dataclasses.field(default_factory=AmiConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    dialing: DialingConfig = dataclasses.field(default_factory=DialingConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    sms: SmsConfig = dataclasses.field(default_factory=SmsConfig)
    webhooks: WebhooksConfig = dataclasses.field(default_factory=WebhooksConfig)
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    auth: AuthConfig = dataclasses.field(default_factory=AuthConfig)
    audit: AuditConfig = dataclasses.field(default_factory=AuditConfig)
    events: EventsConfig = dataclasses.field(default_factory=EventsConfig)
    desk: DeskConfig = dataclasses.field(default_factory=DeskConfig)
    flows: FlowsConfig = dataclasses.field(default_factory=FlowsConfig)
    smtp: SmtpConfig = dataclasses.field(default_factory=SmtpConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    recording: RecordingConfig = dataclasses.field(default_factory=RecordingConfig)
    # The [import] section ("import" is a Python keyword).
    import_: ImportConfig = dataclasses.field(
        default_factory=ImportConfig, metadata={"section": "import"}
    )
    # The pool of PBXs, [[pbx]] tables as given (see ``pool``); none: one PBX
    # from [ami] and dialing.trunk.
    pbx: tuple[PbxConfig, ...] = ()

    @property
    def pool(self) -> tuple[PbxConfig, ...]:
        """Every PBX this daemon dials through, its inherited values filled in."""
        if not self.pbx:
            return (
                PbxConfig(
                    name=DEFAULT_PBX,
                    host=self.ami.host,
                    port=self.ami.port,
                    username=self.ami.username,
                    secret=self.ami.secret,
                    trunk=self.dialing.trunk,
                ),
            )
        return tuple(
            dataclasses.replace(
                pbx,
                username=pbx.username or self.ami.username,
                secret=pbx.secret or self.ami.secret,
                trunk=pbx.trunk or self.dialing.trunk,
            )
            for pbx in self.pbx
        )


_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# A dialplan context goes into an Originate Variable: no commas, spaces or backslashes.
_CONTEXT = re.compile(r"[A-Za-z0-9_.-]{1,80}")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the settings from an optional TOML file and the environment.

    Raises ConfigError with a one-line message naming the offending key.
    """
    env = os.environ if env is None else env
    raw: dict[str, dict[str, Any]] = {}
    if path is None and env.get("DIALER_CONFIG"):
        path = env["DIALER_CONFIG"]
    if path is not None:
        raw = _read_toml(Path(path))
    sections = {
        f.metadata.get("section", f.name): f for f in dataclasses.fields(Config) if f.name != "pbx"
    }
    pbx_tables: Any = raw.pop("pbx", [])
    if not isinstance(pbx_tables, list) or not all(isinstance(t, dict) for t in pbx_tables):
        raise ConfigError("config key 'pbx' must be a list of [[pbx]] tables")
    pbx_values: list[dict[str, Any]] = [dict(t) for t in pbx_tables]
    for key, section in raw.items():
        if key not in sections:
            known = ", ".join([*sections, "[pbx]"])
            raise ConfigError(f"unknown config section [{key}] (known: {known})")
        if not isinstance(section, dict):
            raise ConfigError(f"config key {key!r} must be a [section]")

    if "DATABASE_URL" in env:
        raw.setdefault("database", {})["url"] = env["DATABASE_URL"]
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NON_SETTING_ENV:
            continue
        if name.startswith(_PBX_ENV_PREFIX):
            index, key = _split_pbx_env_name(name)
            while len(pbx_values) < index:
                pbx_values.append({})
            pbx_values[index - 1][key] = value
            continue
        section_name, key = _split_env_name(name, sections)
        raw.setdefault(section_name, {})[key] = value

    built: dict[str, Any] = {}
    for section_name, field in sections.items():
        cls = field.default_factory
        built[field.name] = _build_section(section_name, cls, raw.get(section_name, {}))
    built["pbx"] = tuple(
        _build_section(f"pbx[{i}]", PbxConfig, values)
        for i, values in enumerate(pbx_values, start=1)
    )
    if built["pbx"] and {"host", "port"} & set(raw.get("ami", {})):
        raise ConfigError(
            "config keys ami.host/ami.port cannot be used with [[pbx]]: each PBX of the "
            "pool has its own host and port"
        )
    config = Config(**built)
    _validate(config)
    return config


# DIALER_PBX_<n>_<KEY>: key of the n-th [[pbx]] table (from 1), over the file's.
_PBX_ENV_PREFIX = ENV_PREFIX + "PBX_"


def _split_pbx_env_name(name: str) -> tuple[int, str]:
    index, _, key = name[len(_PBX_ENV_PREFIX) :].partition("_")
    if not index.isdigit() or not 1 <= int(index) <= 99 or not key:
        raise ConfigError(
            f"environment variable {name}: a PBX of the pool is set by DIALER_PBX_<n>_<KEY>, "
            "n from 1 (DIALER_PBX_1_HOST)"
        )
    return int(index), key.lower()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _split_env_name(name: str, sections: Mapping[str, Any]) -> tuple[str, str]:
    rest = name[len(ENV_PREFIX) :].lower()
    for section_name in sections:
        if rest.startswith(section_name + "_"):
            return section_name, rest[len(section_name) + 1 :]
    raise ConfigError(f"unknown setting in environment variable {name}")


def _build_section(section_name: str, cls: Any, values: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown config key {section_name}.{key} (known: {', '.join(fields)})"
            )
        kwargs[key] = _coerce(f"{section_name}.{key}", hints[key], value)
    return cls(**kwargs)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Values from the environment are strings; TOML values are typed already."""
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"config key {name} must be {kind.__name__}, got {value!r}") from None
    raise ConfigError(f"config key {name} has an unsupported type")  # pragma: no cover


def _validate(config: Config) -> None:
    if config.log.level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"config key log.level must be one of {', '.join(sorted(_LOG_LEVELS))}")
    if not 1 <= config.ami.port <= 65535:
        raise ConfigError("config key ami.port must be a TCP port (1-65535)")
    if not 0 <= config.http.port <= 65535:
        raise ConfigError("config key http.port must be a TCP port (0-65535)")
    if config.dialing.tick_s <= 0 or config.dialing.reconcile_interval_s <= 0:
        raise ConfigError("config keys dialing.tick_s/reconcile_interval_s must be > 0")
    if config.dialing.agent_wrapup_s < 0:
        raise ConfigError("config key dialing.agent_wrapup_s must be >= 0")
    if config.dialing.drain_s < 0:
        raise ConfigError("config key dialing.drain_s must be >= 0")
    if config.dialing.ring_timeout_s < 15:
        raise ConfigError("config key dialing.ring_timeout_s must be at least 15 seconds")
    if config.dialing.trunk_error_pause_after < 0:
        raise ConfigError("config key dialing.trunk_error_pause_after must be >= 0 (0: never)")
    if config.dialing.call_end_context and not _CONTEXT.fullmatch(config.dialing.call_end_context):
        raise ConfigError(
            "config key dialing.call_end_context must be a dialplan context name "
            "(letters, digits, _ . -) or empty"
        )
    if config.ami.reconnect_min_s <= 0 or config.ami.reconnect_max_s < config.ami.reconnect_min_s:
        raise ConfigError("config keys ami.reconnect_min_s/reconnect_max_s must be 0 < min <= max")
    if not config.database.url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("config key database.url must be a postgresql:// URL")
    if config.database.min_connections < 1 or (
        config.database.max_connections < config.database.min_connections
    ):
        raise ConfigError("config keys database.min/max_connections must be 1 <= min <= max")
    if config.sms.provider not in SMS_PROVIDERS:
        raise ConfigError(f"config key sms.provider must be one of {', '.join(SMS_PROVIDERS)}")
    if config.sms.provider == "http" and not config.sms.url.startswith(("http://", "https://")):
        raise ConfigError("config key sms.url must be an http(s):// URL when sms.provider is http")
    if config.sms.provider == "ami" and not config.sms.endpoint:
        raise ConfigError("config key sms.endpoint must name a PJSIP endpoint for provider ami")
    if config.sms.timeout_s <= 0:
        raise ConfigError("config key sms.timeout_s must be > 0")
    _validate_pool(config)
    _validate_webhooks(config.webhooks)
    if not 0 < config.import_.report_days <= 3650:
        raise ConfigError("config key import.report_days must be more than 0 and at most 3650")
    if config.import_.dedup not in ("off", "campaign", "running"):
        raise ConfigError("config key import.dedup must be one of off, campaign, running")
    if config.import_.duplicates not in ("keep", "skip"):
        raise ConfigError("config key import.duplicates must be one of keep, skip")
    if config.import_.poll_interval_s <= 0 or config.import_.settle_s < 0:
        raise ConfigError("config keys import.poll_interval_s/settle_s must be > 0 and >= 0")
    parse_api_tokens(config.api.tokens)
    _validate_desk(config)
    _validate_flows(config)
    _validate_privacy_and_recording(config)


def _validate_privacy_and_recording(config: Config) -> None:
    key = config.privacy.hash_key
    if key and (len(key) < 16 or any(c.isspace() for c in key)):
        raise ConfigError("config key privacy.hash_key must be at least 16 characters, no spaces")
    recording = config.recording
    if recording.dir and not recording.dir.startswith("/"):
        raise ConfigError("config key recording.dir must be an absolute path")
    if recording.retention_days <= 0:
        raise ConfigError("config key recording.retention_days must be > 0")
    if recording.scan_interval_s <= 0 or recording.missing_after_s <= 0:
        raise ConfigError("config keys recording.scan_interval_s/missing_after_s must be > 0")


def _validate_flows(config: Config) -> None:
    flows, smtp = config.flows, config.smtp
    if flows.poll_interval_s <= 0 or flows.timeout_s <= 0:
        raise ConfigError("config keys flows.poll_interval_s/timeout_s must be > 0")
    if flows.batch_size < 1:
        raise ConfigError("config key flows.batch_size must be >= 1")
    if flows.min_backoff_s <= 0 or flows.max_backoff_s < flows.min_backoff_s:
        raise ConfigError("config keys flows.min_backoff_s/max_backoff_s must be 0 < min <= max")
    if smtp.tls not in SMTP_TLS:
        raise ConfigError(f"config key smtp.tls must be one of {', '.join(SMTP_TLS)}")
    if not 1 <= smtp.port <= 65535:
        raise ConfigError("config key smtp.port must be a TCP port (1-65535)")
    if smtp.host and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", smtp.from_address):
        raise ConfigError(
            "config key smtp.from_address must be an email address when smtp.host is set"
        )


PAUSE_REASON = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def _validate_desk(config: Config) -> None:
    if config.auth.session_hours <= 0:
        raise ConfigError("config key auth.session_hours must be > 0")
    if config.audit.retention_days < 0:
        raise ConfigError("config key audit.retention_days must be >= 0")
    if config.events.retention_hours <= 0 or config.events.keepalive_s <= 0:
        raise ConfigError("config keys events.retention_hours/keepalive_s must be > 0")
    if config.events.max_clients < 1:
        raise ConfigError("config key events.max_clients must be >= 1")
    reasons = config.desk.reasons
    if not reasons:
        raise ConfigError("config key desk.pause_reasons must list at least one reason")
    for reason in reasons:
        if not PAUSE_REASON.fullmatch(reason) or reason == "wrap-up":
            raise ConfigError(
                f"config key desk.pause_reasons: {reason!r} must be 1-40 of a-z 0-9 _ - "
                "(and not wrap-up, which the desk uses itself)"
            )


def _validate_webhooks(hooks: WebhooksConfig) -> None:
    if hooks.url and not hooks.url.startswith(("http://", "https://")):
        raise ConfigError("config key webhooks.url must be an http(s):// URL")
    if hooks.active and not hooks.secret:
        raise ConfigError(
            "config key webhooks.secret must be set when webhooks.url is: the CRM checks "
            "every event's signature with it"
        )
    if hooks.timeout_s <= 0 or hooks.poll_interval_s <= 0:
        raise ConfigError("config keys webhooks.timeout_s/poll_interval_s must be > 0")
    if hooks.min_backoff_s <= 0 or hooks.max_backoff_s < hooks.min_backoff_s:
        raise ConfigError("config keys webhooks.min_backoff_s/max_backoff_s must be 0 < min <= max")
    if hooks.batch_size < 1:
        raise ConfigError("config key webhooks.batch_size must be >= 1")
    if hooks.retention_days < 0:
        raise ConfigError("config key webhooks.retention_days must be >= 0")
    try:
        AllowedHosts.parse(hooks.allowed_hosts)
    except ValueError as exc:
        raise ConfigError(f"config key webhooks.allowed_hosts: {exc}") from None


def _validate_pool(config: Config) -> None:
    names: set[str] = set()
    for index, pbx in enumerate(config.pbx, start=1):
        where = f"pbx[{index}]"
        if not PBX_NAME.fullmatch(pbx.name):
            raise ConfigError(
                f"config key {where}.name must be 1-64 of A-Z a-z 0-9 _ . - (got {pbx.name!r})"
            )
        if pbx.name in names:
            raise ConfigError(f"config key {where}.name: PBX {pbx.name!r} is named twice")
        names.add(pbx.name)
        if not pbx.host:
            raise ConfigError(f"config key {where}.host must name the PBX's AMI host")
        if not 1 <= pbx.port <= 65535:
            raise ConfigError(f"config key {where}.port must be a TCP port (1-65535)")
        if pbx.max_channels < 0:
            raise ConfigError(f"config key {where}.max_channels must be >= 0 (0: no limit)")
        if pbx.weight < 0:
            raise ConfigError(f"config key {where}.weight must be >= 0 (0: its max_channels)")
