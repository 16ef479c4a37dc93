"""Data rights (GDPR) against a real PostgreSQL: a person found across campaigns by number or
external id, exported whole, erased (their numbers kept only as a keyed hash), and never
dialled again after a re-import, checked through real Asterisk."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from dialer_server.config import Config, PrivacyConfig
from dialer_server.contacts.importer import import_contacts
from dialer_server.engine import store

from ..support.api_client import api_config, api_server, user_token
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)

pytestmark = pytest.mark.stack

KEY = "erasure-hash-key-0123456789abcdef"
ONE_CALL = {
    "name": "gdpr-one-call",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
# The far end answers ...201 and hangs up after 1 s.
PERSON = "+12025550201"
OTHER = "+12025551201"


def with_key(config: Config, key: str = KEY) -> Config:
    return dataclasses.replace(api_config(config), privacy=PrivacyConfig(hash_key=key))


async def new_campaign(conn: Any, name: str) -> int:
    campaign_id, _ = await add_campaign(conn, name, ONE_CALL, [], start=False)
    return int(campaign_id)


async def dial_all(config: Config, pool: Any, campaign_id: int) -> None:
    async with pool.acquire() as conn:
        await store.set_campaign_state(conn, campaign_id, "running")
    async with running_daemon(engine_config(config)):
        await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=60)


async def test_a_person_is_found_exported_erased_and_never_dialled_again(
    config: Config, pool: Any
) -> None:
    async with pool.acquire() as conn:
        spring = await new_campaign(conn, "spring")
        autumn = await new_campaign(conn, "autumn")
        await import_contacts(
            conn,
            spring,
            [
                {"external_id": "crm-7", "phone1": PERSON, "param1": "Ada Lovelace"},
                {"external_id": "crm-8", "phone1": OTHER, "param1": "Someone Else"},
            ],
            default_region="US",
        )
        await import_contacts(
            conn,
            autumn,
            [{"external_id": "crm-70", "phone1": "+12025559999", "phone2": PERSON}],
            default_region="US",
        )
    await dial_all(config, pool, spring)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sms_inbound (number, body, received_at) "
            "VALUES ($1, 'stop calling', now())",
            PERSON,
        )
        await conn.execute(
            "INSERT INTO dnc_numbers (campaign_id, number, reason) VALUES (NULL, $1, 'asked')",
            PERSON,
        )
        answered = await conn.fetchval(
            "SELECT a.id FROM attempts a JOIN contacts c ON c.id = a.contact_id "
            "WHERE c.external_id = 'crm-7'"
        )
        await conn.execute(
            "INSERT INTO attempt_dispositions (attempt_id, campaign_id, contact_id, "
            "disposition_id, name, action, note) SELECT $1, a.campaign_id, a.contact_id, d.id, "
            "d.name, d.action, 'lives at 12 Ada Street' FROM attempts a JOIN dispositions d "
            "ON d.campaign_id = a.campaign_id AND d.name = 'interested' WHERE a.id = $1",
            answered,
        )
    admin = await user_token(config.database.url, "ada-admin", "admin")
    async with api_server(with_key(config)) as crm:
        api = crm.with_token(admin)
        found = await api.ok("GET", "/api/v1/persons", params={"phone": PERSON})
        assert sorted(c["external_id"] for c in found["contacts"]) == ["crm-7", "crm-70"]
        by_id = await api.ok("GET", "/api/v1/persons", params={"external_id": "crm-70"})
        assert [c["campaign_id"] for c in by_id["contacts"]] == [autumn]
        national = await api.ok("GET", "/api/v1/persons", params={"phone": "(202) 555-0201"})
        assert len(national["contacts"]) == 2

        mine_id = next(c["id"] for c in found["contacts"] if c["external_id"] == "crm-7")
        await api.ok("PATCH", f"/api/v1/contacts/{mine_id}", {"param2": "born 1815"})
        exported = await api.get("/api/v1/persons/export", params={"phone": PERSON})
        assert exported.status == 200
        assert "attachment" in exported.headers["Content-Disposition"]
        data = json.loads(exported.raw)
        mine = next(c for c in data["contacts"] if c["external_id"] == "crm-7")
        assert mine["param1"] == "Ada Lovelace"
        assert [a["outcome"] for a in mine["attempts"]] == ["answered"]
        assert mine["attempts"][0]["disposition_note"] == "lives at 12 Ada Street"
        assert [s["body"] for s in data["sms_replies"]] == ["stop calling"]
        assert data["do_not_call"][0]["reason"] == "asked"
        assert data["erased_numbers"] == []
        # Who changed what about them is theirs to see too.
        changed = [a for a in data["audit_log"] if a["action"] == "updateContact"]
        assert len(changed) == 1 and "born 1815" in changed[0]["after"]
        # Only admins export or erase; the CRM's token may not even look.
        assert (await crm.get("/api/v1/persons/export", params={"phone": PERSON})).status == 403
        assert (await crm.post("/api/v1/persons/erase", {"phone": PERSON})).status == 403
        assert (await crm.get("/api/v1/persons", params={"phone": PERSON})).status == 403

        erased = await api.ok("POST", "/api/v1/persons/erase", {"phone": PERSON})
        assert (erased["contacts"], erased["attempts"], erased["sms_replies"]) == (2, 1, 1)
        # Both numbers of crm-70 are hashed: its other phone was the person's too.
        assert erased["numbers"] == 2
        assert (await api.ok("GET", "/api/v1/persons", params={"phone": PERSON}))["contacts"] == []

        # A re-import of the person is refused, row by row, with the reason.
        again = await api.post(
            f"/api/v1/campaigns/{spring}/contacts",
            {
                "contacts": [
                    {"external_id": "crm-7b", "phone1": "(202) 555-0201"},
                    {"external_id": "crm-9", "phone1": "+12025552201"},
                ]
            },
        )
        assert again.status == 200, again.body
        assert (again.body["inserted"], again.body["rejected_rows"]) == (1, 1)
        assert "erased" in again.body["rejected"][0]["reason"]
        # Nor may a contact's change bring the number back.
        crm8 = await api.ok("GET", f"/api/v1/campaigns/{spring}/contacts/by-external-id/crm-8")
        patched = await api.patch(f"/api/v1/contacts/{crm8['id']}", {"phone2": PERSON})
        assert patched.status == 422 and patched.body["error"]["code"] == "number_erased"
        erased_contact = next(c for c in found["contacts"] if c["external_id"] == "crm-7")
        refused = await api.post(f"/api/v1/contacts/{erased_contact['id']}/reschedule", {})
        assert refused.status == 409 and refused.body["error"]["code"] == "contact_erased"

    async with pool.acquire() as conn:
        contacts = await conn.fetch(
            "SELECT * FROM contacts WHERE erased_at IS NOT NULL ORDER BY id"
        )
        attempts = await conn.fetch(
            "SELECT number, outcome, ended_at, detail FROM attempts a "
            "WHERE contact_id = ANY ($1::bigint[])",
            [c["id"] for c in contacts],
        )
        note = await conn.fetchval("SELECT note FROM attempt_dispositions")
        sms = await conn.fetchval("SELECT count(*) FROM sms_inbound")
        hashes = await conn.fetchval("SELECT count(*) FROM erased_numbers")
        audit = await conn.fetch("SELECT action, target_type, target_id, after FROM audit_log")
        dnc = await conn.fetchval("SELECT count(*) FROM dnc_numbers")
    assert len(contacts) == 2
    for contact in contacts:
        assert all(contact[f"phone{i}"] is None for i in range(1, 6))
        assert all(contact[f"param{i}"] is None for i in range(1, 13))
        assert contact["external_id"] is None
        assert (contact["state"], contact["status"], contact["status_detail"]) == (
            "cancelled",
            "failed",
            "$erased",
        )
    # Statistics keep the attempt, without the number.
    assert [(a["number"], a["outcome"]) for a in attempts] == [(None, "answered")]
    assert attempts[0]["ended_at"] is not None
    assert note is None and sms == 0 and hashes == 2
    assert dnc == 1  # the do-not-call entry stays: it exists so the number is not called
    actions = [(a["action"], a["target_type"]) for a in audit]
    assert ("exportPerson", "person") in actions and ("erasePerson", "person") in actions
    assert all(PERSON not in (a["target_id"] or "") + (a["after"] or "") for a in audit)
    # The audit log keeps who changed their contact, not what it held.
    assert not any("Ada" in (a["after"] or "") or "1815" in (a["after"] or "") for a in audit)
    updated = [a for a in audit if a["action"] == "updateContact"]
    assert len(updated) == 1 and updated[0]["after"] == '{"erased": true}'
    assert all(a["target_id"].startswith("sha256:") for a in audit if a["target_type"] == "person")

    # Dialling the campaign again reaches the new contact only: never the erased person.
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM attempts")
    await dial_all(config, pool, spring)
    async with pool.acquire() as conn:
        dialled = await conn.fetch(
            "SELECT c.external_id, a.number FROM attempts a JOIN contacts c ON c.id = a.contact_id "
            "ORDER BY a.created_at OFFSET $1",
            before,
        )
    assert [(r["external_id"], r["number"]) for r in dialled] == [("crm-9", "+12025552201")]


async def test_imports_need_the_key_the_erasures_were_made_with(config: Config, pool: Any) -> None:
    admin = await user_token(config.database.url, "root", "admin")
    async with api_server(with_key(config)) as crm:
        api = crm.with_token(admin)
        await api.new_strategy()
        campaign = await api.new_campaign("keyed")
        await api.upload(campaign["id"], [{"phone1": PERSON}])
        await api.ok("POST", "/api/v1/persons/erase", {"phone": PERSON})
    for other in (None, "another-key-0123456789abcdef"):
        cfg = dataclasses.replace(api_config(config), privacy=PrivacyConfig(hash_key=other or ""))
        async with api_server(cfg) as crm:
            reply = await crm.post(
                f"/api/v1/campaigns/{campaign['id']}/contacts", {"contacts": [{"phone1": OTHER}]}
            )
            assert reply.status == 409, reply.body
            assert reply.body["error"]["code"] == "privacy_key"
            denied = await crm.with_token(admin).post("/api/v1/persons/erase", {"phone": OTHER})
            assert denied.status == 409


async def test_a_person_in_a_call_is_not_erased_and_nothing_changes(
    config: Config, pool: Any
) -> None:
    admin = await user_token(config.database.url, "root", "admin")
    async with api_server(with_key(config)) as crm:
        api = crm.with_token(admin)
        await api.new_strategy()
        campaign = await api.new_campaign("calling")
        await api.upload(campaign["id"], [{"external_id": "c1", "phone1": PERSON}])
        async with pool.acquire() as conn:
            contact_id = await conn.fetchval("SELECT id FROM contacts")
            await conn.execute(
                "INSERT INTO attempts (campaign_id, contact_id, channel, number) "
                "VALUES ($1, $2, 'call', $3)",
                campaign["id"],
                contact_id,
                PERSON,
            )
        busy = await api.post("/api/v1/persons/erase", {"external_id": "c1"})
        assert busy.status == 409 and busy.body["error"]["code"] == "call_in_progress"
        nobody = await api.ok("POST", "/api/v1/persons/erase", {"phone": "+12025558888"})
        assert nobody["contacts"] == 0
        assert (await api.post("/api/v1/persons/erase", {})).status == 422
        assert (await api.get("/api/v1/persons")).status == 422
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT phone1 FROM contacts") == PERSON
        # Nobody matched the other number: still, it is kept so that no import brings it.
        assert await conn.fetchval("SELECT count(*) FROM erased_numbers") == 1


def test_the_cli_finds_exports_and_erases(database_url: str, tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["DIALER_DATABASE_URL"] = database_url
    env["DIALER_PRIVACY_HASH_KEY"] = KEY
    cli = [sys.executable, "-m", "dialer_server"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)

    setup = subprocess.run(
        [
            "psql",
            database_url,
            "-c",
            "INSERT INTO campaigns (name) VALUES ('cli'); INSERT INTO contacts (campaign_id, "
            f"external_id, phone1, param1) SELECT id, 'x1', '{PERSON}', 'Ada' FROM campaigns",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert setup.returncode == 0, setup.stderr
    found = run("person", "find", "--phone", "2025550201")
    assert found.returncode == 0 and "x1" in found.stdout and PERSON in found.stdout
    out = tmp_path / "ada.json"
    exported = run("person", "export", "--external-id", "x1", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert json.loads(out.read_text())["contacts"][0]["param1"] == "Ada"
    erased = run("person", "erase", "--phone", PERSON, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "erased: 1 contacts" in erased.stdout
    assert "x1" not in run("person", "find", "--external-id", "x1").stdout
    shown = run("check-config")
    assert KEY not in shown.stdout


async def test_an_erased_person_leaves_the_flows_export_files_and_task_errors(
    config: Config, pool: Any
) -> None:
    admin = await user_token(config.database.url, "root", "admin")
    async with api_server(with_key(config)) as crm:
        api = crm.with_token(admin)
        await api.new_strategy()
        campaign = await api.new_campaign("exported")
        await api.upload(
            campaign["id"],
            [{"external_id": "p1", "phone1": PERSON}, {"external_id": "p2", "phone1": OTHER}],
        )
        async with pool.acquire() as conn:
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM contacts ORDER BY id")]
            # Both were in today's export file, written with their two rows; the person's
            # email task failed with the mail server's answer quoting them.
            for contact_id in ids:
                await conn.execute(
                    "INSERT INTO task_export_rows (idempotency_key, campaign_id, task, day, "
                    "contact_id, row) VALUES (gen_random_uuid(), $1, 'daily', current_date, "
                    "$2, jsonb_build_object('phone1', $3::text))",
                    campaign["id"],
                    contact_id,
                    PERSON if contact_id == ids[0] else OTHER,
                )
            await conn.execute(
                "INSERT INTO task_export_files (campaign_id, task, day, format, rows, "
                "written_rows, written_at) VALUES ($1, 'daily', current_date, 'csv', 2, 2, now())",
                campaign["id"],
            )
            await conn.execute(
                "INSERT INTO task_runs (campaign_id, contact_id, task, task_type, pass, try, "
                "idempotency_key, state, status, ended_at, error) VALUES ($1, $2, 'mail', "
                "'email', 1, 1, gen_random_uuid(), 'ended', 'failed', now(), "
                "'550 no such user ada@example.com')",
                campaign["id"],
                ids[0],
            )
            # Their email of tomorrow is due too.
            await conn.execute(
                "UPDATE contacts SET task = 'mail', task_due_at = now() + interval '1 day' "
                "WHERE id = $1",
                ids[0],
            )
        exported = await api.get("/api/v1/persons/export", params={"phone": PERSON})
        assert exported.status == 200
        held = json.loads(exported.raw)
        assert [r["row"] for r in held["export_rows"]] == [{"phone1": PERSON}]
        assert [r["error"] for r in held["task_runs"]] == ["550 no such user ada@example.com"]
        erased = await api.ok("POST", "/api/v1/persons/erase", {"phone": PERSON})
        assert erased["contacts"] == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT task_due_at FROM contacts WHERE id = $1", ids[0]) is None
        rows = await conn.fetch("SELECT contact_id, row::text FROM task_export_rows")
        assert [r["contact_id"] for r in rows] == [ids[1]] and PERSON not in rows[0]["row"]
        file = await conn.fetchrow("SELECT rows, written_rows FROM task_export_files")
        # One row left, and the file (which holds two) is behind it: written again.
        assert file["rows"] == 1 and file["written_rows"] < file["rows"], file
        run = await conn.fetchrow("SELECT status, error FROM task_runs")
        assert run["status"] == "failed" and run["error"] is None
