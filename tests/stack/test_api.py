"""The HTTP API over real HTTP against a real database: every route, auth and errors."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from dialer_server.config import Config, PbxConfig
from dialer_server.engine import store

from ..support.api_client import READ_TOKEN, SIMPLE, Api, api_config, api_server

pytestmark = pytest.mark.stack

MODE_SETTINGS = ("mode", "amd", "ivr_playback", "machine_message", "webhook_attempts")
AGENT_SETTINGS = (
    "queue",
    "dial_ratio",
    "abandon_cap",
    "abandon_target",
    "max_dial_ratio",
    "abandon_message",
    "agent_wait_s",
)


@pytest.fixture
async def api(config: Config) -> AsyncIterator[Api]:
    async with api_server(api_config(config)) as client:
        yield client


def error_of(reply: Any) -> dict[str, Any]:
    """The error object of a reply, checked to have the documented shape."""
    assert set(reply.body) == {"error"}, reply.body
    error = reply.body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return dict(error)


# --- auth and errors --------------------------------------------------------------------


async def test_requests_without_a_token_get_401_except_the_probes_and_the_document(
    api: Api,
) -> None:
    anonymous = api.with_token(None)
    for path in ("/healthz", "/metrics", "/openapi.json"):
        assert (await anonymous.get(path)).status == 200, path
    assert (await anonymous.get("/readyz")).status in (200, 503)
    for method, path in (
        ("GET", "/api/v1/campaigns"),
        ("POST", "/api/v1/campaigns"),
        ("GET", "/api/v1/contacts/1"),
        ("DELETE", "/api/v1/dnc/+12025550123"),
        ("GET", "/api/v1/nothing-here"),
    ):
        reply = await anonymous.request(method, path)
        assert reply.status == 401, (method, path)
        assert error_of(reply)["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_unknown_token_or_another_scheme_gets_401(api: Api) -> None:
    reply = await api.with_token("not-a-configured-token-at-all").get("/api/v1/campaigns")
    assert reply.status == 401
    assert "not valid" in error_of(reply)["message"]
    reply = await api.with_token(None).get(
        "/api/v1/campaigns", headers={"Authorization": "Basic Y3JtOnNlY3JldA=="}
    )
    assert reply.status == 401


async def test_a_read_token_reads_but_gets_403_on_every_change(api: Api) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign()
    reader = api.with_token(READ_TOKEN)
    assert (await reader.get("/api/v1/campaigns")).status == 200
    assert (await reader.get(f"/api/v1/campaigns/{campaign['id']}")).status == 200
    for method, path, body in (
        ("POST", "/api/v1/campaigns", {"name": "x"}),
        ("POST", f"/api/v1/campaigns/{campaign['id']}/start", None),
        ("PATCH", f"/api/v1/campaigns/{campaign['id']}", {"max_concurrent_calls": 2}),
        ("DELETE", f"/api/v1/campaigns/{campaign['id']}", None),
        ("POST", "/api/v1/dnc", {"numbers": ["+12025550123"]}),
    ):
        reply = await reader.request(method, path, json_body=body)
        assert reply.status == 403, (method, path, reply.body)
        assert error_of(reply)["code"] == "forbidden"
    assert (await api.get(f"/api/v1/campaigns/{campaign['id']}")).body["state"] == "stopped"


async def test_every_error_is_json_with_code_message_and_details(api: Api) -> None:
    cases = [
        (await api.get("/api/v1/nothing-here"), 404, "not_found"),
        (await api.get("/api/v1/campaigns/12345"), 404, "not_found"),
        (await api.get("/api/v1/campaigns/99999999999999999999"), 404, "not_found"),
        (await api.get("/api/v1/campaigns/abc"), 404, "not_found"),
        (await api.request("PUT", "/api/v1/campaigns"), 405, "method_not_allowed"),
        (
            await api.post(
                "/api/v1/campaigns", data=b"{not json", headers={"Content-Type": "application/json"}
            ),
            400,
            "bad_request",
        ),
        (
            await api.post(
                "/api/v1/campaigns", data=b"name=x", headers={"Content-Type": "text/plain"}
            ),
            415,
            "unsupported_media_type",
        ),
        (await api.post("/api/v1/campaigns", {"name": "x", "colour": "red"}), 422, None),
        (await api.post("/api/v1/campaigns", ["a", "list"]), 422, "validation_failed"),
        (await api.get("/api/v1/campaigns", params={"limit": "0"}), 422, "validation_failed"),
        (await api.get("/api/v1/campaigns", params={"state": "sleeping"}), 422, None),
        (
            await api.post(
                "/api/v1/campaigns",
                data=io.BytesIO(b"{" + b" " * (1024 * 1024 + 1) + b"}"),
                headers={"Content-Type": "application/json"},
            ),
            413,
            "payload_too_large",
        ),
    ]
    for reply, status, code in cases:
        assert reply.status == status, (reply.status, reply.body)
        error = error_of(reply)
        if code is not None:
            assert error["code"] == code, error
    unknown = error_of(cases[7][0])
    assert unknown["details"] == [{"field": "colour", "message": unknown["details"][0]["message"]}]
    assert unknown["message"].startswith("colour: unknown field")
    assert "Allow" in cases[4][0].headers


async def test_a_bug_is_a_json_500_with_code_internal(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialer_server.campaigns import operations as campaigns

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(campaigns, "list_campaigns", broken)
    reply = await api.get("/api/v1/campaigns")
    assert reply.status == 500
    error = error_of(reply)
    assert error["code"] == "internal"
    assert "a bug" not in error["message"]  # internals stay in the log


async def test_changes_are_logged_with_what_changed(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dialer_server")
    await api.new_strategy()
    campaign = await api.new_campaign()
    await api.ok("POST", f"/api/v1/campaigns/{campaign['id']}/start")
    logged = {(r.getMessage(), getattr(r, "campaign_id", None)) for r in caplog.records}
    assert ("strategy stored", None) in logged
    assert ("campaign created", campaign["id"]) in logged
    assert ("campaign start: stopped -> running", campaign["id"]) in logged
    assert ("campaign start by token crm", campaign["id"]) in logged


# --- campaigns -------------------------------------------------------------------------


async def test_a_campaign_is_created_stopped_with_the_strategy_latest_version(api: Api) -> None:
    await api.new_strategy()
    await api.ok("PUT", "/api/v1/strategies/simple", {**SIMPLE, "version": 2}, status=201)
    campaign = await api.new_campaign(
        max_concurrent_calls=3,
        max_calls_per_second=2.5,
        trunk="carrier2",
        caller_id="Acme <15550001111>",
        default_region="GB",
        timezone="Europe/London",
    )
    assert campaign["state"] == "stopped"
    assert campaign["strategy"]["name"] == "simple"
    assert campaign["strategy"]["version"] == 2
    assert campaign["max_calls_per_second"] == 2.5
    assert campaign["default_region"] == "GB"
    assert campaign["calling_window"] is None  # the default hours
    windowed = await api.new_campaign(
        "windowed",
        calling_window={
            "hours": {"mon": ["09:00-12:00", "11:00-17:00"]},
            "timezone": "Europe/Paris",
        },
    )
    assert windowed["calling_window"] == {
        "hours": {"mon": ["09:00-17:00"]},
        "blackout_dates": [],
        "timezone": "Europe/Paris",
    }
    await api.ok("DELETE", f"/api/v1/campaigns/{windowed['id']}", status=204)
    pinned = await api.new_campaign("pinned", strategy_version=1)
    assert pinned["strategy"]["version"] == 1
    defaulted = await api.ok("POST", "/api/v1/campaigns", {"name": "plain"}, status=201)
    assert defaulted["strategy"]["name"] == "default"
    assert defaulted["trunk"] is None and defaulted["max_concurrent_calls"] == 10

    listed = await api.ok("GET", "/api/v1/campaigns")
    assert [c["name"] for c in listed["items"]] == ["spring", "pinned", "plain"]
    assert listed["next_after"] is None
    first = await api.get("/api/v1/campaigns", params={"limit": "2"})
    assert [c["name"] for c in first.body["items"]] == ["spring", "pinned"]
    rest = await api.get(
        "/api/v1/campaigns", params={"limit": "2", "after": str(first.body["next_after"])}
    )
    assert [c["name"] for c in rest.body["items"]] == ["plain"]
    running = await api.get("/api/v1/campaigns", params={"state": "running"})
    assert running.body["items"] == []


async def test_campaign_settings_are_checked_field_by_field(api: Api) -> None:
    await api.new_strategy()
    await api.new_campaign()
    cases = [
        ({"name": "spring", "strategy": "simple"}, 409, "name_taken", None),
        ({"name": "b", "strategy": "nope"}, 422, "validation_failed", "strategy"),
        ({"name": "b", "strategy": "simple", "strategy_version": 9}, 422, None, "strategy"),
        ({"name": "b", "timezone": "Mars/Olympus"}, 422, None, "timezone"),
        ({"name": "b", "default_region": "ZZ"}, 422, None, "default_region"),
        ({"name": "b", "trunk": "carrier&PJSIP/evil"}, 422, None, "trunk"),
        ({"name": "b", "caller_id": "x\r\nAction: Hangup"}, 422, None, "caller_id"),
        ({"name": "b", "max_concurrent_calls": 0}, 422, None, "max_concurrent_calls"),
        ({"name": "b", "max_concurrent_calls": 1.5}, 422, None, "max_concurrent_calls"),
        ({"name": "b", "max_calls_per_second": 0}, 422, None, "max_calls_per_second"),
        ({"name": "b", "calling_window": {"hours": {"mon": ["9-5"]}}}, 422, None, None),
        ({"name": "b", "calling_window": {"hours": {"mon": ["21:00-09:00"]}}}, 422, None, None),
        ({"name": "b", "calling_window": {"days": {}}}, 422, None, "calling_window.days"),
        ({"name": "  "}, 422, None, "name"),
        ({}, 422, None, "name"),
    ]
    for body, status, code, field in cases:
        reply = await api.post("/api/v1/campaigns", body)
        assert reply.status == status, (body, reply.body)
        error = error_of(reply)
        if code is not None:
            assert error["code"] == code
        if field is not None:
            assert field in [d["field"] for d in error["details"]], (body, error)
    listed = await api.ok("GET", "/api/v1/campaigns")
    assert [c["name"] for c in listed["items"]] == ["spring"]


async def test_campaign_counts_contacts_by_state_and_by_status_detail(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign()
    conn = await asyncpg.connect(database_url)
    try:
        ids = [
            await store.insert_contact(conn, campaign["id"], phones=[f"+1202555010{i}"])
            for i in range(4)
        ]
        await conn.execute(
            "UPDATE contacts SET state = 'connected', status = 'success', closed_at = now() "
            "WHERE id = $1",
            ids[0],
        )
        await conn.execute(
            "UPDATE contacts SET state = 'retries_completed', status = 'failed', "
            "status_detail = '$unavailable', closed_at = now() WHERE id = ANY($1)",
            ids[1:3],
        )
    finally:
        await conn.close()
    shown = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}")
    assert shown["contacts"] == {
        "total": 4,
        "by_state": {"connected": 1, "pending": 1, "retries_completed": 2},
        "by_status": {
            "failed": {"$unavailable": 2},
            "open": {"$none": 1},
            "success": {"$none": 1},
        },
        "open_attempts": 0,
    }


async def test_patch_changes_settings_and_the_strategy_only_before_any_dialling(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    await api.new_strategy({**SIMPLE, "name": "other"})
    campaign = await api.new_campaign()
    path = f"/api/v1/campaigns/{campaign['id']}"
    changed = await api.ok(
        "PATCH",
        path,
        {"max_concurrent_calls": 4, "trunk": None, "name": "summer", "strategy": "other"},
    )
    assert changed["max_concurrent_calls"] == 4 and changed["name"] == "summer"
    assert changed["strategy"]["name"] == "other"
    assert changed["max_calls_per_second"] == campaign["max_calls_per_second"]
    assert (await api.patch(path, {})).status == 422
    assert (await api.patch(path, {"state": "running"})).status == 422
    conn = await asyncpg.connect(database_url)
    try:
        contact_id = await store.insert_contact(conn, campaign["id"], phones=["+12025550100"])
        await store.insert_attempt(
            conn, campaign_id=campaign["id"], contact_id=contact_id, number="+1", phone_slot=1
        )
    finally:
        await conn.close()
    reply = await api.patch(path, {"strategy": "simple"})
    assert reply.status == 409 and error_of(reply)["code"] == "strategy_locked"
    # The same strategy again is no change, and other settings still apply.
    again = await api.ok("PATCH", path, {"strategy": "other", "max_calls_per_second": 1})
    assert again["max_calls_per_second"] == 1


async def test_mode_amd_sounds_and_attempt_webhooks_are_set_read_and_patched(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    plain = await api.new_campaign("plain")
    assert (
        plain["mode"],
        plain["amd"],
        plain["ivr_playback"],
        plain["machine_message"],
        plain["webhook_attempts"],
    ) == ("automated", False, None, None, False)
    survey = await api.new_campaign(
        "survey",
        mode="ivr",
        amd=True,
        ivr_playback="custom/survey&digits/1",
        machine_message="custom/call-us-back",
        webhook_attempts=True,
    )
    path = f"/api/v1/campaigns/{survey['id']}"
    shown = await api.ok("GET", path)
    assert {key: shown[key] for key in MODE_SETTINGS} == {
        "mode": "ivr",
        "amd": True,
        "ivr_playback": "custom/survey&digits/1",
        "machine_message": "custom/call-us-back",
        "webhook_attempts": True,
    }
    listed = await api.ok("GET", "/api/v1/campaigns")
    assert [c["mode"] for c in listed["items"]] == ["automated", "ivr"]
    changed = await api.ok(
        "PATCH", path, {"mode": "automated", "ivr_playback": None, "webhook_attempts": False}
    )
    # What the PATCH leaves out stays as it was.
    assert {key: changed[key] for key in MODE_SETTINGS} == {
        "mode": "automated",
        "amd": True,
        "ivr_playback": None,
        "machine_message": "custom/call-us-back",
        "webhook_attempts": False,
    }
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchrow(
            "SELECT mode, amd, ivr_playback, machine_message, webhook_attempts "
            "FROM campaigns WHERE id = $1",
            survey["id"],
        )
    finally:
        await conn.close()
    assert dict(stored) == {key: changed[key] for key in MODE_SETTINGS}


async def test_a_sound_name_the_database_would_refuse_is_422_naming_the_field(
    api: Api,
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign(ivr_playback="custom/offer")
    path = f"/api/v1/campaigns/{campaign['id']}"
    # Each of these breaks the CHECK of the sound columns: a comma or a space would
    # split the dialplan argument; "\n" passes Python's $ but not PostgreSQL's.
    bad = ["custom/offer,x", "custom offer", "", "custom/offer\n", "ofr\u00e9", "a" * 256, 7]
    for field in ("ivr_playback", "machine_message"):
        for value in bad:
            for reply in (
                await api.post("/api/v1/campaigns", {"name": "b", field: value}),
                await api.patch(path, {field: value}),
            ):
                assert reply.status == 422, (field, value, reply.status, reply.body)
                assert [d["field"] for d in error_of(reply)["details"]] == [field]
    assert (await api.ok("PATCH", path, {"machine_message": "a" * 255}))["machine_message"]
    for flag in ("amd", "webhook_attempts"):
        reply = await api.patch(path, {flag: "yes"})
        assert reply.status == 422 and error_of(reply)["details"][0]["field"] == flag
    shown = await api.ok("GET", path)
    assert shown["ivr_playback"] == "custom/offer" and shown["amd"] is False
    listed = await api.ok("GET", "/api/v1/campaigns")
    assert [c["name"] for c in listed["items"]] == ["spring"]


SOUND_SETTINGS = ("ivr_playback", "machine_message", "abandon_message")
# What Asterisk would read outside its sounds folder, or as no name at all.
NOT_SOUND_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "custom/../../../etc/passwd",
    "custom/..",
    "..",
    "custom/offer&/etc/passwd",
    "custom/offer&../secret",
    "custom/./offer",
    ".hidden",
    "custom//offer",
    "custom/offer/",
    "custom/offer&",
    "a..b",
]


async def test_a_sound_name_is_a_name_never_a_path_out_of_the_sounds_folder(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign()
    path = f"/api/v1/campaigns/{campaign['id']}"
    for field in SOUND_SETTINGS:
        for value in NOT_SOUND_NAMES:
            for reply in (
                await api.post("/api/v1/campaigns", {"name": "b", field: value}),
                await api.patch(path, {field: value}),
            ):
                assert reply.status == 422, (field, value, reply.status, reply.body)
                assert [d["field"] for d in error_of(reply)["details"]] == [field]
        for good in ("custom/survey&digits/1", "tt-monkeys", "en/custom/offer.v2", "a" * 255):
            assert (await api.ok("PATCH", path, {field: good}))[field] == good
    # The database refuses them too, whoever writes (the CHECK of each column).
    conn = await asyncpg.connect(database_url)
    try:
        for field in SOUND_SETTINGS:
            for value in NOT_SOUND_NAMES:
                with pytest.raises(asyncpg.CheckViolationError):
                    await conn.execute(
                        f"UPDATE campaigns SET {field} = $1 WHERE id = $2", value, campaign["id"]
                    )
    finally:
        await conn.close()
    assert (await api.get("/api/v1/campaigns")).body["items"][0]["name"] == "spring"


async def test_agent_modes_and_their_settings_are_set_read_checked_and_patched(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    plain = await api.new_campaign("plain")
    assert {key: plain[key] for key in AGENT_SETTINGS} == {
        "queue": "dialer-agents",
        "dial_ratio": 1.5,
        "abandon_cap": 0.03,
        "abandon_target": 0.02,
        "max_dial_ratio": 3.0,
        "abandon_message": None,
        "agent_wait_s": 2.0,
    }
    for mode in ("progressive", "power", "predictive"):
        created = await api.new_campaign(mode, mode=mode)
        assert created["mode"] == mode
    power = await api.new_campaign(
        "sales", mode="power", queue="sales-team", dial_ratio=2.25, abandon_message="custom/sorry"
    )
    path = f"/api/v1/campaigns/{power['id']}"
    changed = await api.ok(
        "PATCH",
        path,
        {"mode": "predictive", "abandon_cap": 0.025, "abandon_target": 0.01, "agent_wait_s": 3},
    )
    assert {key: changed[key] for key in ("mode", *AGENT_SETTINGS)} == {
        "mode": "predictive",
        "queue": "sales-team",
        "dial_ratio": 2.25,
        "abandon_cap": 0.025,
        "abandon_target": 0.01,
        "max_dial_ratio": 3.0,
        "abandon_message": "custom/sorry",
        "agent_wait_s": 3.0,
    }
    bad: list[tuple[str, Any]] = [
        ("dial_ratio", 0.5),
        ("dial_ratio", 5.5),
        ("dial_ratio", "2"),
        ("abandon_cap", 0),
        ("abandon_cap", 0.6),
        ("max_dial_ratio", 6),
        ("agent_wait_s", 0),
        ("agent_wait_s", 61),
        ("queue", "sales team"),
        ("queue", ""),
        ("abandon_message", "sorry, we"),
        ("abandon_target", 0.03),  # above this campaign's cap of 0.025
    ]
    for field, value in bad:
        reply = await api.patch(path, {field: value})
        assert reply.status == 422, (field, value, reply.body)
        assert [d["field"] for d in error_of(reply)["details"]] == [field], reply.body
    reply = await api.post(
        "/api/v1/campaigns", {"name": "x", "abandon_cap": 0.01, "abandon_target": 0.02}
    )
    assert reply.status == 422 and error_of(reply)["details"][0]["field"] == "abandon_target"
    reply = await api.patch(path, {"mode": "robocall"})
    assert reply.status == 422 and error_of(reply)["details"][0]["field"] == "mode"
    shown = await api.ok("GET", path)
    assert {key: shown[key] for key in ("mode", *AGENT_SETTINGS)} == {
        key: changed[key] for key in ("mode", *AGENT_SETTINGS)
    }
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchrow(
            "SELECT mode, dial_ratio::float8, abandon_cap::float8, agent_wait_s::float8 "
            "FROM campaigns WHERE id = $1",
            power["id"],
        )
    finally:
        await conn.close()
    assert tuple(stored) == ("predictive", 2.25, 0.025, 3.0)


async def test_agent_stats_of_a_campaign_count_talk_abandons_and_agent_hours(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign("agents", mode="progressive")
    conn = await asyncpg.connect(database_url)
    try:
        contact = await store.insert_contact(conn, campaign["id"], phones=["+12025550201"])
        # Two agents over one hour: agent01 talks 20 min and 10 min, agent02 5 min;
        # one caller abandoned, one call nobody answered.
        t0 = datetime(2025, 1, 1, 10, tzinfo=UTC)
        for agent, connected_min, talk_min, outcome in (
            ("agent01", 1, 20, "answered"),
            ("agent01", 30, 10, "answered"),
            ("agent02", 2, 5, "answered"),
            (None, 40, 0, "abandoned"),
            (None, 50, 0, "no_answer"),
        ):
            await conn.execute(
                "INSERT INTO attempts (campaign_id, contact_id, number, state, outcome, "
                "created_at, agent, agent_connected_at, ended_at, abandoned) "
                "VALUES ($1, $2, '+12025550201', 'ended', $3, $4::timestamptz, $5, "
                "CASE WHEN $5::text IS NULL THEN NULL "
                "ELSE $4::timestamptz + make_interval(mins => $6) END, "
                "$4::timestamptz + make_interval(mins => $6 + $7), $8)",
                campaign["id"],
                contact,
                outcome,
                t0,
                agent,
                connected_min,
                talk_min,
                outcome == "abandoned" if outcome != "no_answer" else None,
            )
    finally:
        await conn.close()
    path = f"/api/v1/campaigns/{campaign['id']}/agent-stats"
    stats = await api.ok(
        "GET", path + "?from=2025-01-01T10:00:00%2B00:00&to=2025-01-01T11:00:00%2B00:00"
    )
    assert stats["hours"] == 1.0 and stats["agents"] == 2 and stats["agent_hours"] == 2.0
    assert (stats["calls"], stats["answered"], stats["connected"], stats["abandoned"]) == (
        5,
        4,
        3,
        1,
    )
    assert stats["abandon_rate"] == 0.25
    assert stats["talk_s"] == 35 * 60.0
    assert stats["talk_min_per_agent_hour"] == 17.5
    assert stats["calls_per_agent_hour"] == 1.5
    assert stats["by_agent"] == [
        {"agent": "agent01", "calls": 2, "talk_s": 1800.0},
        {"agent": "agent02", "calls": 1, "talk_s": 300.0},
    ]
    five = await api.ok("GET", path + "?from=2025-01-01T10:00:00Z&to=2025-01-01T11:00:00Z&agents=5")
    assert five["agent_hours"] == 5.0 and five["talk_min_per_agent_hour"] == 7.0
    whole = await api.ok("GET", path)  # from the first call to the last hangup: 50 min
    assert whole["hours"] == 50 / 60 and whole["connected"] == 3
    for query in ("?from=yesterday", "?to=2025-01-01T10:00:00", "?agents=0"):
        reply = await api.get(path + query)
        assert reply.status == 422, (query, reply.body)
    reply = await api.get(path + "?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z")
    assert reply.status == 422 and error_of(reply)["details"][0]["field"] == "to"
    assert (await api.get("/api/v1/campaigns/999/agent-stats")).status == 404


async def test_start_pause_resume_stop_are_idempotent_and_refused_out_of_order(
    api: Api,
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign()
    base = f"/api/v1/campaigns/{campaign['id']}"

    async def act(action: str) -> tuple[int, Any]:
        reply = await api.post(f"{base}/{action}")
        return reply.status, reply.body

    status, body = await act("pause")
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    status, body = await act("resume")
    assert status == 409
    status, body = await act("start")
    assert status == 200 and body["changed"] is True and body["previous_state"] == "stopped"
    assert body["campaign"]["state"] == "running"
    status, body = await act("start")
    assert status == 200 and body["changed"] is False and body["campaign"]["state"] == "running"
    for _ in range(2):
        status, body = await act("pause")
        assert status == 200 and body["campaign"]["state"] == "paused"
    assert body["changed"] is False
    status, body = await act("start")
    assert status == 409 and "resume" in body["error"]["message"]
    for _ in range(2):
        status, body = await act("resume")
        assert status == 200 and body["campaign"]["state"] == "running"
    for _ in range(2):
        status, body = await act("stop")
        assert status == 200 and body["campaign"]["state"] == "stopped"
    assert body["changed"] is False
    assert (await api.post("/api/v1/campaigns/424242/start")).status == 404


async def test_a_completed_campaign_starts_again_only_with_open_contacts(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign()
    base = f"/api/v1/campaigns/{campaign['id']}"
    conn = await asyncpg.connect(database_url)
    try:
        contact_id = await store.insert_contact(conn, campaign["id"], phones=["+12025550100"])
        await conn.execute(
            "UPDATE contacts SET state = 'connected', status = 'success', closed_at = now() "
            "WHERE id = $1",
            contact_id,
        )
        await store.set_campaign_state(conn, campaign["id"], "completed")
    finally:
        await conn.close()
    reply = await api.post(f"{base}/start")
    assert reply.status == 409 and "no open contacts" in error_of(reply)["message"]
    assert (await api.post(f"{base}/stop")).body["campaign"]["state"] == "completed"
    await api.ok("POST", f"/api/v1/contacts/{contact_id}/reschedule")
    started = await api.ok("POST", f"{base}/start")
    assert started["campaign"]["state"] == "running"


async def test_delete_is_refused_while_running_or_paused_and_removes_a_stopped_campaign(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    campaign = await api.new_campaign()
    base = f"/api/v1/campaigns/{campaign['id']}"
    await api.upload(campaign["id"], [{"phone1": "+12025550100", "external_id": "a"}])
    await api.ok("POST", f"{base}/start")
    for state in ("running", "paused"):
        if state == "paused":
            await api.ok("POST", f"{base}/pause")
        reply = await api.delete(base)
        assert reply.status == 409, reply.body
        assert error_of(reply)["code"] == "campaign_active"
        assert error_of(reply)["details"] == {"state": state}
    await api.ok("POST", f"{base}/stop")
    conn = await asyncpg.connect(database_url)
    try:
        contact_id = await conn.fetchval("SELECT id FROM contacts")
        attempt_id = await store.insert_attempt(
            conn, campaign_id=campaign["id"], contact_id=contact_id, number="+1", phone_slot=1
        )
        reply = await api.delete(base)
        assert reply.status == 409 and error_of(reply)["code"] == "calls_in_progress"
        await conn.execute("UPDATE attempts SET state = 'ended', outcome = 'busy'")
        assert (await api.delete(base)).status == 204
        assert await conn.fetchval("SELECT count(*) FROM contacts") == 0
        assert await store.get_attempt(conn, attempt_id) is None
    finally:
        await conn.close()
    assert (await api.get(base)).status == 404
    assert (await api.delete(base)).status == 404


# --- strategies --------------------------------------------------------------------------


async def test_strategies_are_created_read_listed_and_updated_as_new_versions(api: Api) -> None:
    created = await api.new_strategy({k: v for k, v in SIMPLE.items() if k != "version"})
    assert created["version"] == 1 and created["definition"]["name"] == "simple"
    assert created["definition"]["attempts"][1]["ring_timeout_s"] == 20
    # The stored definition is parse_strategy's normal form: sending it back is no change.
    same = await api.put("/api/v1/strategies/simple", created["definition"])
    assert same.status == 200 and same.body["version"] == 1
    changed = {**SIMPLE, "caps": {"per_contact": 3}}
    changed.pop("version")
    v2 = await api.put("/api/v1/strategies/simple", changed)
    assert v2.status == 201 and v2.body["version"] == 2
    assert v2.body["definition"]["caps"]["per_contact"] == 3
    assert (await api.put("/api/v1/strategies/simple", changed)).status == 200
    v5 = await api.ok("PUT", "/api/v1/strategies/simple", {**SIMPLE, "version": 5}, status=201)
    assert v5["version"] == 5
    stale = await api.put("/api/v1/strategies/simple", {**changed, "version": 3})
    assert stale.status == 409 and error_of(stale)["code"] == "version_exists"

    latest = await api.ok("GET", "/api/v1/strategies/simple")
    assert latest["version"] == 5
    first = await api.ok("GET", "/api/v1/strategies/simple/versions/1")
    assert first["definition"] == created["definition"]
    listed = await api.ok("GET", "/api/v1/strategies")
    by_name = {s["name"]: s for s in listed["items"]}
    assert by_name["simple"]["versions"] == [1, 2, 5]
    assert by_name["simple"]["latest_version"] == 5
    assert "default" in by_name  # loaded from strategies/
    assert (await api.get("/api/v1/strategies/simple/versions/3")).status == 404
    assert (await api.get("/api/v1/strategies/nope")).status == 404
    assert (await api.get("/api/v1/strategies/Not-A-Name")).status == 404
    assert (await api.put("/api/v1/strategies/nope", SIMPLE)).status in (404, 422)
    again = await api.post("/api/v1/strategies", SIMPLE)
    assert again.status == 409 and error_of(again)["code"] == "strategy_exists"


async def test_an_invalid_strategy_is_422_with_the_parser_message_naming_the_field(
    api: Api,
) -> None:
    bad = {**SIMPLE, "attempts": [{"phone": 1, "ring_timeout_s": 5}]}
    reply = await api.post("/api/v1/strategies", bad)
    assert reply.status == 422
    error = error_of(reply)
    assert error["code"] == "invalid_strategy"
    assert error["message"] == "attempts[0].ring_timeout_s must be >= 15"
    reply = await api.post("/api/v1/strategies", {**SIMPLE, "attempts": [{"phone": 1, "x": 1}]})
    assert reply.status == 422 and error_of(reply)["details"][0]["field"] == "attempts[0].x"
    renamed = await api.put("/api/v1/strategies/simple", {**SIMPLE, "name": "other"})
    assert renamed.status in (404, 422)


async def test_strategies_over_the_api_take_rules_for_rejected_and_trunk_errors(
    api: Api,
) -> None:
    rules = {
        "rejected": {"action": "close", "state": "not_connected", "status": "declined"},
        "trunk_error": {"action": "retry", "delay_s": 900},
    }
    reply = await api.post("/api/v1/strategies", {**SIMPLE, "name": "declines", "on": rules})
    assert reply.status == 201, reply.body
    stored = reply.body["definition"]["attempts"][0]["on"]
    assert stored["rejected"]["status"] == "declined"
    assert stored["trunk_error"] == {"action": "retry", "delay_s": 900}
    # A trunk error is never the contact's: only retry.
    closing = {**SIMPLE, "name": "closes", "on": {"trunk_error": "next"}}
    reply = await api.post("/api/v1/strategies", closing)
    assert reply.status == 422
    assert "on.trunk_error must be retry" in error_of(reply)["message"]
    # An outcome no call has is refused by the schema.
    unknown = {**SIMPLE, "name": "unknown", "on": {"declined": "next"}}
    assert (await api.post("/api/v1/strategies", unknown)).status == 422


# --- contacts ----------------------------------------------------------------------------


@pytest.fixture
async def campaign(api: Api) -> dict[str, Any]:
    await api.new_strategy()
    return dict(await api.new_campaign())


async def test_a_json_batch_stores_the_good_rows_and_reports_each_bad_one(
    api: Api, campaign: dict[str, Any]
) -> None:
    rows = [
        {"external_id": "a", "phone1": "(202) 555-0101", "param1": "Ann"},
        {"external_id": "b", "phone1": "not a phone"},
        {"external_id": "c", "phone1": "+442071838750", "phone2": "2025550102"},
        {"external_id": "d", "phone1": "+12025550103", "colour": "red"},
        {"external_id": "e", "phone1": 12025550104},
        {"external_id": "f", "phone1": "+12025550105", "param1": "nul\x00"},
        {"external_id": "g", "phone1": "+12025550106", "param2": "lone \ud800"},
    ]
    report = await api.upload(campaign["id"], rows)
    assert report["received"] == 7 and report["inserted"] == 3 and report["updated"] == 0
    assert report["stored"] is True
    assert [(e["row"], e["field"]) for e in report["rejected"]] == [
        (2, "phone1"),
        (4, "colour"),
        (6, "param1"),
        (7, "param2"),
    ]
    again = await api.upload(campaign["id"], [{"external_id": "a", "phone1": "+12025550199"}])
    assert again["inserted"] == 0 and again["updated"] == 1
    contact = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts/by-external-id/a")
    assert contact["phone1"] == "+12025550199" and contact["param1"] == "Ann"
    reply = await api.post(
        f"/api/v1/campaigns/{campaign['id']}/contacts", {"contacts": [{"$row": 3}]}
    )
    assert reply.status == 422
    reply = await api.post(f"/api/v1/campaigns/{campaign['id']}/contacts", {"rows": []})
    assert reply.status == 422 and error_of(reply)["details"][0]["field"] in ("rows", "contacts")
    assert (await api.post("/api/v1/campaigns/999/contacts", {"contacts": []})).status == 404


async def test_an_all_or_nothing_batch_with_a_bad_row_stores_nothing(
    api: Api, campaign: dict[str, Any]
) -> None:
    rows = [{"phone1": "+12025550101"}, {"phone1": "+1202"}]
    reply = await api.post(
        f"/api/v1/campaigns/{campaign['id']}/contacts",
        {"contacts": rows, "all_or_nothing": True},
    )
    assert reply.status == 422
    error = error_of(reply)
    assert error["code"] == "import_rejected"
    assert error["details"]["stored"] is False
    assert error["details"]["rejected"][0]["row"] == 2
    listed = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts")
    assert listed["items"] == []


CSV_TEXT = (
    "external_id,phone1,phone2,param1\r\n"
    "x1,+12025550101,,Zoë\r\n"
    "x2,2025550102,+12025550112,\r\n"
    "x3,12345,,\r\n"
)


def xlsx_of(text: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for record in csv.reader(io.StringIO(text)):
        sheet.append(record)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def test_csv_and_xlsx_files_raw_or_multipart_import_the_same_contacts(
    api: Api, database_url: str
) -> None:
    await api.new_strategy()
    xlsx = xlsx_of(CSV_TEXT)
    uploads: list[tuple[str, dict[str, Any]]] = [
        ("raw-csv", {"data": CSV_TEXT.encode(), "headers": {"Content-Type": "text/csv"}}),
        (
            "raw-xlsx",
            {
                "data": xlsx,
                "headers": {
                    "Content-Type": "application/vnd.openxmlformats-officedocument."
                    "spreadsheetml.sheet"
                },
            },
        ),
        ("sniffed-xlsx", {"data": xlsx, "headers": {"Content-Type": "application/octet-stream"}}),
        ("format-param", {"data": CSV_TEXT.encode(), "params": {"format": "csv"}}),
    ]
    results = {}
    for name, request in uploads:
        campaign = await api.new_campaign(name)
        reply = await api.post(f"/api/v1/campaigns/{campaign['id']}/contacts/file", **request)
        assert reply.status == 200, (name, reply.body)
        listed = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts")
        results[name] = (
            reply.body,
            [(c["external_id"], c["phone1"], c["phone2"], c["param1"]) for c in listed["items"]],
        )
    for name in ("csv", "xlsx"):
        campaign = await api.new_campaign(f"multipart-{name}")
        form = aiohttp.FormData()
        form.add_field(
            "file", CSV_TEXT.encode() if name == "csv" else xlsx, filename=f"contacts.{name}"
        )
        reply = await api.post(f"/api/v1/campaigns/{campaign['id']}/contacts/file", data=form)
        assert reply.status == 200, reply.body
        listed = await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts")
        results[f"multipart-{name}"] = (
            reply.body,
            [(c["external_id"], c["phone1"], c["phone2"], c["param1"]) for c in listed["items"]],
        )
    expected_contacts = [
        ("x1", "+12025550101", None, "Zoë"),
        ("x2", "+12025550102", "+12025550112", None),
    ]
    for name, (report, contacts) in results.items():
        assert contacts == expected_contacts, name
        assert report["inserted"] == 2 and report["received"] == 3, (name, report)
        assert [(e["row"], e["field"]) for e in report["rejected"]] == [(4, "phone1")], name

    campaign = await api.new_campaign("broken")
    path = f"/api/v1/campaigns/{campaign['id']}/contacts/file"
    reply = await api.post(path, data=b"colour\r\nred\r\n", headers={"Content-Type": "text/csv"})
    assert reply.status == 422 and error_of(reply)["code"] == "invalid_file"
    reply = await api.post(path, data=b"PK\x03\x04garbage", params={"format": "xlsx"})
    assert reply.status == 422 and error_of(reply)["code"] == "invalid_file"
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.csv")
    reply = await api.post(path, data=form)
    assert reply.status == 422 and error_of(reply)["details"][0]["field"] == "file"
    reply = await api.post(path, data=b"{}", headers={"Content-Type": "application/json"})
    assert reply.status == 415
    reply = await api.post(
        path,
        data=b"--b\r\nTrue--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert reply.status == 422 and error_of(reply)["code"] == "bad_multipart"
    reply = await api.post(
        path, data=CSV_TEXT.encode(), params={"all_or_nothing": "true", "format": "csv"}
    )
    assert reply.status == 422 and error_of(reply)["code"] == "import_rejected"
    assert (await api.post("/api/v1/campaigns/999/contacts/file", data=b"x")).status == 404


async def test_a_contact_is_found_by_id_and_by_an_external_id_with_any_characters(
    api: Api, campaign: dict[str, Any]
) -> None:
    odd = "crm/42 ünïcode?&#"
    await api.upload(campaign["id"], [{"external_id": odd, "phone1": "+12025550101"}])
    from urllib.parse import quote

    path = f"/api/v1/campaigns/{campaign['id']}/contacts/by-external-id/{quote(odd, safe='')}"
    contact = await api.ok("GET", path)
    assert contact["external_id"] == odd
    assert contact["state"] == "pending" and contact["status"] == "open"
    same = await api.ok("GET", f"/api/v1/contacts/{contact['id']}")
    assert same == contact
    missing = f"/api/v1/campaigns/{campaign['id']}/contacts/by-external-id/nope"
    assert (await api.get(missing)).status == 404
    assert (await api.get("/api/v1/contacts/999999")).status == 404


async def test_contacts_are_listed_by_pages_and_filtered_by_state_status_detail_and_phone(
    api: Api, campaign: dict[str, Any], database_url: str
) -> None:
    rows = [{"external_id": f"c{i}", "phone1": f"+1202555010{i}"} for i in range(5)]
    rows[3]["phone2"] = "+12025550199"
    await api.upload(campaign["id"], rows)
    base = f"/api/v1/campaigns/{campaign['id']}/contacts"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE contacts SET state = 'retries_completed', status = 'failed', "
            "status_detail = '$unavailable', closed_at = now() WHERE external_id IN ('c1', 'c2')"
        )
    finally:
        await conn.close()

    async def ids(**params: str) -> list[str]:
        reply = await api.get(base, params=params)
        assert reply.status == 200, reply.body
        return [c["external_id"] for c in reply.body["items"]]

    assert await ids() == ["c0", "c1", "c2", "c3", "c4"]
    assert await ids(state="retries_completed") == ["c1", "c2"]
    assert await ids(status="open") == ["c0", "c3", "c4"]
    assert await ids(status_detail="$unavailable") == ["c1", "c2"]
    assert await ids(status="failed", status_detail="$none") == []
    assert await ids(phone="+12025550199") == ["c3"]
    assert await ids(phone="(202) 555-0199") == ["c3"]
    assert await ids(phone="2025550104") == ["c4"]
    page1 = await api.get(base, params={"limit": "2"})
    assert [c["external_id"] for c in page1.body["items"]] == ["c0", "c1"]
    page2 = await api.get(base, params={"limit": "2", "after": str(page1.body["next_after"])})
    assert [c["external_id"] for c in page2.body["items"]] == ["c2", "c3"]
    for bad in ({"state": "asleep"}, {"status": "meh"}, {"limit": "1001"}, {"after": "-1"}):
        assert (await api.get(base, params=bad)).status == 422, bad
    assert (await api.get("/api/v1/campaigns/999/contacts")).status == 404


async def test_patch_stores_phones_in_e164_and_refuses_a_bad_field_whole(
    api: Api, campaign: dict[str, Any]
) -> None:
    await api.upload(campaign["id"], [{"external_id": "a", "phone1": "+12025550101"}])
    contact = (await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts"))["items"][0]
    path = f"/api/v1/contacts/{contact['id']}"
    changed = await api.ok(
        "PATCH",
        path,
        {"phone2": "(202) 555-0102", "param12": "x" * 255, "timezone": "America/Chicago"},
    )
    assert changed["phone2"] == "+12025550102"
    assert changed["param12"] == "x" * 255 and changed["timezone"] == "America/Chicago"
    cleared = await api.ok("PATCH", path, {"phone2": None, "timezone": None})
    assert cleared["phone2"] is None and cleared["timezone"] is None
    for body, field in (
        ({"phone1": None}, "phone1"),
        ({"phone1": "12345"}, "phone1"),
        ({"phone3": "+1202555010x", "param1": "kept?"}, "phone3"),
        ({"param1": "x" * 256}, "param1"),
        ({"timezone": "Nowhere/Town"}, "timezone"),
        ({"state": "connected"}, "state"),
        ({"param2": "nul\x00"}, "param2"),
    ):
        reply = await api.patch(path, body)
        assert reply.status == 422, (body, reply.body)
        assert field in [d["field"] for d in error_of(reply)["details"]], (body, reply.body)
    after = await api.ok("GET", path)
    assert after["param1"] is None  # the refused request changed nothing
    assert (await api.patch("/api/v1/contacts/999999", {"param1": "x"})).status == 404


async def test_cancel_closes_a_contact_once_and_refuses_one_closed_otherwise(
    api: Api, campaign: dict[str, Any], database_url: str
) -> None:
    rows = [
        {"external_id": "a", "phone1": "+12025550101"},
        {"external_id": "b", "phone1": "+12025550102"},
    ]
    await api.upload(campaign["id"], rows)
    listed = (await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts"))["items"]
    first, second = listed[0]["id"], listed[1]["id"]
    cancelled = await api.ok("POST", f"/api/v1/contacts/{first}/cancel")
    assert (cancelled["state"], cancelled["status"], cancelled["status_detail"]) == (
        "cancelled",
        "failed",
        "$cancelled",
    )
    assert cancelled["closed_at"] is not None and cancelled["next_attempt_at"] is None
    assert await api.ok("POST", f"/api/v1/contacts/{first}/cancel") == cancelled
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE contacts SET state = 'connected', status = 'success', closed_at = now() "
            "WHERE id = $1",
            second,
        )
    finally:
        await conn.close()
    reply = await api.post(f"/api/v1/contacts/{second}/cancel")
    assert reply.status == 409 and error_of(reply)["code"] == "contact_closed"
    assert (await api.post("/api/v1/contacts/999999/cancel")).status == 404


async def test_reschedule_reopens_a_contact_from_the_start_or_at_a_strategy_step(
    api: Api, campaign: dict[str, Any], database_url: str
) -> None:
    await api.upload(campaign["id"], [{"external_id": "a", "phone1": "+12025550101"}])
    contact = (await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts"))["items"][0]
    path = f"/api/v1/contacts/{contact['id']}"
    await api.ok("POST", f"{path}/cancel")
    at_step = await api.ok(
        "POST", f"{path}/reschedule", {"step": 1, "at": "2031-02-03T04:05:06+01:00"}
    )
    assert (at_step["state"], at_step["status"], at_step["status_detail"]) == (
        "pending",
        "open",
        "$none",
    )
    assert at_step["closed_at"] is None
    assert at_step["next_attempt_at"] == "2031-02-03T03:05:06+00:00"
    # Step 1 calls phone 2, which is empty: phone 1, as the engine does.
    assert (at_step["next_step"], at_step["next_channel"], at_step["next_phone_slot"]) == (
        1,
        "call",
        1,
    )
    fresh = await api.ok("POST", f"{path}/reschedule", {})
    assert fresh["next_step"] is None and fresh["next_channel"] is None
    assert fresh["next_attempt_at"] is not None
    for body in ({"step": 2}, {"step": -1}, {"at": "tomorrow"}, {"at": "2031-02-03T04:05:06"}):
        reply = await api.post(f"{path}/reschedule", body)
        assert reply.status == 422, (body, reply.body)
    conn = await asyncpg.connect(database_url)
    try:
        await store.insert_attempt(
            conn, campaign_id=campaign["id"], contact_id=contact["id"], number="+1", phone_slot=1
        )
    finally:
        await conn.close()
    reply = await api.post(f"{path}/reschedule")
    assert reply.status == 409 and error_of(reply)["code"] == "attempt_in_progress"
    assert (await api.post("/api/v1/contacts/999999/reschedule")).status == 404


async def test_a_contact_attempts_are_listed_oldest_first(
    api: Api, campaign: dict[str, Any], database_url: str
) -> None:
    await api.upload(campaign["id"], [{"external_id": "a", "phone1": "+12025550101"}])
    contact = (await api.ok("GET", f"/api/v1/campaigns/{campaign['id']}/contacts"))["items"][0]
    conn = await asyncpg.connect(database_url)
    try:
        ids = []
        for outcome in ("answered", None):
            attempt_id = await store.insert_attempt(
                conn,
                campaign_id=campaign["id"],
                contact_id=contact["id"],
                number="+12025550101",
                phone_slot=1,
            )
            if outcome:
                await conn.execute(
                    "UPDATE attempts SET state = 'ended', outcome = $2, ended_at = now(), "
                    "hangup_cause = 16, amd_status = 'HUMAN', ivr_digits = '' WHERE id = $1",
                    attempt_id,
                    outcome,
                )
            ids.append(attempt_id)
    finally:
        await conn.close()
    attempts = await api.ok("GET", f"/api/v1/contacts/{contact['id']}/attempts")
    assert [a["id"] for a in attempts["items"]] == ids
    first, second = attempts["items"]
    assert (first["outcome"], first["hangup_cause"]) == ("answered", 16)
    # What the dialplan reported: AMD's verdict, and no key pressed in the IVR ("").
    assert (first["amd_status"], first["ivr_digits"]) == ("HUMAN", "")
    assert second["state"] == "created" and second["outcome"] is None
    assert second["amd_status"] is None and second["ivr_digits"] is None
    assert (await api.get("/api/v1/contacts/999999/attempts")).status == 404


async def test_results_export_as_csv_and_xlsx_hold_the_same_cells(
    api: Api, campaign: dict[str, Any], database_url: str
) -> None:
    rows = [
        {"external_id": "a", "phone1": "+12025550101", "param1": '=HYPERLINK("x")'},
        {"external_id": "b", "phone1": "+12025550102", "param2": "Zoë"},
    ]
    await api.upload(campaign["id"], rows)
    conn = await asyncpg.connect(database_url)
    try:
        contact_id = await conn.fetchval("SELECT id FROM contacts WHERE external_id = 'a'")
        attempt_id = await store.insert_attempt(
            conn,
            campaign_id=campaign["id"],
            contact_id=contact_id,
            number="+12025550101",
            phone_slot=1,
        )
        await conn.execute(
            "UPDATE attempts SET state = 'ended', outcome = 'answered', ended_at = now() "
            "WHERE id = $1",
            attempt_id,
        )
    finally:
        await conn.close()
    path = f"/api/v1/campaigns/{campaign['id']}/results"
    as_csv = await api.get(path)
    assert as_csv.status == 200
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["Content-Disposition"]
    records = list(csv.DictReader(io.StringIO(as_csv.raw.decode())))
    assert [r["external_id"] for r in records] == ["a", "b"]
    assert records[0]["attempts"] == "1" and records[0]["last_outcome"] == "answered"
    assert records[0]["param1"] == '\'=HYPERLINK("x")'  # never run as a formula
    assert records[1]["attempts"] == "0" and records[1]["param2"] == "Zoë"

    as_xlsx = await api.get(path, params={"format": "xlsx"})
    assert as_xlsx.status == 200
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(as_xlsx.raw), read_only=True)["results"]
    table = [list(row) for row in sheet.iter_rows(values_only=True)]
    header, data = table[0], table[1:]
    # Empty cells are not written: a row may stop before the last column.
    cells = [
        {
            name: "" if value is None else str(value)
            for name, value in zip(
                header, [*row, *([None] * (len(header) - len(row)))], strict=True
            )
        }
        for row in data
    ]
    for from_csv, from_xlsx in zip(records, cells, strict=True):
        from_csv["param1"] = from_csv["param1"].removeprefix("'")
        assert from_csv == from_xlsx
    assert (await api.get(path, params={"format": "pdf"})).status == 422
    assert (await api.get("/api/v1/campaigns/999/results")).status == 404


# --- do-not-call -----------------------------------------------------------------------------


async def test_global_do_not_call_numbers_are_added_checked_listed_and_removed(api: Api) -> None:
    added = await api.ok(
        "POST", "/api/v1/dnc", {"numbers": ["(202) 555-0101", "+12025550102"], "reason": "asked"}
    )
    assert added == {
        "numbers": ["+12025550101", "+12025550102"],
        "added": ["+12025550101", "+12025550102"],
    }
    again = await api.ok("POST", "/api/v1/dnc", {"numbers": ["+12025550101"]})
    assert again["added"] == []
    check = await api.ok("GET", "/api/v1/dnc/%2B12025550101")
    assert check["listed"] is True and check["number"] == "+12025550101"
    assert check["entries"][0]["reason"] == "asked" and check["entries"][0]["campaign_id"] is None
    national = await api.ok("GET", "/api/v1/dnc/2025550101")
    assert national["listed"] is True
    london = await api.ok("GET", "/api/v1/dnc/02071838750", params={"region": "GB"})
    assert london == {
        "number": "+442071838750",
        "listed": False,
        "entries": [],
        "registries": [],
    }
    listed = await api.ok("GET", "/api/v1/dnc", params={"limit": "1"})
    assert [e["number"] for e in listed["items"]] == ["+12025550101"]
    rest = await api.ok("GET", f"/api/v1/dnc?limit=1&after={listed['next_after']}")
    assert [e["number"] for e in rest["items"]] == ["+12025550102"]
    removed = await api.ok("DELETE", "/api/v1/dnc/%2B12025550101")
    assert removed == {"number": "+12025550101", "removed": True}
    assert (await api.ok("DELETE", "/api/v1/dnc/%2B12025550101"))["removed"] is False
    assert (await api.ok("GET", "/api/v1/dnc/%2B12025550101"))["listed"] is False
    for body in ({"numbers": []}, {"numbers": ["hello"]}, {"numbers": ["+1"], "region": "usa"}):
        assert (await api.post("/api/v1/dnc", body)).status == 422, body
    assert (await api.get("/api/v1/dnc/not-a-number")).status == 422


async def test_a_region_the_schema_refuses_is_422_on_every_route_that_takes_one(
    api: Api, campaign: dict[str, Any]
) -> None:
    await api.ok("POST", "/api/v1/dnc", {"numbers": ["+12025550101"]})
    bad = ["X", "u", "us", "U1", "USA", "É1", " US", "US\n", ""]
    for base in ("/api/v1/dnc", f"/api/v1/campaigns/{campaign['id']}/dnc"):
        for region in bad:
            for method in ("GET", "DELETE"):
                reply = await api.request(
                    method, f"{base}/%2B12025550101", params={"region": region}
                )
                assert reply.status == 422, (method, base, region, reply.status, reply.body)
                assert error_of(reply)["details"] == [{"field": "region", "message": "invalid"}]
            reply = await api.post(base, {"numbers": ["2025550101"], "region": region})
            assert reply.status == 422, (base, region, reply.body)
    # Nothing was taken off by a refused request.
    assert (await api.ok("GET", "/api/v1/dnc/%2B12025550101"))["listed"] is True
    assert (await api.ok("GET", "/api/v1/dnc/2025550101", params={"region": "US"}))["listed"]


async def test_a_campaign_do_not_call_list_is_its_own_and_the_global_list_applies_to_it(
    api: Api, campaign: dict[str, Any]
) -> None:
    base = f"/api/v1/campaigns/{campaign['id']}/dnc"
    other = await api.new_campaign("other")
    await api.ok("POST", base, {"numbers": ["2025550101"]})
    await api.ok("POST", "/api/v1/dnc", {"numbers": ["+12025550109"]})
    mine = await api.ok("GET", f"{base}/%2B12025550101")
    assert mine["listed"] is True and mine["entries"][0]["campaign_id"] == campaign["id"]
    theirs = await api.ok("GET", f"/api/v1/campaigns/{other['id']}/dnc/%2B12025550101")
    assert theirs["listed"] is False
    global_view = await api.ok("GET", "/api/v1/dnc/%2B12025550101")
    assert global_view["listed"] is False and len(global_view["entries"]) == 1
    via_global = await api.ok("GET", f"{base}/%2B12025550109")
    assert via_global["listed"] is True and via_global["entries"][0]["campaign_id"] is None
    listed = await api.ok("GET", base)
    assert [e["number"] for e in listed["items"]] == ["+12025550101"]
    assert (await api.ok("DELETE", f"{base}/%2B12025550101"))["removed"] is True
    assert (await api.ok("GET", f"{base}/%2B12025550101"))["listed"] is False
    assert (await api.get("/api/v1/campaigns/999/dnc")).status == 404
    assert (
        await api.post("/api/v1/campaigns/999/dnc", {"numbers": ["+12025550101"]})
    ).status == 404


async def test_a_campaign_may_be_kept_to_named_pbxs_of_the_pool(config: Config) -> None:
    pool = (PbxConfig(name="pbx-a"), PbxConfig(name="pbx-b", port=5039))
    async with api_server(api_config(dataclasses.replace(config, pbx=pool))) as api:
        await api.new_strategy()
        created = await api.post(
            "/api/v1/campaigns", {"name": "b-only", "strategy": "simple", "pbxs": ["pbx-b"]}
        )
        assert created.status == 201, created.body
        assert created.body["pbxs"] == ["pbx-b"]
        campaign_id = created.body["id"]
        assert (await api.ok("GET", f"/api/v1/campaigns/{campaign_id}"))["pbxs"] == ["pbx-b"]
        both = await api.ok(
            "PATCH", f"/api/v1/campaigns/{campaign_id}", {"pbxs": ["pbx-a", "pbx-b"]}
        )
        assert both["pbxs"] == ["pbx-a", "pbx-b"]
        every = await api.ok("PATCH", f"/api/v1/campaigns/{campaign_id}", {"pbxs": None})
        assert every["pbxs"] is None
        default = await api.post("/api/v1/campaigns", {"name": "all", "strategy": "simple"})
        assert default.body["pbxs"] is None
        for pbxs in (["pbx-c"], ["pbx a"], [], ["pbx-a", "pbx-a"], "pbx-a", [1]):
            reply = await api.post(
                "/api/v1/campaigns", {"name": "bad", "strategy": "simple", "pbxs": pbxs}
            )
            assert reply.status == 422, (pbxs, reply.body)
            assert "pbxs" in str(error_of(reply)["details"]), (pbxs, reply.body)
        unknown = await api.patch(f"/api/v1/campaigns/{campaign_id}", {"pbxs": ["pbx-c"]})
        assert unknown.status == 422
        assert "unknown PBX 'pbx-c' (the pool: pbx-a, pbx-b)" in error_of(unknown)["message"]
