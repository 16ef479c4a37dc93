"""api.tokens: the API's bearer tokens, from the config file or DIALER_API_TOKENS."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer_server.config import ApiToken, load_config, parse_api_tokens
from dialer_server.errors import ConfigError

A = "a" * 16
B = "b" * 20


def test_tokens_are_name_token_and_an_optional_scope_write_by_default() -> None:
    tokens = parse_api_tokens(f" crm:{A} , dashboard:{B}:read ,")
    assert tokens == (ApiToken("crm", A, "write"), ApiToken("dashboard", B, "read"))
    assert parse_api_tokens("") == ()
    assert A not in repr(tokens)  # a token never reaches a log line through repr


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("crm", "name:token[:scope]"),
        (f"crm:{A}:read:x", "name:token[:scope]"),
        ("crm:short", "at least 16"),
        (f"crm:{A}:admin", "scope must be one of read, write"),
        (f"c rm:{A}", "name must be"),
        (f"crm:{A},crm:{B}", "used twice"),
        (f"crm:{A},other:{A}", "repeats a token"),
    ],
)
def test_a_bad_token_entry_is_a_config_error_naming_it(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.tokens") as error:
        parse_api_tokens(text)
    assert complaint in str(error.value)


def test_tokens_come_from_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "dialer.toml"
    path.write_text(f'[api]\ntokens = "crm:{A}"\n')
    assert load_config(path, env={}).api.tokens == f"crm:{A}"
    config = load_config(path, env={"DIALER_API_TOKENS": f"ops:{B}:read"})
    assert parse_api_tokens(config.api.tokens) == (ApiToken("ops", B, "read"),)
    with pytest.raises(ConfigError, match=r"api\.tokens"):
        load_config(env={"DIALER_API_TOKENS": "ops:short"})


def test_check_config_shows_token_names_and_scopes_but_never_the_tokens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialer_server.cli import main

    for name in [n for n in __import__("os").environ if n.startswith("DIALER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DIALER_API_TOKENS", f"crm:{A},dashboard:{B}:read")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "crm:***:write, dashboard:***:read" in out
    assert A not in out and B not in out
