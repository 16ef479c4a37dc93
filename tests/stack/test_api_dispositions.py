"""The status dictionary and dispositions over real HTTP against a real database.

Calls are made as the engine makes them (the attempt row, the contact
dialling, the answered mark) and ended through ``results.record_call``, the
path every call result takes; everything else goes through the API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialer_server.config import Config, WebhooksConfig
from dialer_server.engine import results, store
from dialer_server.telephony.originate import CallResult
from dialer_server.telephony.outcomes import Outcome
from dialer_server.webhooks import record_events

from ..support.api_client import READ_TOKEN, Api, api_config, api_server
from ..support.sql import sql

pytestmark = pytest.mark.stack

DEFAULTS = [
    ("interested", "success"),
    ("not_interested", "declined"),
    ("call_back", "personal_callback"),
    ("call_later", "follow_up_auto"),
    ("call_again", "call_again"),
    ("do_not_call", "do_not_call"),
    ("wrong_person", "failed"),
]


@pytest.fixture
async def api(config: Config) -> AsyncIterator[Api]:
    async with api_server(api_config(config)) as client:
        await client.new_strategy()
        yield client


async def campaign_with_contacts(api: Api, name: str, count: int) -> tuple[int, list[int]]:
    campaign = await api.new_campaign(name)
    rows = [{"external_id": f"{name}-{i}", "phone1": f"+1202555{i:04d}"} for i in range(count)]
    await api.upload(campaign["id"], rows)
    page = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts")
    return campaign["id"], [c["id"] for c in page["items"]]


async def dial(pool: Any, contact_id: int, *, channel: str = "call") -> str:
    """What the engine does when it dials a contact: the attempt row, then 'dialling'."""
    async with pool.acquire() as conn:
        contact = await store.get_contact(conn, contact_id)
        assert contact is not None
        attempt_id = await conn.fetchval(
            sql("insert_engine_attempt"),
            contact["campaign_id"],
            contact_id,
            channel,
            1,
            contact["phone1"],
            0,
            None,
            "default" if channel == "call" else None,
        )
        await conn.execute(sql("mark_contact_dialling"), contact_id)
    return str(attempt_id)


async def end_call(pool: Any, attempt_id: str, outcome: Outcome = Outcome.ANSWERED) -> None:
    now = datetime.now(UTC)
    answered_at = now if outcome is Outcome.ANSWERED else None
    result = CallResult(
        attempt_id,
        outcome,
        "Success" if answered_at else "Failure",
        None,
        16,
        "x",
        answered_at,
        now,
    )
    async with pool.acquire() as conn:
        assert await results.record_call(conn, result, results.StrategyLookup()) is not None


async def answered_call(pool: Any, contact_id: int, *, ended: bool = True) -> str:
    attempt_id = await dial(pool, contact_id)
    async with pool.acquire() as conn:
        await store.mark_attempt_sent(conn, attempt_id)
        await store.mark_attempt_answered(conn, attempt_id)
    if ended:
        await end_call(pool, attempt_id)
    return attempt_id


async def contact(api: Api, contact_id: int) -> Any:
    return await api.ok("GET", f"/api/v1/contacts/{contact_id}")


def error(reply: Any) -> tuple[int, str, Any]:
    assert set(reply.body) == {"error"}, reply.body
    return reply.status, reply.body["error"]["code"], reply.body["error"]["details"]


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the dictionary ---------------------------------------------------------------------


async def test_the_default_global_dictionary_is_copied_into_every_new_campaign(api: Api) -> None:
    global_ = await api.ok("GET", "/api/v1/dispositions")
    assert [(e["name"], e["action"]) for e in global_["items"]] == DEFAULTS
    assert all(e["auto_add"] and e["active"] and e["campaign_id"] is None for e in global_["items"])
    wrong = await api.ok("GET", "/api/v1/dispositions/wrong_person")
    assert wrong["status_detail"] == "$invalid_contact"
    assert (await api.ok("GET", "/api/v1/dispositions/call_again"))["delay_s"] == 3600

    campaign = await api.new_campaign("first")
    own = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/dispositions")
    assert [(e["name"], e["action"]) for e in own["items"]] == DEFAULTS
    assert {e["campaign_id"] for e in own["items"]} == {campaign["id"]}
    assert not any(e["auto_add"] for e in own["items"])
    # The copies are the campaign's own: changing the global entry leaves them.
    await api.ok("PATCH", "/api/v1/dispositions/interested", {"label": "Very interested"})
    copy = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/dispositions/interested")
    assert copy["label"] == "Interested"


async def test_global_entries_are_created_changed_filtered_and_deleted(api: Api) -> None:
    before = await api.new_campaign("before")
    sold = await api.ok(
        "POST",
        "/api/v1/dispositions",
        {"name": "sold", "label": "Sold", "action": "success", "auto_add": True},
        status=201,
    )
    assert sold["campaign_id"] is None and sold["status_detail"] is None
    status, code, _ = error(
        await api.post("/api/v1/dispositions", {"name": "sold", "action": "failed"})
    )
    assert (status, code) == (409, "name_taken")
    hidden = await api.ok(
        "POST",
        "/api/v1/dispositions",
        {"name": "busy_agent", "action": "call_again", "delay_s": 120, "hidden": True},
        status=201,
    )
    assert hidden["label"] == "busy_agent" and hidden["delay_s"] == 120
    visible = await api.ok("GET", "/api/v1/dispositions", params={"hidden": "false"})
    assert "busy_agent" not in [e["name"] for e in visible["items"]]
    only_hidden = await api.ok("GET", "/api/v1/dispositions", params={"hidden": "true"})
    assert [e["name"] for e in only_hidden["items"]] == ["busy_agent"]

    after = await api.new_campaign("after")
    names_before = await api.ok("GET", f"/api/v1/campaigns/{before['id']}/dispositions")
    names_after = await api.ok("GET", f"/api/v1/campaigns/{after['id']}/dispositions")
    assert "sold" not in [e["name"] for e in names_before["items"]]
    assert "sold" in [e["name"] for e in names_after["items"]]
    # Not auto_add: a campaign gets it only when asked.
    assert "busy_agent" not in [e["name"] for e in names_after["items"]]

    changed = await api.ok("PATCH", "/api/v1/dispositions/sold", {"active": False, "label": "S"})
    assert (changed["active"], changed["label"]) == (False, "S")
    inactive = await api.ok("GET", "/api/v1/dispositions", params={"active": "false"})
    assert [e["name"] for e in inactive["items"]] == ["sold"]
    # An inactive global entry is not copied into new campaigns.
    third = await api.new_campaign("third")
    names_third = await api.ok("GET", f"/api/v1/campaigns/{third['id']}/dispositions")
    assert "sold" not in [e["name"] for e in names_third["items"]]

    # A new action drops what only fitted the old one.
    moved = await api.ok("PATCH", "/api/v1/dispositions/busy_agent", {"action": "declined"})
    assert (moved["action"], moved["delay_s"]) == ("declined", 0)
    await api.ok("DELETE", "/api/v1/dispositions/sold", status=204)
    assert (await api.get("/api/v1/dispositions/sold")).status == 404
    assert (await api.delete("/api/v1/dispositions/sold")).status == 404


async def test_a_campaign_adds_global_entries_and_its_own(api: Api) -> None:
    await api.ok(
        "POST",
        "/api/v1/dispositions",
        {"name": "price", "label": "Too expensive", "action": "declined", "status_detail": "price"},
        status=201,
    )
    campaign = await api.new_campaign("own")
    base = f"/api/v1/campaigns/{campaign['id']}/dispositions"
    copied = await api.ok("POST", base, {"from_global": "price", "label": "Zu teuer"}, status=201)
    assert (copied["label"], copied["action"], copied["status_detail"]) == (
        "Zu teuer",
        "declined",
        "price",
    )
    assert copied["campaign_id"] == campaign["id"]
    own = await api.ok(
        "POST",
        base,
        {"name": "demo_booked", "label": "Demo booked", "action": "success"},
        status=201,
    )
    assert own["campaign_id"] == campaign["id"]
    # Campaign-only: the global dictionary does not get it.
    assert (await api.get("/api/v1/dispositions/demo_booked")).status == 404
    renamed = await api.ok("PATCH", f"{base}/demo_booked", {"name": "demo"})
    assert renamed["name"] == "demo"
    status, code, _ = error(await api.patch(f"{base}/demo", {"name": "price"}))
    assert (status, code) == (409, "name_taken")
    await api.ok("DELETE", f"{base}/demo", status=204)
    status, code, details = error(await api.post(base, {"from_global": "nothing"}))
    assert (status, code, details[0]["field"]) == (422, "validation_failed", "from_global")
    assert (await api.get("/api/v1/campaigns/999999/dispositions")).status == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/dispositions", {"name": "Bad Name", "action": "success"}, "name"),
        ("/api/v1/dispositions", {"name": "x", "action": "sell"}, "action"),
        ("/api/v1/dispositions", {"name": "x"}, "action"),
        ("/api/v1/dispositions", {"name": "x", "action": "success", "delay_s": 5}, "delay_s"),
        (
            "/api/v1/dispositions",
            {"name": "x", "action": "follow_up_auto", "status_detail": "later"},
            "status_detail",
        ),
        (
            "/api/v1/dispositions",
            {"name": "x", "action": "failed", "status_detail": "$invented"},
            "status_detail",
        ),
        (
            "/api/v1/dispositions",
            {"name": "x", "action": "success", "from_global": "y"},
            "from_global",
        ),
        ("CAMPAIGN", {"name": "x", "action": "success", "auto_add": True}, "auto_add"),
        ("CAMPAIGN", {"label": "no name"}, ""),
    ],
)
async def test_invalid_entries_get_422_naming_the_field(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    if path == "CAMPAIGN":
        campaign = await api.new_campaign("bad")
        path = f"/api/v1/campaigns/{campaign['id']}/dispositions"
    status, code, details = error(await api.post(path, body))
    assert (status, code) == (422, "validation_failed")
    assert details[0]["field"] == field, details


async def test_a_read_token_reads_the_dictionary_but_changes_nothing(api: Api) -> None:
    reader = api.with_token(READ_TOKEN)
    assert (await reader.get("/api/v1/dispositions")).status == 200
    assert (
        await reader.post("/api/v1/dispositions", {"name": "x", "action": "success"})
    ).status == 403
    assert (await reader.delete("/api/v1/dispositions/interested")).status == 403
    unknown = "/api/v1/attempts/8954935b-4c9b-4149-8ad1-c3b6b7e6e950/disposition"
    assert (await reader.post(unknown, {"status": "interested"})).status == 403


# --- dispositions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("interested", ("connected", "success", "interested")),
        ("not_interested", ("connected", "declined", "not_interested")),
        ("wrong_person", ("connected", "failed", "$invalid_contact")),
        ("do_not_call", ("dnc_listed", "failed", "$do_not_call")),
    ],
)
async def test_a_final_disposition_closes_the_contact_in_the_domain_s_terms(
    api: Api, pool: Any, status: str, expected: tuple[str, str, str]
) -> None:
    campaign_id, (contact_id,) = await campaign_with_contacts(api, "final", 1)
    attempt_id = await answered_call(pool, contact_id)
    closed = await contact(api, contact_id)
    # The strategy's rule for an answered call closed it before the agent decided.
    assert (closed["state"], closed["status"]) == ("connected", "success")
    reply = await api.ok(
        "POST",
        f"/api/v1/attempts/{attempt_id}/disposition",
        {"status": status, "agent": "agent02", "note": "spoke to her"},
        status=201,
    )
    got = reply["contact"]
    assert (got["state"], got["status"], got["status_detail"]) == expected
    assert got["closed_at"] == closed["closed_at"] and got["next_attempt_at"] is None
    disposition = reply["disposition"]
    assert disposition["name"] == status and disposition["agent"] == "agent02"
    assert disposition["note"] == "spoke to her" and disposition["applied_at"] is not None
    assert await api.ok("GET", f"/api/v1/attempts/{attempt_id}/disposition") == disposition
    attempts = await api.ok("GET", f"/api/v1/contacts/{contact_id}/attempts")
    assert [a["disposition"] for a in attempts["items"]] == [status]
    number = got["phone1"]
    dnc = await api.ok("GET", f"/api/v1/campaigns/{campaign_id}/dnc/{number.replace('+', '%2B')}")
    assert dnc["listed"] == (status == "do_not_call")


async def test_a_personal_callback_reopens_the_contact_for_its_agent_at_the_time(
    api: Api, pool: Any
) -> None:
    campaign_id, (contact_id,) = await campaign_with_contacts(api, "cb", 1)
    attempt_id = await answered_call(pool, contact_id)
    async with pool.acquire() as conn:
        # The engine found every contact closed meanwhile.
        await conn.execute("UPDATE campaigns SET state = 'completed' WHERE id = $1", campaign_id)
    at = later(hours=20)
    reply = await api.ok(
        "POST",
        f"/api/v1/attempts/{attempt_id}/disposition",
        {"status": "call_back", "agent": "agent07", "callback_at": at},
        status=201,
    )
    got = reply["contact"]
    assert (got["state"], got["status"], got["status_detail"]) == (
        "pending",
        "open",
        "$follow_up_personal",
    )
    assert got["callback_agent"] == "agent07" and got["closed_at"] is None
    assert parse(got["next_attempt_at"]) == parse(at)
    assert (got["next_step"], got["next_channel"], got["next_phone_slot"]) == (0, "call", 1)
    assert parse(reply["disposition"]["callback_at"]) == parse(at)
    # A callback in a completed campaign runs it again.
    assert (await api.ok("GET", f"/api/v1/campaigns/{campaign_id}"))["state"] == "running"
    # Rescheduling by hand takes the contact from its owner.
    rescheduled = await api.ok("POST", f"/api/v1/contacts/{contact_id}/reschedule")
    assert rescheduled["callback_agent"] is None and rescheduled["status_detail"] == "$none"


async def test_call_later_and_call_again_plan_the_next_call(api: Api, pool: Any) -> None:
    _, (first, second) = await campaign_with_contacts(api, "plans", 2)
    at = later(minutes=90)
    attempt_id = await answered_call(pool, first)
    reply = await api.ok(
        "POST",
        f"/api/v1/attempts/{attempt_id}/disposition",
        {"status": "call_later", "callback_at": at},
        status=201,
    )
    got = reply["contact"]
    assert (got["status"], got["status_detail"], got["callback_agent"]) == (
        "open",
        "$follow_up_auto",
        None,
    )
    assert parse(got["next_attempt_at"]) == parse(at)

    attempt_id = await answered_call(pool, second)
    before = datetime.now(UTC)
    reply = await api.ok(
        "POST", f"/api/v1/attempts/{attempt_id}/disposition", {"status": "call_again"}, status=201
    )
    got = reply["contact"]
    assert (got["state"], got["status"], got["status_detail"]) == ("pending", "open", "$none")
    due = parse(got["next_attempt_at"])
    assert before + timedelta(seconds=3600) <= due <= datetime.now(UTC) + timedelta(seconds=3600)
    assert (got["next_step"], got["next_phone_slot"]) == (0, 1)


async def test_requests_that_do_not_fit_get_422(api: Api, pool: Any) -> None:
    _, (contact_id,) = await campaign_with_contacts(api, "checks", 1)
    attempt_id = await answered_call(pool, contact_id)
    path = f"/api/v1/attempts/{attempt_id}/disposition"
    for body, field in (
        ({"status": "sold"}, "status"),
        ({"status": "call_back", "agent": "agent01"}, "callback_at"),
        ({"status": "call_back", "callback_at": later(hours=1)}, "agent"),
        (
            {"status": "call_back", "agent": "agent01", "callback_at": later(hours=-1)},
            "callback_at",
        ),
        ({"status": "call_later", "callback_at": "tomorrow"}, "callback_at"),
        ({"status": "call_later", "callback_at": "2030-01-01T10:00:00"}, "callback_at"),
        ({"status": "interested", "callback_at": later(hours=1)}, "callback_at"),
        ({"status": "interested", "agent": "PJSIP/agent01"}, "agent"),
        ({"status": "interested", "extra": 1}, "extra"),
        ({}, "status"),
    ):
        status, code, details = error(await api.post(path, body))
        assert (status, code, details[0]["field"]) == (422, "validation_failed", field), body
    # Nothing was stored by any of them.
    assert (await api.get(path)).status == 404
    assert (await contact(api, contact_id))["status"] == "success"


async def test_a_disposition_is_refused_with_409_where_the_call_does_not_allow_it(
    api: Api, pool: Any
) -> None:
    _, (a, b, c, d) = await campaign_with_contacts(api, "refusals", 4)
    # No answered call: busy.
    busy = await dial(pool, a)
    await end_call(pool, busy, Outcome.BUSY)
    status, code, _ = error(
        await api.post(f"/api/v1/attempts/{busy}/disposition", {"status": "interested"})
    )
    assert (status, code) == (409, "not_answered")
    # A call still ringing.
    ringing = await dial(pool, b)
    status, code, _ = error(
        await api.post(f"/api/v1/attempts/{ringing}/disposition", {"status": "interested"})
    )
    assert (status, code) == (409, "not_answered")
    # One disposition per attempt.
    answered = await answered_call(pool, c)
    path = f"/api/v1/attempts/{answered}/disposition"
    await api.ok("POST", path, {"status": "call_again"}, status=201)
    status, code, _ = error(await api.post(path, {"status": "interested"}))
    assert (status, code) == (409, "disposition_exists")
    # The contact was dialled again since: the old call no longer decides.
    old = await answered_call(pool, d)
    async with pool.acquire() as conn:
        await conn.execute(sql("reschedule_contact"), d, datetime.now(UTC), None, None, None)
    await answered_call(pool, d)
    status, code, _ = error(
        await api.post(f"/api/v1/attempts/{old}/disposition", {"status": "interested"})
    )
    assert (status, code) == (409, "not_latest_attempt")
    # Unknown attempts.
    for attempt in ("8954935b-4c9b-4149-8ad1-c3b6b7e6e950", "not-a-uuid"):
        assert (
            await api.post(f"/api/v1/attempts/{attempt}/disposition", {"status": "x"})
        ).status == 404
        assert (await api.get(f"/api/v1/attempts/{attempt}/disposition")).status == 404


async def test_a_cancelled_contact_takes_no_disposition(api: Api, pool: Any) -> None:
    _, (contact_id,) = await campaign_with_contacts(api, "cancel", 1)
    attempt_id = await answered_call(pool, contact_id, ended=False)
    await api.ok("POST", f"/api/v1/contacts/{contact_id}/cancel")
    await end_call(pool, attempt_id)
    status, code, _ = error(
        await api.post(f"/api/v1/attempts/{attempt_id}/disposition", {"status": "interested"})
    )
    assert (status, code) == (409, "contact_cancelled")


async def test_set_while_the_call_is_up_it_decides_when_the_call_ends(api: Api, pool: Any) -> None:
    _, (contact_id,) = await campaign_with_contacts(api, "live", 1)
    attempt_id = await answered_call(pool, contact_id, ended=False)
    at = later(days=2)
    reply = await api.ok(
        "POST",
        f"/api/v1/attempts/{attempt_id}/disposition",
        {"status": "call_back", "agent": "agent11", "callback_at": at},
        status=201,
    )
    assert reply["disposition"]["applied_at"] is None
    assert reply["contact"]["state"] == "sent_to_dialer"
    await end_call(pool, attempt_id)
    got = await contact(api, contact_id)
    # Not the strategy's connected/success for an answered call: the agent's callback.
    assert (got["state"], got["status_detail"], got["callback_agent"]) == (
        "pending",
        "$follow_up_personal",
        "agent11",
    )
    assert parse(got["next_attempt_at"]) == parse(at)
    applied = await api.ok("GET", f"/api/v1/attempts/{attempt_id}/disposition")
    assert applied["applied_at"] is not None


async def test_a_used_entry_is_deactivated_not_deleted_and_its_history_stays(
    api: Api, pool: Any
) -> None:
    campaign_id, (first, second) = await campaign_with_contacts(api, "history", 2)
    base = f"/api/v1/campaigns/{campaign_id}/dispositions"
    attempt_id = await answered_call(pool, first)
    await api.ok(
        "POST",
        f"/api/v1/attempts/{attempt_id}/disposition",
        {"status": "not_interested"},
        status=201,
    )
    status, code, _ = error(await api.delete(f"{base}/not_interested"))
    assert (status, code) == (409, "status_in_use")
    await api.ok("PATCH", f"{base}/not_interested", {"active": False, "name": "no_thanks"})
    other = await answered_call(pool, second)
    status, code, details = error(
        await api.post(f"/api/v1/attempts/{other}/disposition", {"status": "no_thanks"})
    )
    assert (status, code, details) == (
        422,
        "validation_failed",
        [{"field": "status", "message": "inactive"}],
    )
    # The first call keeps the name it was given, and its contact its status.
    kept = await api.ok("GET", f"/api/v1/attempts/{attempt_id}/disposition")
    assert (kept["name"], kept["action"]) == ("not_interested", "declined")
    assert (await contact(api, first))["status_detail"] == "not_interested"
    # An unused entry goes.
    await api.ok("DELETE", f"{base}/interested", status=204)


async def test_dispositions_are_webhook_events_and_a_new_final_status_is_sent_again(
    api: Api, pool: Any
) -> None:
    await record_events(pool, WebhooksConfig(url="http://127.0.0.1:9/unused", secret="s" * 32))
    _, (closing, reopening) = await campaign_with_contacts(api, "hooks", 2)
    attempt_id = await answered_call(pool, closing)
    await api.ok(
        "POST",
        f"/api/v1/attempts/{attempt_id}/disposition",
        {"status": "not_interested", "agent": "agent03"},
        status=201,
    )
    callback = await answered_call(pool, reopening)
    at = later(hours=5)
    await api.ok(
        "POST",
        f"/api/v1/attempts/{callback}/disposition",
        {"status": "call_later", "callback_at": at},
        status=201,
    )
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload::text AS body FROM webhook_outbox ORDER BY seq")
    sent = [json.loads(r["body"]) for r in rows]
    summary = [
        (e["type"], e["contact"]["id"], e["contact"]["status"], e["contact"]["status_detail"])
        for e in sent
    ]
    assert summary == [
        ("contact.final_state", closing, "success", "$none"),
        ("contact.final_state", closing, "declined", "not_interested"),
        ("attempt.disposition", closing, "declined", "not_interested"),
        ("contact.final_state", reopening, "success", "$none"),
        ("attempt.disposition", reopening, "open", "$follow_up_auto"),
    ]
    event = sent[2]
    assert event["disposition"]["name"] == "not_interested"
    assert event["disposition"]["label"] == "Not interested"
    assert event["disposition"]["action"] == "declined"
    assert event["disposition"]["agent"] == "agent03"
    assert event["attempt"]["id"] == attempt_id and event["attempt"]["outcome"] == "answered"
    assert event["contact"]["state"] == "connected"
    reopened = sent[4]
    assert parse(reopened["contact"]["next_attempt_at"]) == parse(at)
    assert parse(reopened["disposition"]["callback_at"]) == parse(at)


async def test_a_campaign_with_dispositions_can_be_deleted(api: Api, pool: Any) -> None:
    campaign_id, (contact_id,) = await campaign_with_contacts(api, "gone", 1)
    attempt_id = await answered_call(pool, contact_id)
    path = f"/api/v1/attempts/{attempt_id}/disposition"
    await api.ok("POST", path, {"status": "interested"}, status=201)
    await api.ok("DELETE", f"/api/v1/campaigns/{campaign_id}", status=204)
    assert (await api.get(path)).status == 404
    assert (await api.get(f"/api/v1/campaigns/{campaign_id}/dispositions")).status == 404
    # The global dictionary is not the campaign's.
    assert (await api.get("/api/v1/dispositions/interested")).status == 200
