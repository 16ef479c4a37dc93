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
