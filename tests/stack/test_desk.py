"""The agent desk and the supervisor view in a real headless Chromium, against a daemon
on the real stack (Asterisk, sipp as the customers and as the agent's phone).

Each test starts a daemon (a subprocess, as operators run it) with webhooks to a
local CRM receiver, logs users in through the pages and acts with their buttons.
Screenshots go to the test's tmp dir; with UPDATE_DOC_SCREENSHOTS=1 the desk's and
the supervisor view's also replace docs/images/desk.png and supervisor.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from selenium.webdriver.common.by import By

from dialer_server.telephony import queue_members
from dialer_server.telephony.ami import AmiClient

from ..support.browser import chromium, log_in, screenshot, state_line, wait
from ..support.campaign_setup import add_campaign
from ..support.crm_receiver import Crm
from ..support.daemon_process import DaemonProcess, start_daemon
from ..support.sipp_agents import SippAgents, TalkTime
from ..support.sse import SseClient

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
DOC_IMAGES = ROOT / "docs" / "images"
QUEUE = "dialer-desk"
AGENT = "agent21"
ADMIN_PASSWORD = "admin-password-0001"
AGENT_PASSWORD = "alice-password-0001"
SUPERVISOR_PASSWORD = "sam-password-0001"
SECRET = "desk-test-webhook-secret"
ONE_CALL = {"name": "desk-call", "version": 1, "attempts": [{"phone": 1, "max_tries": 3}]}
# The far end answers and would stay 30 s: the agent (talking 6 s) ends the call.
ANSWERS = "+12025550230"
CONTACT_ZONE = "America/New_York"


class Desk:
    """A daemon, its database, a CRM, and the users of a desk test."""

    def __init__(self, daemon: DaemonProcess, conn: Any, crm: Crm, session: aiohttp.ClientSession):
        self.daemon = daemon
        self.conn = conn
        self.crm = crm
        self.session = session
        self.base = f"http://127.0.0.1:{daemon.port}"
        self.tokens: dict[str, str] = {}

    async def api(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as r:
            data = await r.json() if r.content_type == "application/json" else None
            return r.status, data

    async def ok(self, user: str, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.api(user, method, path, body)
        assert 200 <= status < 300, (method, path, status, data)
        return data

    async def log_in(self, username: str, password: str) -> str:
        async with self.session.post(
            self.base + "/api/v1/session", json={"username": username, "password": password}
        ) as r:
            assert r.status == 201, await r.text()
            self.tokens[username] = (await r.json())["token"]
        return self.tokens[username]

    async def roster_shows(self, agent: str, state: str, timeout: float = 15) -> dict[str, Any]:
        view: Any = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    view = await self.ok("admin", "GET", "/api/v1/supervisor")
                    for row in view["agents"]:
                        if row["agent"] == agent and row["state"] == state:
                            return dict(row)
                    await asyncio.sleep(0.2)
        except TimeoutError:
            audit = await self.ok("admin", "GET", "/api/v1/audit")
            rows = [row for row in (view or {}).get("agents", []) if row["agent"] == agent]
            actions = [(a["action"], a["after"]) for a in audit["items"]]
            raise AssertionError(f"{agent} never {state}: {rows}; audit: {actions}") from None


def add_admin_with_the_cli(database_url: str) -> None:
    """The first admin, as an operator makes it: dialer-server user add."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["DIALER_DATABASE_URL"] = database_url
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dialer_server",
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input=ADMIN_PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "admin (admin) created" in proc.stdout


async def out_of_every_queue(stack: Any) -> None:
    """agent21 in no queue and not paused, whatever an earlier test or run left
    (Asterisk outlives the tests' daemons)."""
    ami = AmiClient(stack.ami_config())
    stop = asyncio.Event()
    task = asyncio.create_task(ami.run(stop), name="cleanup-ami")
    try:
        await ami.wait_connected(10)
        await queue_members.leave(ami, QUEUE, AGENT)
        # A call the test left up (its agent phone is gone) would keep agent21 busy.
        await ami.send_action({"Action": "Hangup", "Channel": f"/^PJSIP\\/{AGENT}-.*$/"})
        async with asyncio.timeout(10):
            while any(
                m.get("Channel", "").startswith(f"PJSIP/{AGENT}-")
                for m in await ami.send_action({"Action": "CoreShowChannels"})
            ):
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task


@pytest.fixture
async def sipp_agent(stack: Any) -> AsyncIterator[SippAgents]:
    await out_of_every_queue(stack)
    async with SippAgents(talk=TalkTime(min_s=6.0)) as agents:
        await agents.unregister([AGENT])  # whatever an interrupted run left
        await agents.register([AGENT])
        yield agents
    await out_of_every_queue(stack)


@pytest.fixture
async def desk(
    stack: Any, database_url: str, tmp_path: Path, sipp_agent: SippAgents
) -> AsyncIterator[Desk]:
    crm = Crm()
    await crm.start()
    add_admin_with_the_cli(database_url)
    daemon = start_daemon(
        stack,
        database_url,
        tmp_path / "daemon.log",
        DIALER_WEBHOOKS_URL=crm.url,
        DIALER_WEBHOOKS_SECRET=SECRET,
        DIALER_WEBHOOKS_MIN_BACKOFF_S="0.2",
        DIALER_DIALING_TICK_S="0.05",
        DIALER_DIALING_RING_TIMEOUT_S="15",
    )
    conn = await asyncpg.connect(database_url)
    session = aiohttp.ClientSession()
    env = Desk(daemon, conn, crm, session)
    try:
        await env.log_in("admin", ADMIN_PASSWORD)
        await env.ok(
            "admin",
            "POST",
            "/api/v1/users",
            {
                "username": "alice",
                "role": "agent",
                "agent": AGENT,
                "password": AGENT_PASSWORD,
                "display_name": "Alice Martin",
            },
        )
        await env.ok(
            "admin",
            "POST",
            "/api/v1/users",
            {"username": "sam", "role": "supervisor", "password": SUPERVISOR_PASSWORD},
        )
        await env.log_in("alice", AGENT_PASSWORD)
        async with asyncio.timeout(15):
            while not (await env.ok("admin", "GET", "/api/v1/supervisor"))["roster_ready"]:
                await asyncio.sleep(0.2)
        yield env
    finally:
        # Leave the queue: the next test's Asterisk must not have agent21 in it.
        if "alice" in env.tokens:
            for campaign in await conn.fetch("SELECT id FROM campaigns"):
                await env.api(
                    "alice", "POST", "/api/v1/desk/leave", {"campaign_id": campaign["id"]}
                )
        await session.close()
        await conn.close()
        daemon.close()
        await crm.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


async def desk_campaign(
    conn: Any, name: str, phones: list[str], **settings: Any
) -> tuple[int, list[int]]:
    campaign_id, contact_ids = await add_campaign(
        conn,
        name,
        ONE_CALL,
        [[phone] for phone in phones],
        start=False,
        queue=QUEUE,
        script="Hello {first_name}, this is about your {plan} plan (ref {external_id}).",
        param_names={"param1": "first_name", "param2": "plan"},
        **settings,
    )
    await conn.execute(
        "UPDATE contacts SET param1 = 'Ada', param2 = 'gold', timezone = $2 WHERE campaign_id = $1",
        campaign_id,
        CONTACT_ZONE,
    )
    return campaign_id, contact_ids


def click(driver: Any, css: str, timeout: float = 10) -> None:
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed(), timeout)
    driver.find_element(By.CSS_SELECTOR, css).click()


async def in_browser(fn: Any, *args: Any) -> Any:
    # selenium blocks: run it beside the event loop, which serves the CRM receiver.
    return await asyncio.to_thread(fn, *args)


def save_doc_screenshot(driver: Any, tmp_path: Path, name: str) -> None:
    shot = screenshot(driver, tmp_path / name)
    if os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_IMAGES / name)


async def test_an_agent_takes_a_predictive_call_sees_it_in_a_second_and_sets_a_personal_callback(
    desk: Desk, browser: Any, tmp_path: Path
) -> None:
    campaign_id, (contact_id,) = await desk_campaign(
        desk.conn, "desk-predictive", [ANSWERS], mode="predictive"
    )
    async with SseClient(
        f"{desk.base}/api/v1/events?campaign={campaign_id}", desk.tokens["admin"]
    ) as stream:
        await in_browser(log_in, browser, desk.base + "/desk", "alice", AGENT_PASSWORD)
        assert await in_browser(state_line, browser) == "logged_out"
        await in_browser(click, browser, f"li[data-campaign='{campaign_id}'] button")
        await desk.roster_shows(AGENT, "ready")
        await in_browser(wait, browser, lambda d: state_line(d) == "ready", 10)
        await desk.ok("admin", "POST", f"/api/v1/campaigns/{campaign_id}/start")

        # The screen pop: within 1 s of the agent being bridged to the customer.
        await in_browser(
            wait,
            browser,
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-pop-attempt"),
            40,
        )
        body = browser.find_element(By.TAG_NAME, "body")
        attempt_id = body.get_attribute("data-pop-attempt")
        shown_at = int(body.get_attribute("data-pop-at")) / 1000
        bridged = await desk.conn.fetchval(
            "SELECT agent_connected_at FROM attempts WHERE id = $1", attempt_id
        )
        assert bridged is not None
        delay = shown_at - bridged.timestamp()
        print(f"screen pop {delay * 1000:.0f} ms after the bridge")
        assert -0.5 < delay < 1.0, delay
        card = browser.find_element(By.ID, "call-card").text
        assert "desk-predictive-0" in card
        assert browser.find_element(By.ID, "script").text == (
            "Hello Ada, this is about your gold plan (ref desk-predictive-0)."
        )
        assert "first_name" in card and "Ada" in card
        await in_browser(wait, browser, lambda d: state_line(d) in ("on_call", "wrap_up"), 5)
        save_doc_screenshot(browser, tmp_path, "desk.png")
        # A tablet held upright: one column, the same controls.
        browser.set_window_size(800, 1200)
        save_doc_screenshot(browser, tmp_path, "desk-tablet.png")
        browser.set_window_size(1280, 900)

        # A personal callback, 30 s from now in the contact's own time.
        local = (datetime.now(UTC) + timedelta(seconds=30)).astimezone(
            zoneinfo.ZoneInfo(CONTACT_ZONE)
        )
        await in_browser(click, browser, "#dispositions button[data-status='call_back']")
        browser.execute_script(
            "document.getElementById('callback-at').value = arguments[0];",
            local.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        browser.find_element(By.ID, "note").send_keys("Asked to be called back shortly")
        await in_browser(click, browser, "#save")
        await in_browser(
            wait,
            browser,
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved"),
            10,
        )

        row = await desk.conn.fetchrow(
            "SELECT name, agent, note, callback_at FROM attempt_dispositions WHERE attempt_id = $1",
            attempt_id,
        )
        assert (row["name"], row["agent"], row["note"]) == (
            "call_back",
            AGENT,
            "Asked to be called back shortly",
        )
        assert abs((row["callback_at"] - local).total_seconds()) < 1.5
        # The webhook and the stream tell the CRM: connected, then the disposition.
        await desk.crm.wait_for(lambda c: bool(c.of_type("attempt.disposition")), 30)
        connected = desk.crm.of_type("attempt.connected")
        assert [e["attempt"]["id"] for e in connected] == [attempt_id]
        assert connected[0]["agent"] == {"name": AGENT, "user": "alice"}
        assert connected[0]["contact"]["id"] == contact_id
        disposition = desk.crm.of_type("attempt.disposition")[0]
        assert disposition["disposition"]["agent"] == AGENT
        assert disposition["contact"]["callback_agent"] == AGENT
        await stream.wait_for(lambda s: bool(s.of_type("attempt.disposition")), 10)
        kinds = [kind for _, kind, _ in stream.events]
        assert kinds.index("attempt.connected") < kinds.index("attempt.disposition")
        ids = [seq for seq, _, _ in stream.events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert stream.of_type("attempt.connected")[0] == connected[0]

        # The callback rings that agent: a second call of the contact, taken by agent21.
        async with asyncio.timeout(90):
            while not await desk.conn.fetchval(
                "SELECT count(*) FROM attempts WHERE contact_id = $1 AND agent = $2 "
                "AND created_at > $3",
                contact_id,
                AGENT,
                row["callback_at"] - timedelta(seconds=1),
            ):
                await asyncio.sleep(0.2)
        second = await desk.conn.fetchrow(
            "SELECT created_at, agent FROM attempts WHERE contact_id = $1 ORDER BY created_at DESC "
            "LIMIT 1",
            contact_id,
        )
        assert second["created_at"] >= row["callback_at"]
        # The agent's phone hangs up after its talk time: no call outlives the test.
        async with asyncio.timeout(30):
            while await desk.conn.fetchval("SELECT count(*) FROM attempts WHERE state <> 'ended'"):
                await asyncio.sleep(0.2)
    # Every write of the agent is in the audit log, as coming from the desk.
    audit = await desk.ok("admin", "GET", "/api/v1/audit?user=alice")
    actions = {(item["action"], item["via"]) for item in audit["items"]}
    assert {("deskJoin", "desk"), ("setDeskDisposition", "desk")} <= actions, actions


async def test_preview_skip_needs_a_reason_and_the_customer_is_dialled_only_after_call(
    desk: Desk, browser: Any, tmp_path: Path
) -> None:
    campaign_id, contact_ids = await desk_campaign(
        desk.conn, "desk-preview", [ANSWERS, "+12025550201"], mode="preview"
    )
    await desk.ok("admin", "POST", f"/api/v1/campaigns/{campaign_id}/start")
    await in_browser(log_in, browser, desk.base + "/desk", "alice", AGENT_PASSWORD)
    await in_browser(click, browser, f"li[data-campaign='{campaign_id}'] button")
    await desk.roster_shows(AGENT, "ready")
    await in_browser(click, browser, "#preview-next")
    await in_browser(
        wait, browser, lambda d: d.find_element(By.ID, "preview-card").get_attribute("data-contact")
    )
    first = int(browser.find_element(By.ID, "preview-card").get_attribute("data-contact"))
    assert first in contact_ids
    assert "Hello Ada" in browser.find_element(By.ID, "preview-card").text
    # The engine ticks on: a shown contact is never dialled by itself.
    await asyncio.sleep(2)
    assert await desk.conn.fetchval("SELECT count(*) FROM attempts") == 0

    # Skip without a reason: refused by the page and by the API.
    await in_browser(click, browser, "#preview-skip")
    assert "reason" in browser.find_element(By.ID, "message").text
    status, error = await desk.api("alice", "POST", "/api/v1/desk/preview/skip", {"reason": ""})
    assert status == 422, error
    browser.find_element(By.ID, "skip-reason").send_keys("customer asked for email only")
    await in_browser(click, browser, "#preview-skip")
    skipped = await desk.conn.fetchrow(
        "SELECT preview_agent, next_attempt_at FROM contacts WHERE id = $1", first
    )
    async with asyncio.timeout(5):
        while skipped["preview_agent"] is not None:
            await asyncio.sleep(0.1)
            skipped = await desk.conn.fetchrow(
                "SELECT preview_agent, next_attempt_at FROM contacts WHERE id = $1", first
            )
    # Back at its planned step, due after the campaign's skip delay (1 h by default).
    assert skipped["next_attempt_at"] > datetime.now(UTC) + timedelta(minutes=59)

    await in_browser(click, browser, "#preview-next")
    await in_browser(
        wait,
        browser,
        lambda d: (
            d.find_element(By.ID, "preview-card").get_attribute("data-contact")
            not in (None, "", str(first))
        ),
    )
    second = int(browser.find_element(By.ID, "preview-card").get_attribute("data-contact"))
    assert second != first
    await asyncio.sleep(1)
    assert await desk.conn.fetchval("SELECT count(*) FROM attempts") == 0
    called_at = datetime.now(UTC)
    await in_browser(click, browser, "#preview-call")
    # Agent-first: the agent's phone rings, then the customer's leg is placed.
    async with asyncio.timeout(30):
        while (
            attempt := await desk.conn.fetchrow(
                "SELECT id, contact_id, created_at, sent_at, agent FROM attempts"
            )
        ) is None or attempt["agent"] is None:
            await asyncio.sleep(0.1)
    assert attempt["contact_id"] == second and attempt["agent"] == AGENT
    assert attempt["created_at"] >= called_at
    await in_browser(
        wait,
        browser,
        lambda d: (
            d.find_element(By.TAG_NAME, "body").get_attribute("data-pop-attempt")
            == str(attempt["id"])
        ),
        15,
    )
    save_doc_screenshot(browser, tmp_path, "desk-preview.png")
    audit = await desk.ok("admin", "GET", "/api/v1/audit?action=previewSkip")
    assert audit["items"][0]["after"]["reason"] == "customer asked for email only"
    assert audit["items"][0]["username"] == "alice"


async def test_a_paused_agent_is_offered_no_call_until_they_resume(
    desk: Desk, browser: Any, tmp_path: Path
) -> None:
    campaign_id, _ = await desk_campaign(desk.conn, "desk-paused", [ANSWERS], mode="predictive")
    await in_browser(log_in, browser, desk.base + "/desk", "alice", AGENT_PASSWORD)
    await in_browser(click, browser, f"li[data-campaign='{campaign_id}'] button")
    await desk.roster_shows(AGENT, "ready")
    browser.find_element(By.CSS_SELECTOR, "#pause-reason option[value='lunch']").click()
    await in_browser(click, browser, "#pause")
    await in_browser(wait, browser, lambda d: state_line(d) == "paused", 10)
    assert "lunch" in browser.find_element(By.ID, "state").text
    row = await desk.roster_shows(AGENT, "paused")
    assert row["pause_reason"] == "lunch"

    await desk.ok("admin", "POST", f"/api/v1/campaigns/{campaign_id}/start")
    await asyncio.sleep(4)
    assert await desk.conn.fetchval("SELECT count(*) FROM attempts") == 0
    # ...and the metrics say why.
    metrics = await (await desk.session.get(desk.base + "/metrics")).text()
    assert f'dialer_agent_state{{agent="{AGENT}",queue="{QUEUE}",state="paused"}} 1.0' in metrics
    assert f'dialer_agents_paused{{queue="{QUEUE}",reason="lunch"}} 1.0' in metrics

    await in_browser(click, browser, "#resume")
    async with asyncio.timeout(20):
        while not await desk.conn.fetchval("SELECT count(*) FROM attempts"):
            await asyncio.sleep(0.1)
    audit = await desk.ok("admin", "GET", "/api/v1/audit?user=alice&action=deskPause")
    assert audit["items"][0]["after"]["pause_reason"] == "lunch"


async def test_a_supervisor_pauses_a_campaign_from_the_supervisor_view_and_the_audit_log_names_them(
    desk: Desk, browser: Any, tmp_path: Path
) -> None:
    campaign_id, _ = await desk_campaign(
        desk.conn, "desk-supervised", [ANSWERS, "+12025550231"], mode="predictive"
    )
    await desk.ok("alice", "POST", "/api/v1/desk/join", {"campaign_id": campaign_id})
    await desk.ok("admin", "POST", f"/api/v1/campaigns/{campaign_id}/start")
    await in_browser(log_in, browser, desk.base + "/desk/supervisor", "sam", SUPERVISOR_PASSWORD)
    row = f"#campaigns tr[data-campaign='{campaign_id}']"
    await in_browser(
        wait,
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .campaign-state").text == "running",
        10,
    )
    await in_browser(
        wait,
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#agents tr[data-agent='{AGENT}']"),
        10,
    )
    # Wait for a live call so the view has something to show.
    await in_browser(
        wait,
        browser,
        lambda d: (
            "On call" in d.find_element(By.ID, "agents").text
            or "Wrap-up" in d.find_element(By.ID, "agents").text
        ),
        30,
    )
    save_doc_screenshot(browser, tmp_path, "supervisor.png")
    await in_browser(click, browser, f"{row} button.pause-campaign")
    await in_browser(
        wait,
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .campaign-state").text == "paused",
        10,
    )
    assert await desk.conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id) == (
        "paused"
    )
    audit = await desk.ok(
        "admin", "GET", f"/api/v1/audit?action=pauseCampaign&target_id={campaign_id}"
    )
    entry = audit["items"][0]
    assert (entry["username"], entry["role"], entry["via"]) == ("sam", "supervisor", "desk")
    assert entry["target_type"] == "campaign"
    # A read-only user sees the view but no button to act with, and the API refuses them.
    await desk.ok(
        "admin",
        "POST",
        "/api/v1/users",
        {"username": "rita", "role": "read_only", "password": "rita-password-0001"},
    )
    await desk.log_in("rita", "rita-password-0001")
    status, _ = await desk.api("rita", "POST", f"/api/v1/campaigns/{campaign_id}/resume")
    assert status == 403


async def test_preview_customer_first_and_the_preview_timeout_dial_without_call(
    desk: Desk,
) -> None:
    campaign_id, contact_ids = await desk_campaign(
        desk.conn,
        "desk-preview-timeout",
        [ANSWERS],
        mode="preview",
        preview_dial="customer_first",
        preview_timeout_s=5,
    )
    await desk.ok("admin", "POST", f"/api/v1/campaigns/{campaign_id}/start")
    await desk.ok("alice", "POST", "/api/v1/desk/join", {"campaign_id": campaign_id})
    await desk.roster_shows(AGENT, "ready")
    shown = await desk.ok(
        "alice", "POST", "/api/v1/desk/preview/next", {"campaign_id": campaign_id}
    )
    assert shown["contact"]["contact"]["id"] == contact_ids[0]
    assert shown["contact"]["script"].startswith("Hello Ada")
    shown_at = datetime.now(UTC)
    # Nobody presses Call: the timeout dials it, customer first, to this agent.
    async with asyncio.timeout(30):
        while (
            attempt := await desk.conn.fetchrow("SELECT created_at, agent FROM attempts")
        ) is None or attempt["agent"] is None:
            await asyncio.sleep(0.1)
    assert attempt["agent"] == AGENT
    assert attempt["created_at"] >= shown_at + timedelta(seconds=4.5)
    desk_view = await desk.ok("alice", "GET", "/api/v1/desk")
    assert desk_view["preview"] is None  # dialled: no longer shown
    # Nothing else is due: the next contact is none.
    again = await desk.ok(
        "alice", "POST", "/api/v1/desk/preview/next", {"campaign_id": campaign_id}
    )
    assert again == {"contact": None}
    # The agent's phone (talk 6 s) ends the call.
    async with asyncio.timeout(30):
        while await desk.conn.fetchval("SELECT count(*) FROM attempts WHERE state <> 'ended'"):
            await asyncio.sleep(0.2)
