from __future__ import annotations

from pathlib import Path

import pytest

from dialer_server.config import load_config
from dialer_server.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dialer.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(env={})
    assert config.ami.port == 5038
    assert config.dialing.ring_timeout_s == 30
    # Every call carries the hangup handler that records its end in the PBX.
    assert config.dialing.call_end_context == "dialer-call-end"
    assert config.dialing.trunk_error_pause_after == 5


def test_the_hangup_handler_and_the_trunk_error_pause_can_be_turned_off() -> None:
    env = {"DIALER_DIALING_CALL_END_CONTEXT": "", "DIALER_DIALING_TRUNK_ERROR_PAUSE_AFTER": "0"}
    config = load_config(env=env)
    assert (config.dialing.call_end_context, config.dialing.trunk_error_pause_after) == ("", 0)


def test_file_values_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, '[ami]\nport = 15038\nsecret = "s"\n[http]\nport = 9000\n')
    config = load_config(path, env={})
    assert config.ami.port == 15038
    assert config.ami.secret == "s"
    assert config.http.port == 9000


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[ami]\nsecret = "from-file"\nport = 1000\n')
    config = load_config(path, env={"DIALER_AMI_SECRET": "from-env", "DIALER_AMI_PORT": "2000"})
    assert config.ami.secret == "from-env"
    assert config.ami.port == 2000


def test_database_url_variable_is_honoured_and_prefixed_one_wins() -> None:
    assert load_config(env={"DATABASE_URL": "postgresql://a/b"}).database.url == "postgresql://a/b"
    config = load_config(
        env={"DATABASE_URL": "postgresql://a/b", "DIALER_DATABASE_URL": "postgresql://c/d"}
    )
    assert config.database.url == "postgresql://c/d"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[log]\nlevel = "DEBUG"\n')
    assert load_config(env={"DIALER_CONFIG": str(path)}).log.level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[ami]\nsecrett = "x"\n', {}, "unknown config key ami.secrett"),
        ('[amii]\nsecret = "x"\n', {}, "unknown config section [amii]"),
        ("", {"DIALER_AMI_SECRETT": "x"}, "unknown config key ami.secrett"),
        ("", {"DIALER_NOPE": "x"}, "unknown setting in environment variable DIALER_NOPE"),
        ('[ami]\nport = "many"\n', {}, "ami.port must be int"),
        ("", {"DIALER_AMI_PORT": "many"}, "ami.port must be int"),
        ("[ami]\nport = 70000\n", {}, "ami.port must be a TCP port"),
        ("[dialing]\nring_timeout_s = 10\n", {}, "at least 15 seconds"),
        ("[dialing]\ntrunk_error_pause_after = -1\n", {}, "trunk_error_pause_after must be >= 0"),
        # It goes into an Originate Variable, where a comma would split it.
        ('[dialing]\ncall_end_context = "a,b"\n', {}, "call_end_context must be a dialplan"),
        ("", {"DIALER_DIALING_CALL_END_CONTEXT": "x y"}, "call_end_context must be a dialplan"),
        ('[log]\nlevel = "LOUD"\n', {}, "log.level must be one of"),
        ('[database]\nurl = "mysql://x"\n', {}, "postgresql:// URL"),
        ("[ami\n", {}, "is not valid TOML"),
        ("ami = 3\n", {}, "must be a [section]"),
    ],
)
def test_bad_config_names_the_problem(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(write(tmp_path, text), env=env)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", env={})


def test_check_config_never_prints_credentials() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env |= {
        "DIALER_AMI_SECRET": "ami-very-secret",
        "DIALER_SMS_PROVIDER": "http",
        "DIALER_SMS_URL": "http://127.0.0.1:9/sms",
        "DIALER_SMS_AUTH_HEADER": "Bearer sms-very-secret",
    }
    out = subprocess.run(
        [sys.executable, "-m", "dialer_server", "check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "very-secret" not in out.stdout + out.stderr
    assert "auth_header = '***'" in out.stdout


# --- the pool of PBXs ------------------------------------------------------------------


def test_the_single_pbx_settings_of_before_are_a_pool_of_one() -> None:
    config = load_config(
        env={
            "DIALER_AMI_HOST": "10.0.0.5",
            "DIALER_AMI_PORT": "15038",
            "DIALER_AMI_SECRET": "s",
            "DIALER_DIALING_TRUNK": "sip-out",
        }
    )
    (pbx,) = config.pool
    assert (pbx.name, pbx.host, pbx.port, pbx.username, pbx.secret, pbx.trunk) == (
        "default",
        "10.0.0.5",
        15038,
        "dialer",
        "s",
        "sip-out",
    )
    # No limit of its own: the campaigns' line limits decide, as before.
    assert pbx.limit is None
    assert pbx.share == 1.0
    assert config.pbx == ()


POOL = """
[ami]
username = "dialer"
secret = "shared-secret"
action_timeout_s = 3.0
[dialing]
trunk = "carrier"
[[pbx]]
name = "pbx-a"
host = "10.0.0.11"
max_channels = 200
[[pbx]]
name = "pbx-b"
host = "10.0.0.12"
port = 5039
username = "dialer-b"
secret = "b-secret"
trunk = "carrier-b"
max_channels = 100
weight = 3
"""


def test_pbx_tables_inherit_login_and_trunk_and_spread_by_their_limits(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, POOL), env={})
    a, b = config.pool
    assert (a.name, a.host, a.port, a.username, a.secret, a.trunk) == (
        "pbx-a",
        "10.0.0.11",
        5038,
        "dialer",
        "shared-secret",
        "carrier",
    )
    assert (a.limit, a.share) == (200, 200.0)
    assert (b.name, b.port, b.username, b.secret, b.trunk) == (
        "pbx-b",
        5039,
        "dialer-b",
        "b-secret",
        "carrier-b",
    )
    assert (b.limit, b.share) == (100, 3.0)
    # Each PBX's AMI connection: its endpoint and login, [ami]'s timeouts.
    ami = b.ami(config.ami)
    assert (ami.host, ami.port, ami.username, ami.secret) == (
        "10.0.0.12",
        5039,
        "dialer-b",
        "b-secret",
    )
    assert ami.action_timeout_s == 3.0


def test_pbx_environment_variables_set_the_nth_table_over_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, POOL),
        env={
            "DIALER_PBX_1_SECRET": "from-env",
            "DIALER_PBX_2_MAX_CHANNELS": "50",
            "DIALER_PBX_3_NAME": "pbx-c",
            "DIALER_PBX_3_HOST": "10.0.0.13",
        },
    )
    a, b, c = config.pool
    assert a.secret == "from-env"
    assert b.max_channels == 50
    assert (c.name, c.host, c.secret, c.limit) == ("pbx-c", "10.0.0.13", "shared-secret", None)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[[pbx]]\nname = "a"\n[[pbx]]\nname = "a"\n', {}, "pbx[2].name: PBX 'a' is named twice"),
        ('[[pbx]]\nname = "a b"\n', {}, "pbx[1].name must be 1-64 of"),
        ("[[pbx]]\nport = 5038\n", {}, "pbx[1].name must be 1-64 of"),
        ('[[pbx]]\nname = "a"\nmax_channels = -1\n', {}, "pbx[1].max_channels must be >= 0"),
        ('[[pbx]]\nname = "a"\nweight = -2\n', {}, "pbx[1].weight must be >= 0"),
        ('[[pbx]]\nname = "a"\nport = 0\n', {}, "pbx[1].port must be a TCP port"),
        ('[[pbx]]\nname = "a"\nhots = "x"\n', {}, "unknown config key pbx[1].hots"),
        ('[[pbx]]\nname = "a"\nmax_channels = "many"\n', {}, "pbx[1].max_channels must be int"),
        ('[ami]\nhost = "x"\n[[pbx]]\nname = "a"\n', {}, "ami.host/ami.port cannot be used"),
        ('[[pbx]]\nname = "a"\n', {"DIALER_AMI_PORT": "5"}, "ami.host/ami.port cannot be used"),
        ('pbx = "a"\n', {}, "'pbx' must be a list of [[pbx]] tables"),
        ("", {"DIALER_PBX_HOST": "x"}, "DIALER_PBX_<n>_<KEY>"),
        ("", {"DIALER_PBX_0_HOST": "x"}, "DIALER_PBX_<n>_<KEY>"),
        ("", {"DIALER_PBX_2_NAME": "b"}, "pbx[1].name must be 1-64 of"),
    ],
)
def test_a_bad_pool_is_refused_naming_the_pbx_and_key(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), env=env)
    assert message in str(raised.value)


def test_check_config_prints_the_pool_without_its_secrets(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env |= {"DIALER_CONFIG": str(write(tmp_path, POOL))}
    out = subprocess.run(
        [sys.executable, "-m", "dialer_server", "check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "shared-secret" not in out.stdout
    assert "b-secret" not in out.stdout
    assert out.stdout.count("[[pbx]]") == 2
    assert "name = 'pbx-b'" in out.stdout
    assert "trunk = 'carrier-b'" in out.stdout
