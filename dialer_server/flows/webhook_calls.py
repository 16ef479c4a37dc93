"""Webhook tasks: the contact as JSON to the task's URL, signed like our webhooks.

The body is built once per try from the contact as it is; the headers are those of
a webhook event (``webhooks.request_headers``: HMAC-SHA256 with ``[webhooks]
secret``), the event id being the pass's idempotency key: every try of one pass,
even after a daemon died mid-call, carries the same ``Idempotency-Key``. 2xx is
success, 4xx fails the task (the receiver refused it: trying again changes
nothing), 5xx, a timeout or no connection is tried again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from ..webhooks import request_headers

EVENT_TYPE = "task.webhook"
_MAX_ERROR = 300
CONTACT_FIELDS = (
    "id",
    "external_id",
    *(f"phone{i}" for i in range(1, 6)),
    *(f"param{i}" for i in range(1, 13)),
    "timezone",
    "state",
    "status",
    "status_detail",
)


@dataclasses.dataclass(frozen=True)
class Called:
    ok: bool
    error: str = ""
    temporary: bool = False


def body(
    *,
    key: str,
    campaign: Mapping[str, Any],
    task: str,
    pass_: int,
    try_: int,
    previous: Mapping[str, Any] | None,
    contact: Mapping[str, Any],
    now: datetime,
) -> bytes:
    """The request body: the event envelope and the contact."""
    payload = {
        "id": key,
        "type": EVENT_TYPE,
        "occurred_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "campaign": {"id": campaign["id"], "name": campaign["name"]},
        "task": {"name": task, "pass": pass_, "try": try_, "previous": previous},
        "contact": {key_: contact[key_] for key_ in CONTACT_FIELDS},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


async def call(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    *,
    key: str,
    secret: str,
    timeout_s: float,
) -> Called:
    """POST one signed body; never raises."""
    headers = request_headers(
        event_id=key, event_type=EVENT_TYPE, body=data, secret=secret, timestamp=int(time.time())
    )
    try:
        async with asyncio.timeout(timeout_s + 1):
            async with session.post(
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                if 200 <= resp.status < 300:
                    return Called(True)
                answer = (await resp.content.read(_MAX_ERROR)).decode(errors="replace").strip()
                error = f"HTTP {resp.status}" + (f": {answer}" if answer else "")
                return Called(False, error[:_MAX_ERROR], resp.status >= 500)
    except TimeoutError:
        return Called(False, f"no answer within {timeout_s:g} s", True)
    except (aiohttp.ClientError, OSError) as exc:
        return Called(False, f"{type(exc).__name__}: {exc}"[:_MAX_ERROR], True)
