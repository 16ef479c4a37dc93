"""Task flows on the real stack: calls through Asterisk, emails to a real SMTP
server, webhooks to a real HTTP receiver, export files on disk, kill -9."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from dialer_server.campaigns import flows as flow_store
from dialer_server.config import Config, FlowsConfig, SmtpConfig
from dialer_server.engine import store

from ..support.api_client import WRITE_TOKEN, Api, api_config, api_server
from ..support.campaign_setup import (
    ALWAYS,
    add_strategy,
    engine_config,
    running_daemon,
    wait_campaign_state,
)
from ..support.crm_receiver import Crm, signature_ok
from ..support.daemon_process import DaemonProcess, start_daemon
from ..support.smtp_server import SmtpServer

pytestmark = pytest.mark.stack

# One call per pass: a decline and a busy line close the call task at once.
CALLS = {
    "name": "flow-calls",
    "version": 1,
    "caps": {"per_contact": 5},
    "on": {
        "rejected": {
            "action": "close",
            "state": "not_connected",
            "status": "declined",
            "status_detail": "not interested",
        },
        "busy": {"action": "close", "state": "not_connected"},
    },
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}

# The flow: call -> (success) email -> export; (declined) export;
# (failed, $unavailable) wait 2 s -> call again, once.
ACCEPTANCE = {
    "name": "acceptance",
    "version": 1,
    "tasks": {
        "call": {"type": "call"},
        "brochure": {
            "type": "email",
            "to": "{param3}",
            "subject": "Brochure for {param1}",
            "body": "Hello {param1}, here is what we said about {param2}.",
        },
        "won": {"type": "export", "format": "csv"},
        "lost": {"type": "export", "format": "csv"},
        "later": {"type": "wait", "wait_s": 2, "max_passes": 1},
    },
    "rules": [
        {"from": "call", "status": "success", "to": "brochure"},
        {"from": "call", "status": "declined", "to": "lost"},
        {"from": "call", "status": "failed", "status_detail": "$unavailable", "to": "later"},
        {"from": "later", "status": "success", "to": "call"},
        {"from": "brochure", "status": "success", "to": "won"},
    ],
}


def flow_config(config: Config, smtp: SmtpServer, export_dir: Path | None = None) -> Config:
    return dataclasses.replace(
        api_config(engine_config(config)),
        flows=FlowsConfig(
            export_dir=str(export_dir or ""),
            poll_interval_s=0.1,
            min_backoff_s=0.2,
            max_backoff_s=1.0,
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=smtp.port, from_address="sales@dialer.test"),
    )


async def flow_campaign(
    conn: Any,
    name: str,
    flow: Mapping[str, Any],
    strategy: Mapping[str, Any],
    suffixes: Sequence[str],
    **settings: Any,
) -> tuple[int, list[int]]:
    """A running campaign with ``flow``: contact i calls a far-end number ending in
    ``suffixes[i]``; param1 its name, param2 a topic, param3 its email address."""
    strategy_id = await add_strategy(conn, strategy)
    stored = await flow_store.create_flow(conn, flow)
    campaign_id = await store.create_campaign(
        conn, name, strategy_id=strategy_id, calling_window=ALWAYS, **settings
    )
    await conn.execute("UPDATE campaigns SET flow_id = $2 WHERE id = $1", campaign_id, stored["id"])
    ids = [
        await store.insert_contact(
            conn,
            campaign_id,
            phones=[f"1202{i:04d}{suffix}"],
            external_id=f"{name}-{i}",
            params=[f"Name {i}", f"topic {i}", f"c{i}@example.com"],
        )
        for i, suffix in enumerate(suffixes)
    ]
    await store.set_campaign_state(conn, campaign_id, "running")
    return campaign_id, ids


async def wait_for(url: str, sql: str, args: Sequence[Any], timeout: float, what: str) -> None:
    """Poll ``sql`` (one boolean) until true."""
    async with asyncio.timeout(timeout):
        while True:
            conn = await asyncpg.connect(url)
            try:
                if await conn.fetchval(sql, *args):
                    return
            finally:
                await conn.close()
            await asyncio.sleep(0.2)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


async def test_a_flow_on_200_contacts_ends_each_contact_where_its_rules_say(
    config: Config, database_url: str, tmp_path: Path
) -> None:
    smtp = SmtpServer()
    await smtp.start()
    exports = tmp_path / "exports"
    config = flow_config(config, smtp, exports)
    # 100 answer (1 s), 50 decline (603), 50 are busy (486), interleaved.
    suffixes = [("201", "201", "603", "486")[i % 4] for i in range(200)]
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, ids = await flow_campaign(
            conn,
            "acceptance",
            ACCEPTANCE,
            CALLS,
            suffixes,
            max_concurrent_calls=60,
            max_calls_per_second=60,
        )
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as session:
            await wait_campaign_state(database_url, campaign_id, "completed", timeout=180)
            # Files are written once their rows committed: wait for the last ones.
            await wait_for(
                database_url,
                "SELECT count(*) = 2 AND bool_and(written_rows = rows) FROM task_export_files "
                "WHERE campaign_id = $1",
                [campaign_id],
                20,
                "the export files",
            )
            api = Api(session, f"http://127.0.0.1:{daemon.http_port}", WRITE_TOKEN)
            listed = await api.ok("GET", f"/api/v1/campaigns/{campaign_id}/exports")
            downloads = {
                item["task"]: (item, (await api.get(item["url"])).raw) for item in listed["items"]
            }
            tasks = await api.ok("GET", f"/api/v1/campaigns/{campaign_id}/tasks")
            metrics = daemon.metrics.render().decode()
        contacts = {
            r["id"]: dict(r)
            for r in await conn.fetch("SELECT * FROM contacts WHERE campaign_id = $1", campaign_id)
        }
        attempts = {
            r["contact_id"]: r["n"]
            for r in await conn.fetch(
                "SELECT contact_id, count(*) AS n FROM attempts WHERE campaign_id = $1 "
                "GROUP BY contact_id",
                campaign_id,
            )
        }
    finally:
        await conn.close()
        await smtp.close()

    won = [i for i, s in enumerate(suffixes) if s == "201"]
    lost = [i for i, s in enumerate(suffixes) if s == "603"]
    busy = [i for i, s in enumerate(suffixes) if s == "486"]
    where = {
        i: (c["task"], c["status"], c["status_detail"], c["state"], c["closed_at"] is not None)
        for i, c in ((ids.index(cid), c) for cid, c in contacts.items())
    }
    for i in won:
        assert where[i] == ("won", "success", "$none", "connected", True), (i, where[i])
        assert attempts[ids[i]] == 1
    for i in lost:
        assert where[i] == ("lost", "success", "$none", "not_connected", True), (i, where[i])
        assert attempts[ids[i]] == 1
    for i in busy:
        # Called, waited 2 s, called again, and the wait has no pass left: it ends in call.
        assert where[i] == ("call", "failed", "$unavailable", "not_connected", True), where[i]
        assert attempts[ids[i]] == 2

    # Each email arrived once, to the contact's address, with its parameters.
    mails = smtp.by_recipient()
    assert sorted(mails) == sorted(f"c{i}@example.com" for i in won)
    for i in won:
        (mail,) = mails[f"c{i}@example.com"]
        assert mail.subject == f"Brochure for Name {i}"
        assert mail.body.strip() == f"Hello Name {i}, here is what we said about topic {i}."
        assert mail.message["From"] == "sales@dialer.test"
    assert len({m.message_id for m in smtp.mails}) == len(won)

    # The export files hold exactly the right rows, and the API serves the same bytes.
    day = downloads["won"][0]["day"]
    for task, expected, status, detail in (
        ("won", won, "success", "$none"),
        ("lost", lost, "declined", "not interested"),
    ):
        on_disk = (exports / str(campaign_id) / f"{task}-{day}.csv").read_bytes()
        assert downloads[task][1] == on_disk
        rows = csv_rows(on_disk)
        assert sorted(int(r["contact_id"]) for r in rows) == sorted(ids[i] for i in expected)
        assert {(r["status"], r["status_detail"]) for r in rows} == {(status, detail)}
        assert all(r["param3"].endswith("@example.com") for r in rows)

    overview = {t["name"]: t for t in tasks["tasks"]}
    assert overview["won"]["by_status"] == {"success": {"$none": 100}}
    assert overview["call"]["by_status"] == {"failed": {"$unavailable": 50}}
    assert overview["later"]["contacts"] == 0
    runs = f'dialer_task_runs_total{{campaign="{campaign_id}",status="success",task="brochure"}}'
    assert f"{runs} 100.0" in metrics


# Everyone answers; then an email, then a webhook.
MAIL_THEN_HOOK = {
    "name": "mail-then-hook",
    "version": 1,
    "tasks": {
        "call": {"type": "call"},
        "mail": {"type": "email", "to": "{param3}", "subject": "Hi {param1}", "body": "{param2}"},
        "hook": {"type": "webhook", "url": "http://127.0.0.1:1/replaced-by-the-test"},
    },
    "rules": [
        {"from": "call", "status": "success", "to": "mail"},
        {"from": "mail", "status": "success", "to": "hook"},
    ],
}


async def test_kill_9_during_emails_and_webhooks_loses_nothing_and_repeats_only_keys(
    stack: Any, database_url: str, tmp_path: Path
) -> None:
    smtp = SmtpServer()
    crm = Crm()
    await smtp.start()
    await crm.start()
    # Slow answers: a daemon killed while it waits has sent the message already.
    smtp.delay_s = 2.0
    crm.delay_s = 2.0
    flow = json.loads(json.dumps(MAIL_THEN_HOOK))
    flow["tasks"]["hook"]["url"] = crm.url
    count = 20
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, ids = await flow_campaign(
            conn, "kill9", flow, CALLS, ["201"] * count, max_concurrent_calls=20
        )
    finally:
        await conn.close()
    env = {
        "DIALER_SMTP_HOST": "127.0.0.1",
        "DIALER_SMTP_PORT": str(smtp.port),
        "DIALER_SMTP_FROM_ADDRESS": "sales@dialer.test",
        "DIALER_WEBHOOKS_SECRET": "flow-secret-0123456789",
        "DIALER_FLOWS_POLL_INTERVAL_S": "0.1",
        "DIALER_FLOWS_MIN_BACKOFF_S": "0.2",
        "DIALER_FLOWS_MAX_BACKOFF_S": "1",
    }

    def start(name: str) -> DaemonProcess:
        return start_daemon(stack, database_url, tmp_path / f"{name}.log", **env)

    async def kill_when(done: Any, daemon: DaemonProcess) -> None:
        async with asyncio.timeout(90):
            while not done():
                assert daemon.alive(), daemon.log.read_text()[-3000:]
                await asyncio.sleep(0.05)
        daemon.proc.kill()  # SIGKILL: no cleanup of any kind
        daemon.proc.wait()
        daemon.close()

    first = start("first")
    try:
        await kill_when(lambda: len(smtp.mails) >= 3, first)
    finally:
        first.close()
    second = start("second")
    try:
        await kill_when(lambda: crm.arrived >= 3, second)
    finally:
        second.close()
    third = start("third")
    try:
        await wait_for(
            database_url,
            "SELECT count(*) = $2 FROM contacts WHERE campaign_id = $1 AND task = 'hook' "
            "AND status = 'success' AND closed_at IS NOT NULL",
            [campaign_id, count],
            120,
            "every contact through its webhook",
        )
    except TimeoutError:
        conn = await asyncpg.connect(database_url)
        try:
            left = await conn.fetch(
                "SELECT c.id, c.task, c.state, c.status, c.status_detail, c.closed_at, "
                "c.task_due_at, c.next_attempt_at, (SELECT array_agg(a.state || ':' || "
                "coalesce(a.outcome, '-')) FROM attempts a WHERE a.contact_id = c.id) AS calls "
                "FROM contacts c WHERE c.campaign_id = $1 AND NOT (c.task = 'hook' AND "
                "c.status = 'success' AND c.closed_at IS NOT NULL) ORDER BY c.id",
                campaign_id,
            )
        finally:
            await conn.close()
        raise AssertionError(
            f"not every contact through its webhook: {[dict(r) for r in left]}\n"
            + third.log.read_text()[-4000:]
        ) from None
    finally:
        third.close()
    conn = await asyncpg.connect(database_url)
    try:
        interrupted = await conn.fetch(
            "SELECT task FROM task_runs WHERE campaign_id = $1 AND state = 'interrupted'",
            campaign_id,
        )
        keys: dict[int, dict[str, str]] = {contact_id: {} for contact_id in ids}
        for r in await conn.fetch(
            "SELECT contact_id, task, idempotency_key FROM task_runs "
            "WHERE campaign_id = $1 AND task IN ('mail', 'hook')",
            campaign_id,
        ):
            keys[r["contact_id"]].setdefault(r["task"], str(r["idempotency_key"]))
    finally:
        await conn.close()
        await smtp.close()
        await crm.close()
    assert {r["task"] for r in interrupted} == {"mail", "hook"}, interrupted

    # Nothing lost: every contact got its email and its webhook.
    mails = smtp.by_recipient()
    assert sorted(mails) == sorted(f"c{i}@example.com" for i in range(count))
    # Nothing sent twice without the same key: one Message-ID per contact, its pass's key.
    for i, contact_id in enumerate(ids):
        sent = {m.message_id for m in mails[f"c{i}@example.com"]}
        assert sent == {f"<{keys[contact_id]['mail']}@dialer.test>"}, (i, sent)
    assert any(len(m) > 1 for m in mails.values()), "the kill did not interrupt any email"
    by_contact: dict[int, set[str]] = {}
    for request in crm.requests:
        assert signature_ok("flow-secret-0123456789", request)
        assert request.headers["X-Dialer-Event"] == "task.webhook"
        by_contact.setdefault(request.event["contact"]["id"], set()).add(request.key)
    assert sorted(by_contact) == sorted(ids)
    for contact_id, sent_keys in by_contact.items():
        assert sent_keys == {keys[contact_id]["hook"]}
    # A request cut by the kill may never be answered (its handler is cancelled), but it arrived.
    assert crm.arrived > count, "the kill did not interrupt any webhook"


CYCLE = {
    "name": "cycle",
    "version": 1,
    "tasks": {
        "call": {"type": "call"},
        "later": {"type": "wait", "wait_s": 0, "max_passes": 4},
    },
    "rules": [
        {"from": "call", "status": "failed", "to": "later"},
        {"from": "later", "status": "success", "to": "call"},
    ],
}


async def test_a_call_wait_call_cycle_keeps_the_strategy_caps_and_its_pass_limit(
    config: Config, database_url: str, tmp_path: Path
) -> None:
    smtp = SmtpServer()
    await smtp.start()
    config = flow_config(config, smtp)
    strategy = {**CALLS, "name": "two-calls", "caps": {"per_contact": 2}}
    conn = await asyncpg.connect(database_url)
    try:
        campaign_id, _ = await flow_campaign(conn, "cycle", CYCLE, strategy, ["486"] * 5)
        async with running_daemon(config):
            await wait_campaign_state(database_url, campaign_id, "completed", timeout=60)
        rows = await conn.fetch(
            "SELECT c.id, c.task, c.status, c.status_detail, c.state, c.task_passes::text, "
            "(SELECT count(*) FROM attempts a WHERE a.contact_id = c.id) AS calls "
            "FROM contacts c WHERE c.campaign_id = $1",
            campaign_id,
        )
    finally:
        await conn.close()
        await smtp.close()
    for row in rows:
        # Two calls (the cap counts every pass); passes 3 to 5 of call end at once as
        # retries_completed, and the fifth finds no pass of later left.
        assert row["calls"] == 2, dict(row)
        assert (row["task"], row["status"], row["status_detail"], row["state"]) == (
            "call",
            "failed",
            "$unavailable",
            "retries_completed",
        )
        assert json.loads(row["task_passes"]) == {"call": 5, "later": 4}


async def test_flows_over_the_api_refuse_bad_ones_and_move_contacts_audited(
    config: Config, database_url: str
) -> None:
    async with api_server(api_config(config)) as api:
        bad = {
            **ACCEPTANCE,
            "rules": [*ACCEPTANCE["rules"], {"from": "won", "status": "success", "to": "x"}],
        }
        reply = await api.post("/api/v1/flows", bad)
        assert reply.status == 422, reply.body
        assert reply.body["error"]["code"] == "invalid_flow"
        assert reply.body["error"]["message"].startswith("rules[5].to: 'x' is not a task")
        tasks = json.loads(json.dumps(ACCEPTANCE["tasks"]))
        tasks["brochure"]["body"] = "Dear {firstname}"
        reply = await api.post("/api/v1/flows", {**ACCEPTANCE, "tasks": tasks})
        assert reply.status == 422
        assert (
            "tasks.brochure.body: placeholder {firstname} does not exist"
            in (reply.body["error"]["message"])
        )
        stored = await api.ok("POST", "/api/v1/flows", ACCEPTANCE, status=201)
        assert stored["version"] == 1 and stored["definition"]["start"] == "call"
        again = await api.put(
            "/api/v1/flows/acceptance", {"tasks": ACCEPTANCE["tasks"], "rules": ACCEPTANCE["rules"]}
        )
        assert again.status == 200 and again.body["version"] == 1
        await api.new_strategy()
        campaign = await api.new_campaign("moves", flow="acceptance")
        assert campaign["flow"] == {"id": stored["id"], "name": "acceptance", "version": 1}
        base = f"/api/v1/campaigns/{campaign['id']}"
        rows = [{"external_id": f"m{i}", "phone1": f"+1202555{i:04d}"} for i in range(3)]
        await api.upload(campaign["id"], rows)
        dry = await api.ok(
            "POST",
            f"{base}/moves",
            {"filter": {"task": "call"}, "to_task": "later", "dry_run": True},
        )
        assert dry == {"matched": 3, "moved": 0, "busy": 0, "dry_run": True}
        moved = await api.ok(
            "POST",
            f"{base}/moves",
            {"filter": {"task": "call", "status": "open"}, "to_task": "later", "delay_s": 3600},
        )
        assert moved["moved"] == 3
        overview = await api.ok("GET", f"{base}/tasks")
        assert {t["name"]: t["contacts"] for t in overview["tasks"]}["later"] == 3
        ended = await api.ok(
            "POST",
            f"{base}/moves",
            {"filter": {"task": "later"}, "status": "declined", "status_detail": "moved away"},
        )
        assert ended["moved"] == 3
        contacts = (await api.ok("GET", f"{base}/contacts"))["items"]
        assert {(c["status"], c["status_detail"]) for c in contacts} == {("declined", "moved away")}
        log = await api.ok("GET", f"{base}/task-runs", params={"task": "later"})
        assert [r["error"] for r in log["items"]] == ["status set by crm"] * 3
        unknown = await api.post(f"{base}/moves", {"to_task": "nowhere"})
        assert unknown.status == 422
    conn = await asyncpg.connect(database_url)
    try:
        audit = await conn.fetch(
            "SELECT username, target_id, after::text FROM audit_log WHERE action = 'moveContacts' "
            "ORDER BY id"
        )
    finally:
        await conn.close()
    # One row per move that changed something (the dry run changed nothing).
    assert [(r["username"], r["target_id"]) for r in audit] == [("crm", str(campaign["id"]))] * 2
    assert json.loads(audit[0]["after"])["moved"] == 3
