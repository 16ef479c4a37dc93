"""AmiClient against a fake AMI server: link failures and misbehaving peers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialer_server.config import AmiConfig
from dialer_server.errors import AmiAuthError, AmiDisconnected
from dialer_server.telephony.ami import MAX_AMI_MESSAGE_BYTES, AmiClient, AmiState

from ..support.fake_ami import FakeAmi


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


def _config(fake: FakeAmi, **overrides: Any) -> AmiConfig:
    values: dict[str, Any] = {
        "port": fake.port,
        "secret": fake.secret,
        "ping_interval_s": 0.3,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "connect_timeout_s": 2.0,
    }
    values.update(overrides)
    return AmiConfig(**values)


@contextlib.asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_action_cut_off_by_a_dropped_link_fails_and_is_never_resent(fake: FakeAmi) -> None:
    client = AmiClient(_config(fake))
    async with running(client):
        await client.wait_connected(5)
        originate = asyncio.create_task(
            client.send_action({"Action": "Originate", "Channel": "PJSIP/1@t"}, timeout=30)
        )
        await _until(lambda: len(fake.named("originate")) == 1)
        fake.drop()
        with pytest.raises(AmiDisconnected):
            await originate
        await _until(lambda: fake.logins == 2)
        await client.wait_connected(5)
        # panoramisk on its own would re-send the Originate after logging in again.
        await asyncio.sleep(0.3)
        assert len(fake.named("originate")) == 1


async def test_a_peer_that_stops_answering_pings_is_dropped_and_reconnected(
    fake: FakeAmi,
) -> None:
    client = AmiClient(_config(fake))
    states: list[AmiState] = []
    client.on_state_change(states.append)
    async with running(client):
        await client.wait_connected(5)
        fake.mute = True
        await _until(lambda: not client.connected)
        fake.mute = False
        await _until(lambda: client.connected and fake.logins == 2)
    assert states[:3] == [AmiState.CONNECTING, AmiState.CONNECTED, AmiState.DISCONNECTED]


async def test_refused_first_login_is_a_configuration_error(fake: FakeAmi) -> None:
    client = AmiClient(_config(fake, secret="wrong"))
    async with running(client) as task:
        with pytest.raises(AmiAuthError, match="AMI login refused for user 'dialer'"):
            await asyncio.wait_for(task, 5)


async def test_refused_login_after_an_outage_keeps_retrying(fake: FakeAmi) -> None:
    client = AmiClient(_config(fake))
    async with running(client) as task:
        await client.wait_connected(5)
        fake.secret = "rotated"
        fake.drop()
        await _until(lambda: len(fake.named("login")) >= 3)
        assert not task.done()
        assert not client.connected
        assert client.last_error is not None and "refused" in client.last_error
        fake.secret = "s3cret"
        await client.wait_connected(5)


async def test_server_down_then_up_reconnects_by_itself(fake: FakeAmi) -> None:
    client = AmiClient(_config(fake))
    async with running(client):
        await client.wait_connected(5)
        port = fake.port
        await fake.stop()
        await _until(lambda: not client.connected)
        with pytest.raises(AmiDisconnected):
            await client.send_action({"Action": "Ping"})
        await asyncio.sleep(0.5)  # several refused attempts, each backed off
        assert client.last_error == "connection refused"
        await fake.start(port)
        await client.wait_connected(5)


async def test_a_failing_event_handler_does_not_stop_event_delivery(fake: FakeAmi) -> None:
    client = AmiClient(_config(fake))
    seen: list[str] = []

    def broken(event: Any) -> None:
        raise RuntimeError("handler bug")

    client.subscribe(broken)
    client.subscribe(lambda e: seen.append(e.get("Uniqueid")))
    async with running(client):
        await client.wait_connected(5)
        fake.send_event(Event="Hangup", Uniqueid="a", Cause="16")
        fake.send_event(Event="Hangup", Uniqueid="b", Cause="16")
        await _until(lambda: seen == ["a", "b"])


async def test_action_timeout_is_enforced(fake: FakeAmi) -> None:
    client = AmiClient(_config(fake))
    async with running(client):
        await client.wait_connected(5)
        with pytest.raises(TimeoutError):
            await client.send_action({"Action": "Originate"}, timeout=0.2)


@pytest.mark.parametrize(
    ("what", "filler"),
    [
        # One line that never ends.
        ("line", b"A" * 65536),
        # Short lines, but never the blank line that ends the message.
        ("message", b"Variable: x\r\n" * 4096),
    ],
)
async def test_a_peer_that_never_ends_a_line_or_a_message_is_cut_off_not_buffered(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture, what: str, filler: bytes
) -> None:
    # No Ping watchdog in the way: the bound alone must cut the flood off.
    client = AmiClient(_config(fake, ping_interval_s=60))
    async with running(client):
        await client.wait_connected(5)
        with caplog.at_level("WARNING", logger="dialer_server.telephony.ami"):
            # 512 MiB if nobody stops it: the client must drop the link long before.
            flood = asyncio.create_task(fake.flood(b"Event: Flood\r\nValue: ", filler, 2**29))
            await _until(lambda: not client.connected, timeout=20)
            sent = await asyncio.wait_for(flood, 20)
        # What the kernel's socket buffers held is all that went out beyond the bound.
        assert sent < MAX_AMI_MESSAGE_BYTES + 16 * 2**20
        warnings = [r for r in caplog.records if r.name == "dialer_server.telephony.ami"]
        assert any(
            f"AMI peer sent a {what}" in r.getMessage() and r.levelname == "WARNING"
            for r in warnings
        ), [r.getMessage() for r in warnings]
        assert not any(r.exc_info for r in warnings)
        # A fresh link, as after any other drop.
        await _until(lambda: fake.logins == 2)
        await client.wait_connected(5)
        assert (await client.send_action({"Action": "Ping"}))[0]["Ping"] == "Pong"


class _Observer:
    def __init__(self) -> None:
        self.replied: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def action_replied(self, action: str, seconds: float) -> None:
        if action != "Login":
            self.replied.append(action)

    def action_failed(self, action: str, reason: str) -> None:
        self.failed.append((action, reason))


async def test_a_posted_action_is_counted_when_answered_and_failed_when_the_link_drops(
    fake: FakeAmi,
) -> None:
    # Nobody awaits a posted action (a call's DBDel): its reply, or the link's loss
    # before it, still reaches the observers, once.
    client = AmiClient(_config(fake, ping_interval_s=30))
    observer = _Observer()
    client.observe_actions(observer)
    async with running(client):
        await client.wait_connected(5)
        client.post_action({"Action": "DBDel", "Family": "dialer", "Key": "a"})
        await _until(lambda: observer.replied == ["DBDel"])
        assert fake.named("dbdel")[0]["key"] == "a"
        fake.unanswered.add("dbdel")
        client.post_action({"Action": "DBDel", "Family": "dialer", "Key": "b"})
        await _until(lambda: len(fake.named("dbdel")) == 2)
        fake.drop()
        await _until(lambda: observer.failed == [("DBDel", "disconnected")])
        await _until(lambda: fake.logins == 2)
        await client.wait_connected(5)
        fake.unanswered.discard("dbdel")
        client.post_action({"Action": "DBDel", "Family": "dialer", "Key": "c"})
        await _until(lambda: observer.replied == ["DBDel", "DBDel"])
    assert observer.failed == [("DBDel", "disconnected")]
    assert len(fake.named("dbdel")) == 3
