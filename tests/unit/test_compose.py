"""Static checks of the compose stack (docker-compose.yml and the files it uses).

No Docker engine is needed: the files are parsed and cross-checked. The one test
that wants a compose implementation (``docker compose config``) validates the
file against the Compose Specification's JSON schema instead when none is
installed, and only falls back to the structural checks written here when the
schema is not installed either (see ``test_compose_file_is_valid``).
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped, unused-ignore]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

DEFAULT_SERVICES = {"postgres", "asterisk", "dialer", "prometheus", "grafana"}
DEMO_SERVICES = {"farend"}

ALLOWED_DIALER_ENV = {
    "DIALER_CONFIG",
    "DIALER_DATABASE_URL",
    "DIALER_AMI_HOST",
    "DIALER_AMI_PORT",
    "DIALER_AMI_USERNAME",
    "DIALER_AMI_SECRET",
    "DIALER_HTTP_HOST",
    "DIALER_HTTP_PORT",
    "DIALER_LOG_LEVEL",
    "DIALER_RECORDING_DIR",
}

# Used only when neither a compose implementation nor the compose-spec schema is
# installed: the keys the Compose Specification allows (plus x-* extensions).
SPEC_TOP_LEVEL_KEYS = set(
    "version name include services networks volumes secrets configs models".split()
)
SPEC_SERVICE_KEYS = set(
    """
    annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command
    configs container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period
    cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on deploy develop
    device_cgroup_rules devices dns dns_opt dns_search domainname entrypoint env_file
    environment expose extends external_links extra_hosts gpus group_add healthcheck hostname
    image init ipc isolation label_file labels links logging mac_address mem_limit
    mem_reservation mem_swappiness memswap_limit models network_mode networks oom_kill_disable
    oom_score_adj pid pids_limit platform ports post_start pre_stop privileged profiles
    provider pull_policy read_only restart runtime scale secrets security_opt shm_size
    stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits
    use_api_socket user userns_mode uts volumes volumes_from working_dir
    """.split()
)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+x},
# ${VAR+x}, $VAR, and $$ (a literal dollar).
INTERPOLATION = re.compile(
    r"\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|\$[A-Za-z_][A-Za-z0-9_]*"
)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    for name, service in found.items():
        assert isinstance(service, dict), f"service {name} must be a mapping"
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(published, target, protocol) for each of a service's ports entries."""
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result.append(
                (
                    str(entry.get("published", "")),
                    str(entry["target"]),
                    str(entry.get("protocol", "tcp")),
                )
            )
            continue
        spec, _, protocol = str(entry).partition("/")
        parts = spec.split(":")
        target = parts[-1]
        published = parts[-2] if len(parts) > 1 else ""
        result.append((published, target, protocol or "tcp"))
    return result


def port_numbers(port_range: str) -> set[int]:
    if not port_range:
        return set()
    low, _, high = port_range.partition("-")
    return set(range(int(low), int(high or low) + 1))


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host source, container target) for each volume entry of a service."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, _, rest = str(entry).partition(":")
            mounts.append((source, rest.split(":")[0]))
    return mounts


def build_dir(service: dict[str, Any]) -> tuple[Path, str] | None:
    """(context directory, Dockerfile name) of a built service, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return ROOT / build, "Dockerfile"
    return ROOT / build.get("context", "."), build.get("dockerfile", "Dockerfile")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    instructions = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def scalars(node: Any) -> list[str]:
    """Every string value in a YAML tree (keys excluded)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in scalars(value)]
    if isinstance(node, list):
        return [text for value in node for text in scalars(value)]
    return [node] if isinstance(node, str) else []


def test_compose_project_name() -> None:
    assert compose().get("name") == "dialer"


def test_expected_services_exist() -> None:
    found = services()
    missing = (DEFAULT_SERVICES | DEMO_SERVICES) - found.keys()
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"
    for name in DEFAULT_SERVICES:
        assert "profiles" not in found[name], f"{name} must start with a plain `up`"
    for name in DEMO_SERVICES:
        assert found[name].get("profiles") == ["demo"], f"{name} must be demo-only"


def test_dialer_shares_asterisk_network_namespace() -> None:
    dialer = services()["dialer"]
    assert dialer.get("network_mode") == "service:asterisk"
    # Compose rejects these next to network_mode: service:...
    for key in ("ports", "networks", "hostname"):
        assert key not in dialer, f"dialer may not set {key} with a shared network namespace"


def test_farend_shares_asterisk_network_namespace() -> None:
    farend = services()["farend"]
    assert farend.get("network_mode") == "service:asterisk"
    assert "ports" not in farend


def test_ami_is_never_published() -> None:
    for name, service in services().items():
        for published, target, _ in published_ports(service):
            assert 5038 not in port_numbers(target), f"{name} publishes AMI (5038)"
            assert 5038 not in port_numbers(published), f"{name} publishes AMI (5038)"
    env = environment(services()["dialer"])
    assert env["DIALER_AMI_HOST"] == "127.0.0.1"
    assert env["DIALER_AMI_PORT"] == "5038"


def test_manager_conf_binds_ami_to_loopback() -> None:
    # The shared-namespace design only makes sense with AMI on loopback.
    parser = configparser.ConfigParser(
        comment_prefixes=(";",),
        inline_comment_prefixes=(";",),
        strict=False,
        interpolation=None,
    )
    parser.read(ROOT / "asterisk" / "manager.conf", encoding="utf-8")
    assert parser.get("general", "bindaddr") == "127.0.0.1"


def test_asterisk_publishes_sip_rtp_and_dialer_http() -> None:
    ports = published_ports(services()["asterisk"])
    assert ("5060", "5060", "udp") in ports
    assert ("10000-10100", "10000-10100", "udp") in ports
    # The dialer cannot publish ports itself (shared namespace).
    assert ("8080", "8080", "tcp") in ports
    assert environment(services()["dialer"])["DIALER_HTTP_PORT"] == "8080"


def test_published_rtp_range_matches_asterisk_image() -> None:
    args = {}
    for keyword, value in dockerfile_instructions(ROOT / "asterisk" / "Dockerfile"):
        if keyword == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            args[key] = default
    image_range = f"{args['RTP_START']}-{args['RTP_END']}"
    rtp = [
        (pub, tgt)
        for pub, tgt, proto in published_ports(services()["asterisk"])
        if proto == "udp" and pub != "5060"
    ]
    assert rtp == [(image_range, image_range)]


def test_build_contexts_contain_a_dockerfile() -> None:
    built = 0
    for name, service in services().items():
        found = build_dir(service)
        if found is None:
            assert "image" in service, f"{name} has neither build nor image"
            continue
        context, dockerfile = found
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"
        built += 1
    assert built == 3  # dialer, asterisk, farend


def test_bind_mount_sources_exist() -> None:
    checked = 0
    for name, service in services().items():
        for source, _ in bind_mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist in the repo"
                checked += 1
    assert checked >= 5


def test_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for source, _ in bind_mounts(service):
            if source and not source.startswith(("./", "../", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_depends_on_targets_exist_and_have_health_checks() -> None:
    found = services()
    for name, service in found.items():
        depends = service.get("depends_on") or []
        items = depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        for target, options in items:
            assert target in found, f"{name} depends on unknown service {target}"
            if (options or {}).get("condition") != "service_healthy":
                continue
            dependency = found[target]
            if "healthcheck" in dependency:
                assert not dependency["healthcheck"].get("disable"), target
                continue
            built = build_dir(dependency)
            assert built is not None, f"{target} needs a healthcheck for {name}"
            keywords = {kw for kw, _ in dockerfile_instructions(built[0] / built[1])}
            assert "HEALTHCHECK" in keywords, f"{target} needs a healthcheck for {name}"


def test_postgres_service() -> None:
    postgres = services()["postgres"]
    assert postgres["image"] == "postgres:16"
    env = environment(postgres)
    assert env["POSTGRES_USER"] == env["POSTGRES_PASSWORD"] == env["POSTGRES_DB"] == "dialer"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "ports" not in postgres
    url = urlsplit(environment(services()["dialer"])["DIALER_DATABASE_URL"])
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/dialer")


def test_dialer_environment_uses_known_settings() -> None:
    env = environment(services()["dialer"])
    unknown = {key for key in env if key.startswith("DIALER_")} - ALLOWED_DIALER_ENV
    assert not unknown, f"unknown dialer settings: {sorted(unknown)}"
    assert env["DIALER_HTTP_HOST"] == "0.0.0.0"


def test_recordings_reach_the_dialer_on_a_volume_both_mount_at_asterisks_spool() -> None:
    def mounted(service: str) -> dict[str, str]:
        return {
            volume.split(":")[1]: volume.split(":")[0]
            for volume in services()[service].get("volumes", [])
            if isinstance(volume, str) and not volume.startswith(".")
        }

    spool = "/var/spool/asterisk/monitor"
    assert mounted("asterisk")[spool] == mounted("dialer")[spool] == "recordings"
    # Where MixMonitor writes (asterisk/extensions.conf: <astspooldir>/monitor/dialer).
    assert environment(services()["dialer"])["DIALER_RECORDING_DIR"] == spool + "/dialer"
    dockerfile = (ROOT / "asterisk" / "Dockerfile").read_text()
    # Shared by group with the dialer's user (uid and gid 10001), setgid for its files.
    assert f"chown asterisk:10001 {spool} {spool}/dialer" in dockerfile
    assert f"chmod 2770 {spool} {spool}/dialer" in dockerfile
    assert "--gid 10001" in (ROOT / "Dockerfile").read_text()


def test_dialer_image() -> None:
    instructions = dockerfile_instructions(ROOT / "Dockerfile")
    values = {keyword: args for keyword, args in instructions}
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert values["USER"] not in {"root", "0"}
    assert values["ENTRYPOINT"] == '["dialer-server"]'
    assert values["CMD"] == '["run"]'
    assert "8080" in values["EXPOSE"].split()
    assert "/healthz" in values["HEALTHCHECK"]
    mounts = {target: source for source, target in bind_mounts(services()["dialer"])}
    assert mounts["/app/strategies"] == "./strategies"


def test_prometheus_scrapes_the_dialer() -> None:
    mounts = {target: source for source, target in bind_mounts(services()["prometheus"])}
    config = load_yaml(ROOT / mounts["/etc/prometheus/prometheus.yml"])
    jobs = [
        job
        for job in config["scrape_configs"]
        if any(
            "asterisk:8080" in group.get("targets", []) for group in job.get("static_configs", [])
        )
    ]
    assert len(jobs) == 1, "exactly one job must scrape the dialer at asterisk:8080"
    job = jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    interval = job.get("scrape_interval", config.get("global", {}).get("scrape_interval"))
    assert interval == "5s"
    assert ("9090", "9090", "tcp") in published_ports(services()["prometheus"])


def test_grafana_provisioning() -> None:
    grafana = services()["grafana"]
    mounts = {target: source for source, target in bind_mounts(grafana)}
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    assert mounts["/var/lib/grafana/dashboards"] == "./dashboards"

    datasources = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    (source,) = [ds for ds in datasources if ds["name"] == "Prometheus"]
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    url = urlsplit(source["url"])
    assert url.hostname in services(), "datasource url must name a compose service"
    assert (url.hostname, url.port) == ("prometheus", 9090)

    (provider,) = load_yaml(provisioning / "dashboards" / "dialer.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Dialer"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["options"]["foldersFromFilesStructure"] is False

    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-admin}"
    assert ("3000", "3000", "tcp") in published_ports(grafana)


def test_asterisk_image_finds_its_config_files() -> None:
    context = ROOT / "asterisk"
    copies = [args for kw, args in dockerfile_instructions(context / "Dockerfile") if kw == "COPY"]
    assert copies, "asterisk/Dockerfile copies no configuration"
    for args in copies:
        for source in args.split()[:-1]:
            if not source.startswith("--"):
                assert list(context.glob(source)), f"COPY {source} matches no file"
    names = {path.name for path in context.glob("*.conf")}
    required = {"manager.conf", "pjsip.conf", "modules.conf", "extensions.conf"}
    assert required <= names, f"missing in asterisk/: {sorted(required - names)}"


def test_farend_runs_sipp_in_the_foreground() -> None:
    farend = services()["farend"]
    command = [str(arg) for arg in farend["command"]]
    assert "-bg" not in command
    assert "-nostdin" in command
    assert command[command.index("-p") + 1] == "5070"
    # The scenario named on the command line is in the mounted host folder.
    scenario = command[command.index("-sf") + 1]
    mounts = {target: source for source, target in bind_mounts(farend)}
    (source,) = [src for tgt, src in mounts.items() if scenario.startswith(tgt + "/")]
    assert (ROOT / source / Path(scenario).name).is_file()


def compose_command() -> list[str] | None:
    """The installed compose implementation, if any that answers `version`."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            probe = subprocess.run(
                [*command, "version"], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def compose_spec_schema() -> dict[str, Any] | None:
    """The Compose Specification JSON schema as vendored by check-jsonschema."""
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        return None
    if importlib.util.find_spec("jsonschema") is None:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "builtin_schemas" / "vendor" / "compose-spec.json"
        if path.is_file():
            schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return schema
    return None


def check_structure(data: dict[str, Any]) -> None:
    """What `docker compose config` would reject, for the keys this file uses."""
    extra = {key for key in data if not key.startswith("x-")} - SPEC_TOP_LEVEL_KEYS
    assert not extra, f"unknown top-level keys: {sorted(extra)}"
    for name, service in data["services"].items():
        assert re.fullmatch(r"[a-zA-Z0-9._-]+", name), f"invalid service name {name}"
        extra = {key for key in service if not key.startswith("x-")} - SPEC_SERVICE_KEYS
        assert not extra, f"{name}: unknown keys {sorted(extra)}"
        assert "image" in service or "build" in service, f"{name}: no image or build"
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.removeprefix("service:") in data["services"], f"{name}: {mode}"
            assert "ports" not in service and "networks" not in service, name
        for key in ("command", "entrypoint", "profiles", "ports", "volumes"):
            if key in service:
                assert isinstance(service[key], list | str), f"{name}.{key}"
    for text in scalars(data):
        leftover = INTERPOLATION.sub("", text)
        assert "$" not in leftover, f"invalid variable interpolation in {text!r}"


def test_compose_file_is_valid() -> None:
    """`docker compose config` if installed, else the compose-spec schema, else structure.

    Without Docker's compose plugin (or a docker-compose binary) the file is
    validated against the Compose Specification JSON schema shipped in the
    check-jsonschema package; when that is not installed either, only the
    hand-written structural checks of ``check_structure`` apply. The structural
    checks always run, since the schema does not cover references between
    services.
    """
    data = compose()
    check_structure(data)
    command = compose_command()
    if command is not None:
        result = subprocess.run(
            [*command, "-f", str(COMPOSE_FILE), "--profile", "demo", "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return
    schema = compose_spec_schema()
    if schema is not None:
        jsonschema = importlib.import_module("jsonschema")
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(data)
        ]
        assert not errors, "\n".join(errors)
