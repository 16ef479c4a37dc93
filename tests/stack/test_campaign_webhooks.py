"""Campaigns' own webhooks: each campaign's events to its own CRM, signed with its own
secret, rotated with a grace period, filtered by type; URLs set over the API never lead
to loopback, link-local or metadata addresses unless the operator allows them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from dialer_server.config import Config, DatabaseConfig, WebhooksConfig
from dialer_server.webhooks import WebhookSender, record_events

from ..support import daemon_process as daemons
from ..support.api_client import WRITE_TOKEN, api_config, api_server
from ..support.campaign_setup import add_campaign, wait_campaign_state
from ..support.crm_receiver import Crm, Received, signature_ok
from ..support.webhook_events import hooks

ONE_CALL = {
    "name": "one-call",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
SECRET_A = "secret-of-campaign-a-0123456789"
SECRET_B = "secret-of-campaign-b-9876543210"
DEFAULT_SECRET = "secret-of-the-daemon-000000000"


def signatures(received: Received) -> list[str]:
    return [part.strip() for part in received.headers["X-Dialer-Signature"].split(",")]


def signed_by(secret: str, received: Received) -> bool:
    """What a receiver does during a rotation: one of the listed signatures is right."""
    timestamp = received.headers["X-Dialer-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(sig, "sha256=" + expected) for sig in signatures(received))


@contextlib.asynccontextmanager
async def receivers(count: int) -> AsyncIterator[list[Crm]]:
    crms = [Crm() for _ in range(count)]
    for crm in crms:
        await crm.start()
    try:
        yield crms
    finally:
        for crm in crms:
            await crm.close()


@pytest.mark.stack
async def test_two_campaigns_with_their_own_receivers_each_get_only_their_events(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    async with receivers(3) as (crm_a, crm_b, crm_default):
        conn = await asyncpg.connect(database_url)
        try:
            ids = {}
            for name in ("a", "b", "c"):
                # Answered calls (hold 1 s): a result, a final state, running, completed.
                ids[name], _ = await add_campaign(
                    conn,
                    f"hooks-{name}",
                    ONE_CALL,
                    [[f"12025550{i}01"] for i in range(2)],
                    start=False,
                    webhook_attempts=True,
                )
        finally:
            await conn.close()
        daemon = await asyncio.to_thread(
            daemons.start_daemon,
            stack,
            database_url,
            tmp_path / "daemon.log",
            DIALER_API_TOKENS=f"crm:{WRITE_TOKEN}",
            DIALER_WEBHOOKS_URL=crm_default.url,
            DIALER_WEBHOOKS_SECRET=DEFAULT_SECRET,
            DIALER_WEBHOOKS_ALLOWED_HOSTS="127.0.0.1",
            DIALER_WEBHOOKS_MIN_BACKOFF_S="0.1",
            DIALER_WEBHOOKS_MAX_BACKOFF_S="0.5",
        )
        try:
            auth = {"Authorization": f"Bearer {WRITE_TOKEN}"}
            async with aiohttp.ClientSession(headers=auth) as http:
                for name, crm, secret in (("a", crm_a, SECRET_A), ("b", crm_b, SECRET_B)):
                    async with http.put(
                        daemon.url(f"/api/v1/campaigns/{ids[name]}/webhook"),
                        json={"url": crm.url, "secret": secret},
                    ) as resp:
                        assert resp.status == 201, await resp.text()
                        answer = await resp.json()
                        assert answer["secret"] is None  # given, so never shown back
                        assert "secret" not in answer["webhook"]
                for name in ("a", "b", "c"):
                    async with http.post(
                        daemon.url(f"/api/v1/campaigns/{ids[name]}/start")
                    ) as resp:
                        assert resp.status == 200, await resp.text()
            for name in ("a", "b", "c"):
                await wait_campaign_state(
                    database_url, ids[name], "completed", timeout=60, alive=daemon.alive
                )
            # Each: started, 2 results, 2 final states, completed.
            for crm in (crm_a, crm_b, crm_default):
                await crm.wait_for(lambda c: len(c.delivered()) >= 6, timeout=20)
        finally:
            await asyncio.to_thread(daemon.close)

    for crm, name, secret, others in (
        (crm_a, "a", SECRET_A, (SECRET_B, DEFAULT_SECRET)),
        (crm_b, "b", SECRET_B, (SECRET_A, DEFAULT_SECRET)),
        (crm_default, "c", DEFAULT_SECRET, (SECRET_A, SECRET_B)),
    ):
        got = crm.delivered()
        assert {r.event["campaign"]["id"] for r in got} == {ids[name]}
        assert sorted(r.event["type"] for r in got) == sorted(
            ["campaign.state_changed"] * 2 + ["attempt.result"] * 2 + ["contact.final_state"] * 2
        )
        for received in crm.requests:
            assert signature_ok(secret, received)
            assert len(signatures(received)) == 1
            assert not any(signed_by(other, received) for other in others)


@contextlib.asynccontextmanager
async def sender(pool: Any, config: WebhooksConfig, url: str) -> AsyncIterator[WebhookSender]:
    await record_events(pool, config)
    running = WebhookSender(pool, config, DatabaseConfig(url=url))
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop), name="sender-under-test")
    try:
        yield running
        assert not task.done(), "the sender stopped on its own"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def settings(config: Config, crm: Crm | None, **webhooks: Any) -> Config:
    import dataclasses

    values = {"allowed_hosts": "127.0.0.1", **webhooks}
    hook = hooks(crm, **values) if crm is not None else hooks(None, url="", **values)
    return dataclasses.replace(api_config(config), webhooks=hook)


async def cancel_one(api: Any, campaign_id: int, external_id: str) -> None:
    contact = await api.ok(
        "GET", f"/api/v1/campaigns/{campaign_id}/contacts/by-external-id/{external_id}"
    )
    await api.ok("POST", f"/api/v1/contacts/{contact['id']}/cancel")


@pytest.mark.stack
async def test_a_rotated_secret_signs_with_both_during_the_grace_period_then_the_new_only(
    config: Config, pool: Any, database_url: str
) -> None:
    async with receivers(1) as (crm,):
        cfg = settings(config, None)
        async with api_server(cfg) as api, sender(pool, cfg.webhooks, database_url):
            await api.new_strategy()
            campaign = await api.new_campaign("rotating")
            await api.upload(
                campaign["id"],
                [{"external_id": f"r{i}", "phone1": "+12025550101"} for i in range(3)],
            )
            hook = f"/api/v1/campaigns/{campaign['id']}/webhook"
            made = await api.ok("PUT", hook, {"url": crm.url}, status=201)
            first = made["secret"]
            assert first and len(first) == 64  # made here, shown once
            shown = await api.ok("GET", hook)
            assert shown["previous_secret_valid_until"] is None and "secret" not in shown

            await cancel_one(api, campaign["id"], "r0")
            await crm.wait_for(lambda c: len(c.delivered()) == 1, timeout=10)
            assert signature_ok(first, crm.requests[-1])

            rotated = await api.ok("POST", hook + "/rotate", {"grace_s": 3600})
            second = rotated["secret"]
            assert second != first and rotated["webhook"]["previous_secret_valid_until"]
            await cancel_one(api, campaign["id"], "r1")
            await crm.wait_for(lambda c: len(c.delivered()) == 2, timeout=10)
            during = crm.requests[-1]
            # A CRM still on the old secret and one already on the new both accept it.
            assert signed_by(first, during) and signed_by(second, during)
            assert (
                signatures(during)[0]
                == "sha256="
                + hmac.new(
                    second.encode(),
                    during.headers["X-Dialer-Timestamp"].encode() + b"." + during.body,
                    hashlib.sha256,
                ).hexdigest()
            )

            # No grace at all: the old secret stops at once.
            third = "third-secret-given-by-the-crm-42"
            await api.ok("POST", hook + "/rotate", {"secret": third, "grace_s": 0})
            await cancel_one(api, campaign["id"], "r2")
            await crm.wait_for(lambda c: len(c.delivered()) == 3, timeout=10)
            after = crm.requests[-1]
            assert signature_ok(third, after)
            assert not signed_by(second, after) and not signed_by(first, after)

            same = await api.post(hook + "/rotate", {"secret": third})
            assert same.status == 409 and same.body["error"]["code"] == "same_secret"


@pytest.mark.stack
async def test_a_hook_gets_only_the_event_types_it_asked_for(
    config: Config, pool: Any, database_url: str
) -> None:
    async with receivers(1) as (crm,):
        cfg = settings(config, None)
        async with api_server(cfg) as api, sender(pool, cfg.webhooks, database_url):
            await api.new_strategy()
            campaign = await api.new_campaign("filtered")
            await api.upload(campaign["id"], [{"external_id": "f0", "phone1": "+12025550101"}])
            await api.ok(
                "PUT",
                f"/api/v1/campaigns/{campaign['id']}/webhook",
                {"url": crm.url, "secret": SECRET_A, "events": ["campaign.state_changed"]},
                status=201,
            )
            await cancel_one(api, campaign["id"], "f0")  # a final state: not wanted
            await api.ok("POST", f"/api/v1/campaigns/{campaign['id']}/start")
            await api.ok("POST", f"/api/v1/campaigns/{campaign['id']}/stop")
            await crm.wait_for(lambda c: len(c.delivered()) == 2, timeout=10)
            await asyncio.sleep(0.5)
    assert [r.event["type"] for r in crm.delivered()] == ["campaign.state_changed"] * 2
    async with pool.acquire() as conn:
        # Not recorded for the hook at all, so nothing waits for it either.
        assert await conn.fetchval("SELECT count(*) FROM webhook_outbox") == 2


@pytest.mark.stack
async def test_events_of_a_removed_hook_are_dropped_never_sent_to_the_default(
    config: Config, pool: Any, database_url: str
) -> None:
    async with receivers(2) as (crm, default):
        cfg = settings(config, default)
        async with api_server(cfg) as api:
            await record_events(pool, cfg.webhooks)
            await api.new_strategy()
            campaign = await api.new_campaign("removed")
            hook = f"/api/v1/campaigns/{campaign['id']}/webhook"
            await api.ok("PUT", hook, {"url": crm.url, "secret": SECRET_A}, status=201)
            await api.ok("POST", f"/api/v1/campaigns/{campaign['id']}/start")  # while it had one
            assert (await api.delete(hook)).status == 204
            await api.ok("POST", f"/api/v1/campaigns/{campaign['id']}/stop")  # the default's now
            assert (await api.delete(hook)).status == 204  # idempotent
            missing = await api.get(hook)
            assert missing.status == 404
            async with sender(pool, cfg.webhooks, database_url):
                await default.wait_for(lambda c: len(c.delivered()) == 1, timeout=10)
                async with asyncio.timeout(10):
                    while True:
                        async with pool.acquire() as conn:
                            left = await conn.fetchval(
                                "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL"
                            )
                        if not left:
                            break
                        await asyncio.sleep(0.05)
        async with pool.acquire() as conn:
            dropped = await conn.fetchrow(
                "SELECT last_error, payload->'campaign'->>'state' AS state FROM webhook_outbox "
                "WHERE hook_campaign_id IS NOT NULL"
            )
    assert crm.requests == []
    assert [r.event["campaign"]["state"] for r in default.delivered()] == ["stopped"]
    assert dropped["state"] == "running" and "removed" in dropped["last_error"]


@pytest.mark.stack
async def test_urls_set_over_the_api_may_not_lead_to_loopback_link_local_or_metadata(
    config: Config,
) -> None:
    import dataclasses

    strict = dataclasses.replace(api_config(config), webhooks=WebhooksConfig())
    async with api_server(strict) as api:
        await api.new_strategy()
        campaign = await api.new_campaign("guarded")
        hook = f"/api/v1/campaigns/{campaign['id']}/webhook"
        for url, why in (
            ("http://127.0.0.1:8080/hooks", "loopback"),
            ("http://[::1]/hooks", "loopback"),
            ("http://localhost:8080/hooks", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://[fd00:ec2::254]/", "metadata"),
            ("http://169.254.10.1/", "link-local"),
            ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://0.0.0.0:9/", "not a destination"),
            ("ftp://crm.example.com/hooks", "http"),
            ("file:///etc/passwd", "http"),
            ("http:///no-host", "no host"),
        ):
            reply = await api.put(hook, {"url": url, "secret": SECRET_A})
            assert reply.status == 422, (url, reply.body)
            assert reply.body["error"]["code"] == "webhook_url_refused", url
            assert why in reply.body["error"]["message"], (url, reply.body)
        # A private network is a CRM's usual home: allowed.
        ok = await api.put(hook, {"url": "http://10.1.2.3:8443/hooks", "secret": SECRET_A})
        assert ok.status == 201, ok.body
        assert (await api.get(hook)).body["url"] == "http://10.1.2.3:8443/hooks"

    allowing = dataclasses.replace(
        api_config(config), webhooks=WebhooksConfig(allowed_hosts="127.0.0.0/8, localhost")
    )
    async with api_server(allowing) as api:
        campaign = await api.new_campaign("allowed")
        hook = f"/api/v1/campaigns/{campaign['id']}/webhook"
        for url in ("http://127.0.0.1:8080/hooks", "http://localhost:8080/hooks"):
            assert (await api.put(hook, {"url": url, "secret": SECRET_A})).status in (200, 201)
        still = await api.put(hook, {"url": "http://169.254.169.254/", "secret": SECRET_A})
        assert still.status == 422


@pytest.mark.stack
async def test_a_hook_whose_name_leads_to_loopback_at_send_time_is_not_connected_to(
    config: Config, pool: Any, database_url: str
) -> None:
    """The URL was fine when set (say, allowed then, or its name resolved elsewhere):
    every connection is checked again, so the sender never reaches the address."""
    async with receivers(1) as (crm,):
        port = crm.url.split(":")[2].split("/")[0]
        strict = WebhooksConfig(min_backoff_s=0.05, max_backoff_s=0.2, poll_interval_s=0.2)
        async with pool.acquire() as conn:
            campaign_id, _ = await add_campaign(conn, "rebinding", ONE_CALL, [], start=False)
            await conn.execute(
                "INSERT INTO campaign_webhooks (campaign_id, url, secret) VALUES ($1, $2, $3)",
                campaign_id,
                f"http://localhost:{port}/hooks/dialer",
                SECRET_A,
            )
            await conn.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
        async with sender(pool, strict, database_url):
            async with asyncio.timeout(10):
                while True:
                    async with pool.acquire() as conn:
                        row = await conn.fetchrow("SELECT attempts, last_error FROM webhook_outbox")
                    if row is not None and row["attempts"] >= 2:
                        break
                    await asyncio.sleep(0.05)
    assert crm.requests == []
    assert "loopback" in row["last_error"], row["last_error"]
