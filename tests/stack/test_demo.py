"""The demo of scripts/demo, the README's first command: a campaign driven over the
API of a real daemon, through real Asterisk, ending where the strategy says."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from dialer_server.config import ApiConfig, Config, HttpConfig
from dialer_server.demo import CONTACTS, run_demo

from ..support.daemon_process import start_daemon
from ..support.observed_campaigns import SMS_ENV

pytestmark = pytest.mark.stack

TOKEN = "demo-token-0123456789abcdef"


async def test_the_demo_campaign_ends_every_contact_where_the_strategy_says(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    daemon = start_daemon(
        stack, database_url, tmp_path / "daemon.log", DIALER_API_TOKENS=f"demo:{TOKEN}", **SMS_ENV
    )
    try:
        config = Config(
            http=HttpConfig(host="127.0.0.1", port=daemon.port),
            api=ApiConfig(tokens=f"demo:{TOKEN}"),
        )
        out = io.StringIO()
        assert await run_demo(config, out), out.getvalue()
    finally:
        daemon.close()
    text = out.getvalue()
    assert "every contact ended where the strategy says" in text
    for contact in CONTACTS:
        assert contact.name in text
    assert "p1: busy 17 > p1: busy 17 > p2: answered 16" in text  # bob: a retry, then phone 2
    assert "sms: sent" in text  # carol: the SMS instead of a third ring-out
