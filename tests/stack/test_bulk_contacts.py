"""Bulk operations on a campaign's contacts: recycle, cancel and move by filter, the dry
run's count equal to the change's, one transaction, the audit log; a recycled contact is
dialled again through real Asterisk with a fresh strategy run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer_server.campaigns import flows as flow_store
from dialer_server.config import Config

from ..support.api_client import api_config, api_server, user_token
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)

pytestmark = pytest.mark.stack

BUSY = "12025550486"
ANSWER = "12025550201"
# Phone 1 twice (busy is retried after 1 s), at most two attempts a run.
TWICE = {
    "name": "bulk-twice",
    "version": 1,
    "caps": {"per_contact": 2},
    "on": {"busy": {"action": "retry", "delay_s": 1}},
    "attempts": [{"phone": 1, "ring_timeout_s": 15, "max_tries": 2}],
}


async def attempts_per_contact(conn: Any, campaign_id: int) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT c.external_id, a.outcome FROM contacts c JOIN attempts a ON a.contact_id = c.id "
        "WHERE c.campaign_id = $1 ORDER BY a.created_at",
        campaign_id,
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["external_id"], []).append(row["outcome"])
    return out


async def test_a_recycle_counts_in_its_dry_run_what_it_reopens_for_a_fresh_run_dialled_again(
    stack: Any, config: Config, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campaign_id, _ = await add_campaign(
            conn, "recycled", TWICE, [[BUSY], [BUSY], [ANSWER]], max_concurrent_calls=5
        )
    daemon_config = engine_config(config)
    async with running_daemon(daemon_config):
        await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=90)
    async with pool.acquire() as conn:
        first = await attempts_per_contact(conn, campaign_id)
    assert first == {
        "recycled-0": ["busy", "busy"],
        "recycled-1": ["busy", "busy"],
        "recycled-2": ["answered"],
    }

    supervisor = await user_token(config.database.url, "sue", "supervisor")
    async with api_server(api_config(config)) as crm:
        api = crm.with_token(supervisor)
        path = f"/api/v1/campaigns/{campaign_id}/contacts/bulk"
        selection = {"state": "retries_completed", "last_outcome": ["busy"]}
        counted = await api.ok(
            "POST", path, {"action": "recycle", "filter": selection, "dry_run": True}
        )
        assert counted == {
            "action": "recycle",
            "matched": 2,
            "changed": 0,
            "dry_run": True,
            "to_campaign_id": None,
        }
        async with pool.acquire() as conn:
            # A dry run changes nothing, and is not in the audit log.
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM contacts WHERE campaign_id = $1 AND state = 'pending'",
                    campaign_id,
                )
                == 0
            )
        done = await api.ok("POST", path, {"action": "recycle", "filter": selection})
        assert done["matched"] == done["changed"] == counted["matched"]
        async with pool.acquire() as conn:
            audit = await conn.fetch("SELECT action, target_id, before, after FROM audit_log")
            reopened = await conn.fetch(
                "SELECT state, status, status_detail, next_attempt_at, run_started_at "
                "FROM contacts WHERE campaign_id = $1 AND state = 'pending'",
                campaign_id,
            )
        assert [(a["action"], a["target_id"]) for a in audit] == [
            ("bulkContacts", str(campaign_id))
        ]
        assert '"changed": 2' in audit[0]["after"]
        assert len(reopened) == 2
        assert all(r["status"] == "open" and r["status_detail"] == "$none" for r in reopened)
        await api.ok("POST", f"/api/v1/campaigns/{campaign_id}/start")

    async with running_daemon(daemon_config):
        await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=90)
    async with pool.acquire() as conn:
        again = await attempts_per_contact(conn, campaign_id)
    # A fresh run: its caps count only its own attempts, so each gets two tries again
    # (counting the first run's, the cap of two would have allowed none).
    assert again == {
        "recycled-0": ["busy"] * 4,
        "recycled-1": ["busy"] * 4,
        "recycled-2": ["answered"],
    }


async def test_cancel_and_move_by_filter_and_their_refusals(config: Config, pool: Any) -> None:
    admin = await user_token(config.database.url, "ada", "admin")
    async with api_server(api_config(config)) as crm:
        api = crm.with_token(admin)
        await api.new_strategy()
        source = await api.new_campaign("source")
        target = await api.new_campaign("target")
        await api.upload(
            source["id"],
            [{"external_id": f"s{i}", "phone1": f"+1202555{i:04d}"} for i in range(10)],
        )
        await api.upload(target["id"], [{"external_id": "s9", "phone1": "+12025559999"}])
        async with pool.acquire() as conn:
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM contacts WHERE campaign_id = $1 ORDER BY id", source["id"]
                )
            ]
            # Two contacts were called long ago (no answer), one is in a call now.
            for contact_id in ids[:2]:
                await conn.execute(
                    "INSERT INTO attempts (campaign_id, contact_id, channel, number, state, "
                    "outcome, created_at, ended_at) VALUES ($1, $2, 'call', '+12025550000', "
                    "'ended', 'no_answer', now() - interval '3 days', now() - interval '3 days')",
                    source["id"],
                    contact_id,
                )
            await conn.execute(
                "INSERT INTO attempts (campaign_id, contact_id, channel, number) "
                "VALUES ($1, $2, 'call', '+12025550000')",
                source["id"],
                ids[2],
            )
            await conn.execute(
                "UPDATE contacts SET state = 'sent_to_dialer', next_attempt_at = NULL "
                "WHERE id = $1",
                ids[2],
            )
        path = f"/api/v1/campaigns/{source['id']}/contacts/bulk"
        long_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        old = {"last_outcome": "no_answer", "last_attempt_before": long_ago}
        dry = await api.ok("POST", path, {"action": "cancel", "filter": old, "dry_run": True})
        done = await api.ok("POST", path, {"action": "cancel", "filter": old})
        assert dry["matched"] == done["changed"] == 2

        # Moving every pending contact: s9 is the target's already, so nothing moves.
        clash = await api.post(
            path, {"action": "move", "filter": {"state": "pending"}, "to_campaign_id": target["id"]}
        )
        assert clash.status == 409 and clash.body["error"]["code"] == "external_id_conflict"
        assert clash.body["error"]["details"]["external_ids"] == ["s9"]
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM contacts WHERE campaign_id = $1", target["id"]
                )
                == 1
            )
            await conn.execute(
                "UPDATE contacts SET external_id = 'other' WHERE external_id = 's9' "
                "AND campaign_id = $1",
                target["id"],
            )
        moved = await api.ok(
            "POST",
            path,
            {
                "action": "move",
                "filter": {"state": ["pending", "sent_to_dialer"]},
                "to_campaign_id": target["id"],
            },
        )
        # The one in a call stays (its result is the source campaign's to record).
        assert moved["changed"] == 7
        async with pool.acquire() as conn:
            counts = {
                r["campaign_id"]: r["n"]
                for r in await conn.fetch(
                    "SELECT campaign_id, count(*) AS n FROM contacts GROUP BY campaign_id"
                )
            }
        assert counts == {source["id"]: 3, target["id"]: 8}

        for bad in (
            {"action": "explode"},
            {"action": "move", "filter": {}},
            {"action": "move", "to_campaign_id": source["id"]},
            {"action": "cancel", "to_campaign_id": target["id"]},
            {"action": "cancel", "filter": {"state": "sleeping"}},
            {"action": "cancel", "filter": {"last_attempt_before": "yesterday"}},
        ):
            reply = await api.post(path, bad)
            assert reply.status == 422, (bad, reply.body)
        assert (await api.post(path, {"action": "move", "to_campaign_id": 999})).status == 404
        assert (await api.with_token(None).post(path, {"action": "cancel"})).status == 401
        # A CRM's integration token may not: bulk operations are for admins and supervisors.
        assert (await crm.post(path, {"action": "cancel", "dry_run": True})).status == 403


# Everyone answers; then an email, then a webhook.
MAIL_FLOW = {
    "name": "bulk-mail",
    "version": 1,
    "tasks": {
        "call": {"type": "call"},
        "mail": {"type": "email", "to": "{param3}", "subject": "Hi", "body": "Hello"},
    },
    "rules": [{"from": "call", "status": "success", "to": "mail"}],
}


async def test_bulk_actions_take_a_flow_contact_back_to_its_first_task_never_one_running(
    config: Config, pool: Any
) -> None:
    admin = await user_token(config.database.url, "ada", "admin")
    async with api_server(api_config(config)) as crm:
        api = crm.with_token(admin)
        await api.new_strategy()
        campaign = await api.new_campaign("flowing")
        await api.upload(
            campaign["id"],
            [{"external_id": f"f{i}", "phone1": f"+1202555{i:04d}"} for i in range(3)],
        )
        async with pool.acquire() as conn:
            stored = await flow_store.create_flow(conn, MAIL_FLOW)
            await conn.execute(
                "UPDATE campaigns SET flow_id = $2 WHERE id = $1", campaign["id"], stored["id"]
            )
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM contacts WHERE campaign_id = $1 ORDER BY id", campaign["id"]
                )
            ]
            # All three answered and wait for their email, due in an hour; the second's
            # email is being sent right now.
            await conn.execute(
                "UPDATE contacts SET task = 'mail', task_key = gen_random_uuid(), "
                "task_due_at = now() + interval '1 hour', state = 'connected', "
                "next_attempt_at = NULL WHERE id = ANY ($1::bigint[])",
                ids,
            )
            await conn.execute("UPDATE contacts SET task_due_at = NULL WHERE id = $1", ids[1])
            await conn.execute(
                "INSERT INTO task_runs (campaign_id, contact_id, task, task_type, pass, try, "
                "idempotency_key) VALUES ($1, $2, 'mail', 'email', 1, 1, gen_random_uuid())",
                campaign["id"],
                ids[1],
            )
        path = f"/api/v1/campaigns/{campaign['id']}/contacts/bulk"
        recycled = await api.ok(
            "POST", path, {"action": "recycle", "filter": {"state": "connected"}}
        )
        assert recycled["changed"] == 2
        async with pool.acquire() as conn:
            rows = {
                r["id"]: r
                for r in await conn.fetch(
                    "SELECT id, task, task_key, task_due_at, state, next_attempt_at "
                    "FROM contacts WHERE campaign_id = $1",
                    campaign["id"],
                )
            }
            for contact_id in (ids[0], ids[2]):
                row = rows[contact_id]
                # Back to the flow's first task, the call task, due for the call claim.
                assert row["task"] is None and row["task_key"] is None, row
                assert row["task_due_at"] is None and row["next_attempt_at"] is not None, row
                assert row["state"] == "pending", row
            # The one whose email runs now is left to its run's result.
            assert rows[ids[1]]["task"] == "mail" and rows[ids[1]]["state"] == "connected"
            await conn.execute(
                "UPDATE contacts SET task = 'mail', task_key = gen_random_uuid(), "
                "task_due_at = now() + interval '1 hour', state = 'connected', "
                "next_attempt_at = NULL WHERE id = $1",
                ids[0],
            )
        cancelled = await api.ok(
            "POST", path, {"action": "cancel", "filter": {"state": "connected"}}
        )
        assert cancelled["changed"] == 2
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT state, task_due_at FROM contacts WHERE id = $1", ids[0]
            )
            # Its email, due later, no longer runs.
            assert row["state"] == "cancelled" and row["task_due_at"] is None, row
