"""SMS providers and replies.

Message texts, the HTTP gateway (against a local aiohttp server) and reply
parsing are checked on their own; the AMI provider runs through the real
Asterisk of the local stack to the sipp far end, which answers SMS to numbers
ending in 777 with a reply of its own ("Re: <the text>") that comes back
through [dialer-sms-in] as UserEvent DialerSmsIn (scripts/sipp/farend.xml).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from panoramisk.message import Message

from dialer_server.config import AmiConfig, SmsConfig, load_config
from dialer_server.errors import ConfigError
from dialer_server.telephony.ami import AmiClient
from dialer_server.telephony.sms import (
    AmiSmsProvider,
    HttpSmsProvider,
    InboundSms,
    NullSmsProvider,
    SmsResult,
    build_provider,
    inbound_from_event,
    inbound_from_http,
    render_text,
    unknown_placeholders,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


DEFAULT_TEMPLATE = SmsConfig().body_template


@pytest.mark.parametrize(
    ("template", "params", "expected"),
    [
        ("Hello {param1}!", {"param1": "Ann"}, "Hello Ann!"),
        ("{param1} {param12} #{external_id}", {"param12": "z", "external_id": "42"}, " z #42"),
        ("Hi {param2}", {"param2": None}, "Hi "),
        ("Hi {param3}", {}, "Hi "),
        ("Hi {name}{param13}{}", {"name": "x", "param13": "y"}, "Hi "),
        ("Hi { param1 }", {"param1": "Ann"}, "Hi Ann"),
        ("{{param1}} = {param1}", {"param1": "Ann"}, "{param1} = Ann"),
        ("{{{param1}}}", {"param1": "Ann"}, "{Ann}"),
        ("a { lone brace } and } and {", {}, "a  and } and {"),
        ("{param1}", {"param1": "{param2}"}, "{param2}"),
        ("", {"param1": "x"}, ""),
        ("Код {param1} ✓", {"param1": "ñ"}, "Код ñ ✓"),
    ],
)
def test_render_text_fills_contact_fields(
    template: str, params: dict[str, str | None], expected: str
) -> None:
    assert render_text(template, params) == expected


def test_unknown_placeholders_are_listed_for_validation() -> None:
    assert unknown_placeholders("{param1} {name} {{x}} {param13} {external_id}") == [
        "name",
        "param13",
    ]


@dataclass
class Gateway:
    url: Callable[[str], str]
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    requests: list[tuple[str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> None:
        requests.append((request.path, dict(request.headers), await request.read()))

    async def accepted(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"id": "gw-1", "status": "queued"}, status=202)

    async def broken(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=500, text="internal\nerror")

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.sleep(30)
        return web.Response(status=200)

    async def moved(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/accepted")

    app = web.Application()
    app.router.add_post("/accepted", accepted)
    app.router.add_post("/broken", broken)
    app.router.add_post("/slow", slow)
    app.router.add_post("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Gateway(url=lambda path: str(server.make_url(path)), requests=requests)
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def http_provider(
    session: aiohttp.ClientSession, url: str, timeout_s: float = 5.0, auth: str = "Bearer xyz"
) -> HttpSmsProvider:
    return HttpSmsProvider(session, url, auth, DEFAULT_TEMPLATE, timeout_s)


async def test_http_2xx_is_sent_with_json_body_and_authorization(
    gateway: Gateway, session: aiohttp.ClientSession
) -> None:
    text = 'Say "yes"\nor \\no\t{param1} ✓ ñ'
    result = await http_provider(session, gateway.url("/accepted")).send(
        "+12025550143", text, attempt_id="att-1"
    )
    assert result.sent
    assert result.detail.startswith("HTTP 202: ")
    assert '"id": "gw-1"' in result.detail
    [(_, headers, body)] = gateway.requests
    assert headers["Authorization"] == "Bearer xyz"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"to": "+12025550143", "text": text, "id": "att-1"}


async def test_http_without_auth_header_sends_none(
    gateway: Gateway, session: aiohttp.ClientSession
) -> None:
    result = await http_provider(session, gateway.url("/accepted"), auth="").send(
        "1", "t", attempt_id="a"
    )
    assert result.sent
    assert "Authorization" not in gateway.requests[0][1]


async def test_http_500_is_not_sent_and_keeps_the_gateways_answer(
    gateway: Gateway, session: aiohttp.ClientSession
) -> None:
    result = await http_provider(session, gateway.url("/broken")).send(
        "+12025550143", "hi", attempt_id="att-2"
    )
    assert result == SmsResult(False, "HTTP 500: internal error")


async def test_http_redirect_is_not_followed(
    gateway: Gateway, session: aiohttp.ClientSession
) -> None:
    result = await http_provider(session, gateway.url("/moved")).send("1", "t", attempt_id="a")
    assert not result.sent
    assert result.detail.startswith("HTTP 302")
    assert [path for path, _, _ in gateway.requests] == ["/moved"]


async def test_http_timeout_is_not_sent(gateway: Gateway, session: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await http_provider(session, gateway.url("/slow"), timeout_s=0.3).send(
        "+12025550143", "hi", attempt_id="att-3"
    )
    assert not result.sent
    assert "within 0.3 s" in result.detail
    assert loop.time() - started < 3


async def test_http_unreachable_gateway_is_not_sent(session: aiohttp.ClientSession) -> None:
    # A port nobody listens on: bind one, then close it.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    result = await http_provider(session, f"http://127.0.0.1:{port}/sms").send(
        "1", "t", attempt_id="a"
    )
    assert not result.sent
    assert result.detail.startswith("SMS gateway unreachable: ")


@pytest.mark.parametrize(
    "template",
    [
        '{"to": "{number}", "text": {text}}',  # a placeholder is a whole JSON string
        '{"to": {number}, "text": {text}',
        '{"text": {text}}',
    ],
)
def test_http_body_template_must_give_json(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        HttpSmsProvider(None, "http://x", "", template, 1.0)  # type: ignore[arg-type]


def test_http_body_template_may_nest_and_repeat_placeholders() -> None:
    template = '{"msg": {"to": [{number}], "body": {text}, "ref": {attempt_id}}, "echo": {text}}'
    provider = HttpSmsProvider(None, "http://x", "", template, 1.0)  # type: ignore[arg-type]
    assert json.loads(provider.body("+1", 'a"b', "r")) == {
        "msg": {"to": ["+1"], "body": 'a"b', "ref": "r"},
        "echo": 'a"b',
    }


async def test_null_provider_sends_nothing() -> None:
    result = await NullSmsProvider().send("+12025550143", "hi", attempt_id="a")
    assert result == SmsResult(False, "no SMS provider configured")


def test_ami_action_is_message_send_over_the_endpoint() -> None:
    provider = AmiSmsProvider(AmiClient(AmiConfig()), "carrier", "15550009999", 5.0)
    action = provider.action("+12025550143", "two\nlines ✓")
    assert action == {
        "Action": "MessageSend",
        "Destination": "pjsip:PJSIP/+12025550143@carrier",
        "Base64Body": base64.b64encode("two\nlines ✓".encode()).decode(),
        "From": "15550009999",
    }
    assert "From" not in AmiSmsProvider(AmiClient(AmiConfig()), "c", "", 5.0).action("1", "t")


async def test_ami_without_a_connection_is_not_sent() -> None:
    provider = AmiSmsProvider(AmiClient(AmiConfig()), "carrier", "", 5.0)
    result = await provider.send("+12025550143", "hi", attempt_id="a")
    assert result == SmsResult(False, "AMI: The AMI connection is down.")


async def test_ami_refuses_what_is_not_a_number() -> None:
    provider = AmiSmsProvider(AmiClient(AmiConfig()), "carrier", "", 5.0)
    result = await provider.send("123@evil.example", "hi", attempt_id="a")
    assert result == SmsResult(False, "not a phone number: '123@evil.example'")


@pytest.mark.parametrize("endpoint", ["", "carrier/x", "a@b", "two words"])
def test_ami_endpoint_name_is_checked(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        AmiSmsProvider(AmiClient(AmiConfig()), endpoint, "", 5.0)


async def test_build_provider_follows_the_sms_settings() -> None:
    ami = AmiClient(AmiConfig())
    async with aiohttp.ClientSession() as session:
        assert isinstance(build_provider(SmsConfig(), ami, session), NullSmsProvider)
        provider = build_provider(SmsConfig(provider="ami", endpoint="trunk2"), ami, session)
        assert isinstance(provider, AmiSmsProvider)
        assert (provider.name, provider.endpoint) == ("ami", "trunk2")
        http = build_provider(SmsConfig(provider="http", url="http://gw/sms"), ami, session)
        assert isinstance(http, HttpSmsProvider)
        assert http.name == "http"
        with pytest.raises(ConfigError, match=r"sms\.body_template"):
            build_provider(
                SmsConfig(provider="http", url="http://gw", body_template="{number} {text}"),
                ami,
                session,
            )


def test_sms_settings_load_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "dialer.toml"
    path.write_text('[sms]\nprovider = "http"\nurl = "https://gw.example/sms"\ntimeout_s = 3\n')
    config = load_config(path, env={"DIALER_SMS_AUTH_HEADER": "Bearer s3cret"})
    assert config.sms.provider == "http"
    assert config.sms.url == "https://gw.example/sms"
    assert config.sms.timeout_s == 3.0
    assert config.sms.auth_header == "Bearer s3cret"
    assert "s3cret" not in repr(config)
    assert load_config(env={}).sms == SmsConfig()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIALER_SMS_PROVIDER": "smpp"}, "sms.provider must be one of none, ami, http"),
        ({"DIALER_SMS_PROVIDER": "http"}, "sms.url must be an http"),
        ({"DIALER_SMS_PROVIDER": "ami", "DIALER_SMS_ENDPOINT": ""}, "sms.endpoint"),
        ({"DIALER_SMS_TIMEOUT_S": "0"}, "sms.timeout_s must be > 0"),
        ({"DIALER_SMS_SENDER": "x"}, "unknown config key sms.sender"),
    ],
)
def test_bad_sms_settings_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env=env)


def dialer_sms_in(sender: str, body: bytes, **extra: str) -> dict[str, str]:
    return {
        "Event": "UserEvent",
        "UserEvent": "DialerSmsIn",
        "Channel": "Message/ast_msg_queue",
        "From": sender,
        "To": "pjsip:15550009999@127.0.0.1",
        "Body": base64.b64encode(body).decode(),
        **extra,
    }


def test_inbound_event_gives_sender_text_and_our_number() -> None:
    event = dialer_sms_in("<sip:+12025550143@203.0.113.5>", "STOP, please\n✓".encode())
    assert inbound_from_event(event, now=NOW) == InboundSms(
        number="+12025550143", text="STOP, please\n✓", received_at=NOW, to="15550009999"
    )


def test_inbound_event_carries_the_sip_message_id() -> None:
    event = dialer_sms_in("sip:+12025550143@h", b"yes", MessageId=" a84b4c76e66710@pc33/1 MESSAGE")
    inbound = inbound_from_event(event, now=NOW)
    assert inbound is not None and inbound.message_id == "a84b4c76e66710@pc33/1 MESSAGE"
    # An older dialplan sends none: the reply is still read, without an id.
    inbound = inbound_from_event(dialer_sms_in("sip:+12025550143@h", b"yes"), now=NOW)
    assert inbound is not None and inbound.message_id == ""


def test_inbound_event_from_panoramisk_is_read_case_insensitively() -> None:
    event = dialer_sms_in("sip:15550100777@h", b"yes")
    message = Message({key.lower(): value for key, value in event.items()})
    inbound = inbound_from_event(message, now=NOW)
    assert inbound is not None and (inbound.number, inbound.text) == ("15550100777", "yes")


def test_inbound_event_without_clock_uses_now() -> None:
    inbound = inbound_from_event(dialer_sms_in("sip:1555@h", b""))
    assert inbound is not None and inbound.text == ""
    assert abs((datetime.now(UTC) - inbound.received_at).total_seconds()) < 5


@pytest.mark.parametrize(
    "event",
    [
        {"Event": "Hangup", "Uniqueid": "1"},
        {"Event": "UserEvent", "UserEvent": "DialerAmd", "From": "sip:1@h"},
        dialer_sms_in("<sip:anonymous@h>", b"hi"),
        dialer_sms_in("<sip:203.0.113.5>", b"hi"),
        {**dialer_sms_in("sip:1555@h", b""), "Body": "not base64!"},
    ],
)
def test_other_or_unusable_events_give_none(event: dict[str, str]) -> None:
    assert inbound_from_event(event, now=NOW) is None


def test_inbound_http_callback() -> None:
    payload = {"from": "+1 (202) 555-0143", "text": "Yes, call me", "id": "gw-9"}
    assert inbound_from_http(payload, now=NOW) == InboundSms("+12025550143", "Yes, call me", NOW)
    assert inbound_from_http({"from": "tel:+12025550143", "text": ""}, now=NOW).text == ""


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["+12025550143", "hi"], "JSON object"),
        ({"text": "hi"}, 'needs "from"'),
        ({"from": 12025550143, "text": "hi"}, 'needs "from"'),
        ({"from": "  ", "text": "hi"}, 'needs "from"'),
        ({"from": "ACME", "text": "hi"}, "not a phone number: 'ACME'"),
        ({"from": "+12025550143"}, 'needs "text"'),
        ({"from": "+12025550143", "text": None}, 'needs "text"'),
    ],
)
def test_inbound_http_rejects_bad_payloads(payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inbound_from_http(payload)


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
