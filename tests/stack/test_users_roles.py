"""Users, roles and the audit log over the real API and database.

Every operation names its roles: an agent user gets 403 on every route that is
not theirs, a read-only user (or a config token of scope read) on every write;
config tokens keep working as integration users. The first admin comes from the
CLI. Every write is in the audit log with who, when, what, before and after.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from dialer_server.accounts import users
from dialer_server.api.app import OPERATIONS
from dialer_server.config import ApiConfig, Config

from ..support.api_client import READ_TOKEN, TOKENS, WRITE_TOKEN, Api, api_server

pytestmark = pytest.mark.stack

PASSWORDS = {
    "admin": "admin-password-0001",
    "sam": "supervisor-pw-0001",
    "alice": "agent-password-0001",
    "ivan": "integration-pw-0001",
    "rita": "read-only-pw-00001",
}
ROLES = {
    "admin": "admin",
    "sam": "supervisor",
    "alice": "agent",
    "ivan": "integration",
    "rita": "read_only",
}
ATTEMPT = "3c1e0f9a-7b7d-4a57-9d0e-6f4f5d0d2a10"


def concrete(path: str) -> str:
    """A request path for a documented one: ids 1, an attempt's uuid, a day, names 1."""
    path = path.replace("{attempt_id}", ATTEMPT).replace("{day}", "2026-01-01")
    return re.sub(r"\{\w+\}", "1", path)


@pytest.fixture
async def api(config: Config, database_url: str) -> AsyncIterator[Api]:
    conn = await asyncpg.connect(database_url)
    try:
        for username, role in ROLES.items():
            await users.create_user(
                conn,
                {
                    "username": username,
                    "role": role,
                    "password": PASSWORDS[username],
                    "agent": "agent21" if role == "agent" else None,
                },
            )
    finally:
        await conn.close()
    async with api_server(dataclasses.replace(config, api=ApiConfig(tokens=TOKENS))) as client:
        yield client


async def session(api: Api, username: str) -> Api:
    reply = await api.with_token(None).post(
        "/api/v1/session", {"username": username, "password": PASSWORDS[username]}
    )
    assert reply.status == 201, reply.body
    return api.with_token(reply.body["token"])


def test_the_cli_creates_the_first_admin(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["DIALER_DATABASE_URL"] = database_url
    run = [sys.executable, "-m", "dialer_server", "user"]
    made = subprocess.run(
        [*run, "add", "root", "--role", "admin", "--password-stdin"],
        input="a-good-long-password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert "root (admin) created" in made.stdout
    again = subprocess.run(
        [*run, "add", "root", "--role", "admin", "--password-stdin"],
        input="a-good-long-password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert again.stderr.startswith("dialer-server: error: a user named 'root' exists")
    weak = subprocess.run(
        [*run, "add", "bob", "--role", "admin", "--password-stdin"],
        input="short\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr
    listed = subprocess.run([*run, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert re.search(r"1\s+root\s+admin\s+-\s+yes", listed.stdout), listed.stdout


async def test_an_agent_user_gets_403_on_every_route_that_is_not_an_agents(api: Api) -> None:
    agent = await session(api, "alice")
    checked = 0
    for op in OPERATIONS:
        if op.public or "agent" in op.allowed_roles:
            continue
        reply = await agent.request(op.method, concrete(op.path))
        assert reply.status == 403, (op.operation_id, reply.status, reply.body)
        assert reply.body["error"]["code"] == "forbidden"
        checked += 1
    assert checked > 50
    # ...and the desk is theirs.
    assert (await agent.get("/api/v1/me")).body["agent"] == "agent21"
    admin = await session(api, "admin")
    assert (await admin.get("/api/v1/desk")).status == 403


async def test_a_read_only_user_and_a_read_token_cannot_write_anywhere(api: Api) -> None:
    readers = [await session(api, "rita"), api.with_token(READ_TOKEN)]
    writes = [op for op in OPERATIONS if not op.public and op.method != "GET"]
    assert len(writes) > 40
    for reader in readers:
        for op in writes:
            if op.operation_id == "logout":
                continue
            reply = await reader.request(op.method, concrete(op.path), json_body={})
            assert reply.status == 403, (op.operation_id, reply.status, reply.body)
        # Reading works.
        assert (await reader.get("/api/v1/campaigns")).status == 200
        assert (await reader.get("/api/v1/supervisor")).status in (200, 403)
    assert (await readers[0].get("/api/v1/me")).body["role"] == "read_only"
    assert (await readers[1].get("/api/v1/me")).body == {
        "username": "dashboard",
        "role": "read_only",
        "user_id": None,
        "agent": None,
        "session": False,
    }


async def test_config_tokens_keep_working_as_integration_users(api: Api) -> None:
    crm = api.with_token(WRITE_TOKEN)
    assert (await crm.get("/api/v1/me")).body["role"] == "integration"
    await crm.new_strategy()
    campaign = await crm.new_campaign("crm-made")
    assert campaign["state"] == "stopped"
    assert (await crm.get("/api/v1/users")).status == 403
    assert (await crm.get("/api/v1/audit")).status == 403
    assert (await crm.get("/api/v1/desk")).status == 403
    # An integration user's own API token does the same.
    admin = await session(api, "admin")
    ivan = (await admin.get("/api/v1/users", params={"role": "integration"})).body["items"][0]
    made = await admin.ok("POST", f"/api/v1/users/{ivan['id']}/tokens", {"name": "crm"}, 201)
    own = api.with_token(made["token"])
    assert (await own.get("/api/v1/me")).body["username"] == "ivan"
    assert (await own.get("/api/v1/campaigns")).status == 200
    await admin.ok("DELETE", f"/api/v1/tokens/{made['id']}", status=204)
    assert (await own.get("/api/v1/campaigns")).status == 401


async def test_admins_manage_users_and_log_ins_end_with_the_password(api: Api) -> None:
    admin = await session(api, "admin")
    assert (
        await api.with_token(None).post(
            "/api/v1/session", {"username": "admin", "password": "wrong-password-1"}
        )
    ).status == 401
    assert (
        await api.with_token(None).post(
            "/api/v1/session", {"username": "nobody", "password": "wrong-password-1"}
        )
    ).status == 401
    made = await admin.ok(
        "POST",
        "/api/v1/users",
        {"username": "zoe", "role": "agent", "agent": "agent22", "password": "zoe-password-001"},
        201,
    )
    assert made["has_password"] and "password_hash" not in made
    clash = await admin.post(
        "/api/v1/users",
        {"username": "zed", "role": "agent", "agent": "agent22", "password": "zed-password-001"},
    )
    assert clash.status == 409 and clash.body["error"]["code"] == "agent_taken"
    bad = await admin.post("/api/v1/users", {"username": "yan", "role": "agent"})
    assert bad.status == 422
    PASSWORDS["zoe"] = "zoe-password-001"
    zoe = await session(api, "zoe")
    assert (await zoe.get("/api/v1/me")).status == 200
    await admin.ok("PATCH", f"/api/v1/users/{made['id']}", {"password": "zoe-password-002"})
    assert (await zoe.get("/api/v1/me")).status == 401  # her session ended
    me = (await admin.get("/api/v1/me")).body
    last = await admin.patch(f"/api/v1/users/{me['user_id']}", {"role": "supervisor"})
    assert last.status == 409 and last.body["error"]["code"] == "last_admin"
    await admin.ok("PATCH", f"/api/v1/users/{made['id']}", {"active": False})
    PASSWORDS["zoe"] = "zoe-password-002"
    assert (
        await api.with_token(None).post(
            "/api/v1/session", {"username": "zoe", "password": "zoe-password-002"}
        )
    ).status == 401
    await admin.ok("DELETE", "/api/v1/session", status=204)
    assert (await admin.get("/api/v1/me")).status == 401


async def test_the_audit_log_says_who_changed_what_before_and_after(api: Api) -> None:
    admin = await session(api, "admin")
    sam = await session(api, "sam")
    await admin.new_strategy()
    campaign = await admin.new_campaign("audited")
    await sam.ok("PATCH", f"/api/v1/campaigns/{campaign['id']}", {"max_concurrent_calls": 7})
    await sam.ok("POST", f"/api/v1/campaigns/{campaign['id']}/start")
    await sam.ok("POST", f"/api/v1/campaigns/{campaign['id']}/pause")
    await sam.ok("POST", f"/api/v1/campaigns/{campaign['id']}/pause")  # nothing to do
    await api.with_token(WRITE_TOKEN).upload(campaign["id"], [{"phone1": "+12025550101"}])
    log = await admin.ok(
        "GET",
        "/api/v1/audit",
        params={"target_type": "campaign", "target_id": str(campaign["id"])},
    )
    entries = [(e["action"], e["username"], e["role"], e["via"]) for e in log["items"]]
    assert entries == [
        ("uploadContacts", "crm", "integration", "api"),
        ("pauseCampaign", "sam", "supervisor", "desk"),
        ("startCampaign", "sam", "supervisor", "desk"),
        ("updateCampaign", "sam", "supervisor", "desk"),
        ("createCampaign", "admin", "admin", "desk"),
    ]
    update = log["items"][3]
    assert update["before"]["max_concurrent_calls"] == 10
    assert update["after"]["max_concurrent_calls"] == 7
    assert (log["items"][1]["before"], log["items"][1]["after"]) == (
        {"state": "running"},
        {"state": "paused"},
    )
    by_sam = await admin.ok("GET", "/api/v1/audit", params={"user": "sam", "limit": "2"})
    assert [e["action"] for e in by_sam["items"]] == ["pauseCampaign", "startCampaign"]
    older = await admin.ok(
        "GET", "/api/v1/audit", params={"user": "sam", "before": str(by_sam["next_before"])}
    )
    assert [e["action"] for e in older["items"]] == ["updateCampaign", "login"]
    assert (await admin.get("/api/v1/audit", params={"from": "yesterday"})).status == 422
    assert (await sam.get("/api/v1/audit")).status == 200


async def test_writes_to_contacts_lists_dictionaries_and_strategies_keep_before_and_after(
    api: Api,
) -> None:
    admin = await session(api, "admin")
    await admin.new_strategy()
    campaign = await admin.new_campaign("before-after")
    await admin.upload(campaign["id"], [{"external_id": "c1", "phone1": "+12025550101"}])
    contact = await admin.ok(
        "GET", f"/api/v1/campaigns/{campaign['id']}/contacts/by-external-id/c1"
    )
    await admin.ok("PATCH", f"/api/v1/contacts/{contact['id']}", {"param1": "gold"})
    await admin.ok("POST", f"/api/v1/contacts/{contact['id']}/cancel")
    await admin.ok("POST", f"/api/v1/contacts/{contact['id']}/cancel")  # nothing to do
    await admin.ok("POST", "/api/v1/dnc", {"numbers": ["+12025550199"], "reason": "asked"})
    await admin.ok("DELETE", "/api/v1/dnc/+12025550199")
    await admin.ok(
        "PATCH", f"/api/v1/campaigns/{campaign['id']}/dispositions/interested", {"label": "Yes!"}
    )

    def audit(target_type: str) -> Any:
        return admin.ok("GET", "/api/v1/audit", params={"target_type": target_type})

    contact_log = (await audit("contact"))["items"]
    assert [e["action"] for e in contact_log] == ["cancelContact", "updateContact"]
    cancel, update = contact_log
    assert (update["before"]["param1"], update["after"]["param1"]) == (None, "gold")
    assert (cancel["before"]["state"], cancel["after"]["state"]) == ("pending", "cancelled")
    dnc_log = (await audit("dnc"))["items"]
    assert [e["action"] for e in dnc_log] == ["removeGlobalDnc", "addGlobalDnc"]
    assert dnc_log[0]["before"] == {"number": "+12025550199"}
    assert dnc_log[1]["after"]["numbers"] == ["+12025550199"]
    (entry,) = (await audit("disposition_entry"))["items"]
    assert entry["before"]["label"] != "Yes!" and entry["after"]["label"] == "Yes!"
    (upload,) = (await audit("campaign"))["items"][:1]
    assert upload["action"] == "uploadContacts" and upload["after"]["inserted"] == 1
    strategies = (await audit("strategy"))["items"]
    assert strategies and strategies[-1]["after"]["name"] == "simple"
