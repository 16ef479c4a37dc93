"""Webhooks to the CRM: events recorded by the database in the same transaction as
the change they report, delivered signed and at least once to a real HTTP
receiver, across CRM failures, PostgreSQL restarts and a killed daemon.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.config import AllowedHosts, WebhooksConfig, load_config
from dialer_server.errors import ConfigError
from dialer_server.webhooks import (
    address_problem,
    backoff_s,
    request_headers,
    retry_after_s,
    retry_delay_s,
    sign,
    url_problem,
)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id": "e1", "type": "campaign.state_changed"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"sha256={expected}"
    assert sign("other", 1700000000, body) != sign("s3cret", 1700000000, body)
    assert sign("s3cret", 1700000001, body) != sign("s3cret", 1700000000, body)


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_doubles_from_min_is_capped_and_jittered_into_its_upper_half(
    failures: int, jitter: float
) -> None:
    delay = backoff_s(failures, min_s=1.0, max_s=300.0, jitter=jitter)
    base = min(300.0, 2.0 ** min(failures - 1, 100))
    assert base / 2 <= delay <= base
    assert delay <= 300.0


def test_backoff_sequence_without_jitter() -> None:
    delays = [backoff_s(n, min_s=1.0, max_s=10.0, jitter=1 - 1e-12) for n in range(1, 7)]
    assert [round(d) for d in delays] == [1, 2, 4, 8, 10, 10]


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120
    assert retry_after_s("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30
    assert retry_after_s("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
    config = WebhooksConfig(url="http://crm", secret="x", min_backoff_s=1, max_backoff_s=60)
    assert retry_delay_s(1, 30.0, config, jitter=0.0) == 30.0
    assert retry_delay_s(1, 3600.0, config, jitter=0.0) == 60.0
    assert retry_delay_s(1, None, config, jitter=0.0) == 0.5


def test_the_readme_verification_snippet_accepts_our_requests_and_no_others() -> None:

    readme = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    match = re.search(
        r"```python\n(import hashlib\n.*?def verify_dialer_webhook.*?)```", readme, re.S
    )
    assert match, "docs/api.md's verification snippet is gone"
    namespace: dict[str, Any] = {}
    exec(match[1], namespace)
    verify = namespace["verify_dialer_webhook"]
    body = b'{"id": "e1", "type": "campaign.state_changed"}'
    headers = request_headers(
        event_id="e1",
        event_type="campaign.state_changed",
        body=body,
        secret="s3cret",
        timestamp=int(time.time()),
    )
    assert verify("s3cret", headers, body) == {"id": "e1", "type": "campaign.state_changed"}
    with pytest.raises(ValueError, match="signature"):
        verify("other", headers, body)
    with pytest.raises(ValueError, match="signature"):
        verify("s3cret", headers, body.replace(b"e1", b"e2"))
    stale = {**headers, "X-Dialer-Timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(ValueError, match="stale"):
        verify("s3cret", stale, body)


def test_webhooks_settings_come_from_the_environment_and_the_secret_is_masked() -> None:
    env = {
        "DIALER_WEBHOOKS_URL": "https://crm:crm-password@crm.example.com/hooks?token=tok-9f8e7d",
        "DIALER_WEBHOOKS_SECRET": "top-secret-value",
        "DIALER_WEBHOOKS_MAX_BACKOFF_S": "60",
    }
    config = load_config(env=env)
    assert config.webhooks.active
    assert config.webhooks.max_backoff_s == 60.0
    assert "top-secret-value" not in repr(config)
    # check-config as operators run it (a process of its own: it sets up logging).
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    clean.pop("DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dialer_server", "check-config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "[webhooks]" in proc.stdout
    # The URL's credentials (user:password, a token in its query) are masked too.
    assert "url = 'https://crm:***@crm.example.com/hooks?token=***'" in proc.stdout
    for secret in ("top-secret-value", "crm-password", "tok-9f8e7d"):
        assert secret not in proc.stdout + proc.stderr
    assert "secret = '***'" in proc.stdout


def test_webhooks_are_off_without_a_url_or_when_disabled() -> None:
    assert not load_config(env={}).webhooks.active
    disabled = load_config(
        env={
            "DIALER_WEBHOOKS_URL": "http://crm/x",
            "DIALER_WEBHOOKS_SECRET": "s",
            "DIALER_WEBHOOKS_ENABLED": "false",
        }
    )
    assert not disabled.webhooks.active


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIALER_WEBHOOKS_URL": "http://crm/x"}, "webhooks.secret must be set"),
        ({"DIALER_WEBHOOKS_URL": "ftp://crm/x", "DIALER_WEBHOOKS_SECRET": "s"}, "http(s)://"),
        ({"DIALER_WEBHOOKS_MIN_BACKOFF_S": "10", "DIALER_WEBHOOKS_MAX_BACKOFF_S": "1"}, "min"),
        ({"DIALER_WEBHOOKS_TIMEOUT_S": "0"}, "timeout_s"),
        ({"DIALER_WEBHOOKS_BATCH_SIZE": "0"}, "batch_size"),
    ],
)
def test_bad_webhooks_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(env=env)


def test_the_documented_verifier_accepts_either_signature_of_a_rotation() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    match = re.search(
        r"```python\n(import hashlib\n.*?def verify_dialer_webhook.*?)```", readme, re.S
    )
    assert match
    namespace: dict[str, Any] = {}
    exec(match[1], namespace)
    verify = namespace["verify_dialer_webhook"]
    body = b'{"id": "e2"}'
    headers = request_headers(
        event_id="e2",
        event_type="contact.final_state",
        body=body,
        secret="new-secret",
        previous_secret="old-secret",
        timestamp=int(time.time()),
    )
    new, old = headers["X-Dialer-Signature"].split(", ")
    assert new == sign("new-secret", int(headers["X-Dialer-Timestamp"]), body)
    assert old == sign("old-secret", int(headers["X-Dialer-Timestamp"]), body)
    assert verify("new-secret", headers, body) == {"id": "e2"}
    assert verify("old-secret", headers, body) == {"id": "e2"}
    with pytest.raises(ValueError, match="signature"):
        verify("third-secret", headers, body)


NONE = AllowedHosts()


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "not a destination"),
        ("::", "not a destination"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
    ],
)
def test_addresses_a_hook_set_over_the_api_may_not_reach(address: str, why: str) -> None:
    problem = address_problem(address, NONE)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "192.168.1.20", "172.16.0.1", "203.0.113.7", "2001:db8::1", "fd12::1"]
)
def test_private_and_public_addresses_are_fine(address: str) -> None:
    assert address_problem(address, NONE) is None


def test_allowed_hosts_open_exactly_what_they_name() -> None:
    allowed = AllowedHosts.parse("127.0.0.1, ::1, 169.254.0.0/16, crm.internal, LOCALHOST.")
    assert address_problem("127.0.0.1", allowed) is None
    assert address_problem("127.0.0.2", allowed) is not None
    assert address_problem("::1", allowed) is None
    assert address_problem("169.254.169.254", allowed) is None
    assert url_problem("http://localhost:8080/x", allowed) is None
    assert url_problem("http://crm.internal/x", allowed) is None
    assert url_problem("http://[::1]:9/", allowed) is None
    assert url_problem("http://[::2]:9/", allowed) is None  # a public v6, nothing to allow
    for bad in ("a b", "http://x", "x/y/z", "-bad-.example"):
        with pytest.raises(ValueError):
            AllowedHosts.parse(bad)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://crm.example.com/", "http"),
        ("javascript:alert(1)", "http"),
        ("http:///path", "no host"),
        ("http://crm.example.com:99999/", "not a URL"),
        ("http://crm.example.com/#frag", "fragment"),
        ("http://metadata.google.internal/", "metadata"),
        ("http://169.254.169.254/latest/", "metadata"),
        ("https://[::1]/", "loopback"),
    ],
)
def test_urls_refused_as_written(url: str, why: str) -> None:
    problem = url_problem(url, NONE)
    assert problem is not None and why in problem


@given(st.ip_addresses())
def test_every_loopback_or_link_local_address_is_refused_unless_allowed(address: Any) -> None:
    text = str(address)
    problem = address_problem(text, NONE)
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        assert problem is not None
        assert address_problem(text, AllowedHosts.parse(text)) is None
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None and (mapped.is_loopback or mapped.is_link_local):
        assert problem is not None


def test_allowed_hosts_is_checked_with_the_config() -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_config(env={"DIALER_WEBHOOKS_ALLOWED_HOSTS": "127.0.0.1, not a host"})
    config = load_config(env={"DIALER_WEBHOOKS_ALLOWED_HOSTS": "127.0.0.0/8, crm.internal"})
    assert AllowedHosts.parse(config.webhooks.allowed_hosts).allows_name("CRM.internal")
