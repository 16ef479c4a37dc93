"""SMS providers and replies.

Message texts, the HTTP gateway (against a local aiohttp server) and reply
parsing are checked on their own; the AMI provider runs through the real
Asterisk of the local stack to the sipp far end, which answers SMS to numbers
ending in 777 with a reply of its own ("Re: <the text>") that comes back
through [dialer-sms-in] as UserEvent DialerSmsIn (scripts/sipp/farend.xml).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from dialer_server.telephony.ami import AmiClient
from dialer_server.telephony.sms import (
    AmiSmsProvider,
    InboundSms,
    inbound_from_event,
)


@dataclass
class Ami:
    client: AmiClient
    sms_in: asyncio.Queue[InboundSms]


@pytest.fixture
async def ami(stack: Any) -> AsyncIterator[Ami]:
    client = AmiClient(stack.ami_config())
    sms_in: asyncio.Queue[InboundSms] = asyncio.Queue()

    def on_event(event: Any) -> None:
        inbound = inbound_from_event(event)
        if inbound is not None:
            sms_in.put_nowait(inbound)

    client.subscribe(on_event)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    await client.wait_connected(15)
    yield Ami(client, sms_in)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


async def next_reply(sms_in: asyncio.Queue[InboundSms], marker: str) -> InboundSms:
    """The first reply whose text carries ``marker`` (another test may share the stack)."""
    while True:
        inbound = await asyncio.wait_for(sms_in.get(), 10)
        if marker in inbound.text:
            return inbound


async def asterisk_sip_address(client: AmiClient) -> tuple[str, int]:
    """Where the carrier endpoint's transport listens, as Asterisk reports it."""
    reply = await client.send_action({"Action": "PJSIPShowEndpoint", "Endpoint": "carrier"})
    for message in reply:
        if message.get("Event") == "TransportDetail":
            host, _, port = str(message["Bind"]).rpartition(":")
            return host, int(port)
    raise AssertionError(f"no TransportDetail for endpoint carrier: {reply}")


@pytest.mark.stack
async def test_sms_through_asterisk_reaches_the_far_end_which_replies(ami: Ami) -> None:
    marker = uuid.uuid4().hex
    text = f'Hi "Ann",\nyour code is 42; ✓ {marker}'
    provider = AmiSmsProvider(ami.client, "carrier", "15550009999", timeout_s=10)

    result = await provider.send("15550100777", text, attempt_id=marker)

    assert result.sent, result.detail
    assert "no delivery report" in result.detail
    # sipp answered a MESSAGE whose Request-URI user was the number, from our
    # From, and echoed the text it received: its reply came back through
    # [dialer-sms-in] as UserEvent DialerSmsIn.
    reply = await next_reply(ami.sms_in, marker)
    assert reply.number == "15550100777"
    assert reply.to == "15550009999"
    assert reply.text == f"Re: {text}"


@pytest.mark.stack
async def test_sms_over_an_unknown_endpoint_is_not_sent(ami: Ami) -> None:
    provider = AmiSmsProvider(ami.client, "no-such-endpoint", "", timeout_s=10)
    result = await provider.send("15550100777", "hi", attempt_id="a")
    assert not result.sent
    assert result.detail == "Asterisk did not send it: Message failed to send."


class _SipPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.responses: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.responses.put_nowait(data.decode("utf-8", errors="replace"))


@pytest.mark.stack
async def test_inbound_sip_message_from_the_carrier_becomes_dialer_sms_in(ami: Ami) -> None:
    host, port = await asterisk_sip_address(ami.client)
    loop = asyncio.get_running_loop()
    # From 127.0.0.1, so the carrier's identify (match = 127.0.0.1) claims it.
    transport, peer = await loop.create_datagram_endpoint(_SipPeer, local_addr=("127.0.0.1", 0))
    try:
        local_port = transport.get_extra_info("sockname")[1]
        marker = uuid.uuid4().hex
        body = f"STOP, please\nno more calls ✓ {marker}".encode()
        call_id = f"{marker}@127.0.0.1"
        request = (
            f"MESSAGE sip:+15550009999@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{marker};rport\r\n"
            "Max-Forwards: 70\r\n"
            f'From: "Doe, John" <sip:+12025550143@127.0.0.1:{local_port}>;tag={marker[:8]}\r\n'
            f"To: <sip:+15550009999@{host}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 MESSAGE\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        ).encode() + body
        transport.sendto(request, (host, port))

        response = await asyncio.wait_for(peer.responses.get(), 10)
        assert response.startswith("SIP/2.0 202 "), response
        assert call_id in response
        inbound = await next_reply(ami.sms_in, marker)
    finally:
        transport.close()
    assert inbound.number == "+12025550143"
    assert inbound.to == "+15550009999"
    assert inbound.text == body.decode()
    # [dialer-sms-in] passes the request's Call-ID and CSeq: what makes it one message.
    assert inbound.message_id == f"{call_id}/1 MESSAGE"
