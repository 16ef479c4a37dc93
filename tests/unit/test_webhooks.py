"""Webhooks to the CRM: events recorded by the database in the same transaction as
the change they report, delivered signed and at least once to a real HTTP
receiver, across CRM failures, PostgreSQL restarts and a killed daemon.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer_server.config import WebhooksConfig, load_config
from dialer_server.errors import ConfigError
from dialer_server.webhooks import (
    backoff_s,
    request_headers,
    retry_after_s,
    retry_delay_s,
    sign,
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
    import re

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
