"""SMS: the providers that send a campaign's messages, and the replies that come back.

Two providers behind one ``SmsProvider`` protocol:

- ``AmiSmsProvider`` sends a SIP MESSAGE through Asterisk (AMI ``MessageSend``
  over a PJSIP endpoint, normally the carrier trunk). AMI answers once
  Asterisk's SIP stack took the message; the far end's own answer (202, 403...)
  only reaches Asterisk's log. "Sent" therefore means "handed to the trunk",
  never "delivered": there is no delivery report to wait for.
- ``HttpSmsProvider`` POSTs a JSON body built from a template to a gateway;
  a 2xx answer means the gateway took the message.

Replies arrive either as SIP MESSAGE from the carrier, which the dialplan
context [dialer-sms-in] turns into ``UserEvent: DialerSmsIn`` (parsed by
``inbound_from_event``), or as a gateway's HTTP callback (``inbound_from_http``).

Sending never raises for a failed message: every outcome is an ``SmsResult``
whose ``detail`` is meant for the attempt's row.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import re
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from ..config import SMS_PROVIDERS, SmsConfig
from ..errors import AmiError, ConfigError

logger = logging.getLogger(__name__)

# The contact fields a message text may use, as {param1} ... {param12}, {external_id}.
TEMPLATE_FIELDS = frozenset({f"param{i}" for i in range(1, 13)} | {"external_id"})

# How much of a gateway's answer is kept for the attempt's row.
_MAX_DETAIL = 300
_MAX_REPLY_BYTES = 4096

_NUMBER = re.compile(r"\+?[0-9]{1,32}")
# Visual separators people and gateways put in numbers: "+1 (202) 555-0143".
_SEPARATORS = re.compile(r"[\s().\-]")
# The user of a sip:/sips: URI (user parameters after ";" dropped), or a tel: number.
_URI_NUMBER = re.compile(
    r"(?:(?:pj)?sips?:([^@;>?\s]+)(?:;[^@>\s]*)?@|tel:([^;>?\s]+))", re.IGNORECASE
)
_TEXT_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_BODY_PLACEHOLDER = re.compile(r"\{(number|text|attempt_id)\}")
# PJSIP endpoint names are pjsip.conf section names; "/" and "@" would change
# the meaning of a MessageSend destination.
_ENDPOINT = re.compile(r"[^\s/@<>\"]+")


class ActionSender(Protocol):
    """Sends an AMI action: an AmiClient, or the pool of PBXs (the first one up)."""

    async def send_action(
        self, action: Mapping[str, str | list[str]], timeout: float | None = None
    ) -> list[Any]: ...


@dataclasses.dataclass(frozen=True)
class SmsResult:
    """What became of one message. ``detail``: the provider's answer or the error."""

    sent: bool
    detail: str


class SmsProvider(Protocol):
    name: str

    async def send(self, number: str, text: str, *, attempt_id: str) -> SmsResult:
        """Hand one message to the provider; never raises for a failed send."""
        ...


class NullSmsProvider:
    """sms.provider = "none": every message is reported as not sent."""

    name = "none"

    async def send(self, number: str, text: str, *, attempt_id: str) -> SmsResult:
        return SmsResult(False, "no SMS provider configured")


class AmiSmsProvider:
    """SIP MESSAGE through Asterisk: AMI ``MessageSend`` over a PJSIP endpoint.

    The destination is ``pjsip:PJSIP/<number>@<endpoint>``, the dial-string
    form of res_pjsip_messaging (Asterisk 18+): the endpoint's AOR contact
    (the carrier's address) becomes the Request-URI with ``<number>`` as its
    user, and the message leaves with the endpoint's transport and settings.
    So the trunk is named once, in pjsip.conf, as it is for calls.
    """

    name = "ami"

    def __init__(self, ami: ActionSender, endpoint: str, from_uri: str, timeout_s: float) -> None:
        if not _ENDPOINT.fullmatch(endpoint):
            raise ValueError(f"not a PJSIP endpoint name: {endpoint!r}")
        if "\r" in from_uri or "\n" in from_uri:
            raise ValueError("the SMS From must be a single line")
        self._ami = ami
        self.endpoint = endpoint
        self.from_uri = from_uri
        self.timeout_s = timeout_s

    def action(self, number: str, text: str) -> dict[str, str]:
        """The AMI action for one message (``number`` must be valid, see send)."""
        action = {
            "Action": "MessageSend",
            "Destination": message_destination(self.endpoint, number),
            # Base64: a text with a line break would otherwise end the AMI
            # header early (and could inject headers of its own).
            "Base64Body": base64.b64encode(text.encode()).decode("ascii"),
        }
        if self.from_uri:
            action["From"] = self.from_uri
        return action

    async def send(self, number: str, text: str, *, attempt_id: str) -> SmsResult:
        clean = _clean_number(number)
        if clean is None:
            return SmsResult(False, f"not a phone number: {number!r}")
        try:
            reply = await self._ami.send_action(self.action(clean, text), timeout=self.timeout_s)
        except TimeoutError:
            return SmsResult(
                False,
                f"no answer from Asterisk to MessageSend within {self.timeout_s:g} s "
                "(the message may still have left)",
            )
        except AmiError as exc:
            return SmsResult(False, f"AMI: {exc}")
        first = reply[0] if reply else {}
        message = str(first.get("Message") or "").strip()
        if first.get("Response") == "Success":
            return SmsResult(
                True,
                f"handed to PJSIP endpoint {self.endpoint} (AMI gives no delivery report): "
                f"{message or 'Success'}",
            )
        return SmsResult(False, f"Asterisk did not send it: {message or 'no reason given'}")


def message_destination(endpoint: str, number: str) -> str:
    """The MessageSend destination for ``number`` over a PJSIP endpoint."""
    return f"pjsip:PJSIP/{number}@{endpoint}"


class HttpSmsProvider:
    """A generic HTTP gateway: POST a JSON body, 2xx means the gateway took it.

    ``body_template`` is JSON text in which ``{number}``, ``{text}`` and
    ``{attempt_id}`` stand for whole JSON values: each is replaced by a JSON
    string (quotes, escapes and all), so the template reads
    ``{"to": {number}, "text": {text}}`` with no quotes around placeholders.
    Raises ValueError when the template cannot give valid JSON.
    """

    name = "http"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        auth_header: str,
        body_template: str,
        timeout_s: float,
    ) -> None:
        check_body_template(body_template)
        self._session = session
        self.url = url
        self._auth_header = auth_header
        self.body_template = body_template
        self.timeout_s = timeout_s

    def body(self, number: str, text: str, attempt_id: str) -> str:
        values = {"number": number, "text": text, "attempt_id": attempt_id}
        return _BODY_PLACEHOLDER.sub(
            lambda m: json.dumps(values[m.group(1)], ensure_ascii=False), self.body_template
        )

    async def send(self, number: str, text: str, *, attempt_id: str) -> SmsResult:
        headers = {"Content-Type": "application/json"}
        if self._auth_header:
            headers["Authorization"] = self._auth_header
        body = self.body(number, text, attempt_id).encode()
        try:
            status, reply = await asyncio.wait_for(self._post(body, headers), self.timeout_s)
        except TimeoutError:
            return SmsResult(
                False,
                f"no answer from the SMS gateway within {self.timeout_s:g} s "
                "(it may still have taken the message)",
            )
        except (aiohttp.ClientError, OSError) as exc:
            return SmsResult(False, f"SMS gateway unreachable: {exc or type(exc).__name__}")
        detail = f"HTTP {status}: {reply}" if reply else f"HTTP {status}"
        return SmsResult(200 <= status < 300, detail)

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        # A redirect is reported, not followed: re-POSTing an SMS elsewhere is
        # not ours to decide.
        async with self._session.post(
            self.url, data=body, headers=headers, allow_redirects=False
        ) as response:
            raw = await response.content.read(_MAX_REPLY_BYTES)
            return response.status, _one_line(raw.decode("utf-8", errors="replace"))


def check_body_template(template: str) -> None:
    """Raise ValueError unless ``template`` gives valid JSON once filled in."""
    if "{number}" not in template or "{text}" not in template:
        raise ValueError("the SMS body template must contain {number} and {text}")
    sample = _BODY_PLACEHOLDER.sub(lambda m: json.dumps(f'"{m.group(1)}"\n'), template)
    try:
        json.loads(sample)
    except ValueError as exc:
        raise ValueError(
            "the SMS body template is not valid JSON once filled in (placeholders stand for "
            f'whole JSON strings: write {{"to": {{number}}}}, not {{"to": "{{number}}"}}): {exc}'
        ) from None


def build_provider(
    config: SmsConfig, ami: ActionSender, session: aiohttp.ClientSession
) -> SmsProvider:
    """The provider the [sms] settings name. Raises ConfigError on a bad setting."""
    if config.provider == "none":
        return NullSmsProvider()
    if config.provider == "ami":
        try:
            return AmiSmsProvider(ami, config.endpoint, config.from_uri, config.timeout_s)
        except ValueError as exc:
            raise ConfigError(f"config key sms.endpoint/sms.from_uri: {exc}") from None
    if config.provider == "http":
        try:
            return HttpSmsProvider(
                session, config.url, config.auth_header, config.body_template, config.timeout_s
            )
        except ValueError as exc:
            raise ConfigError(f"config key sms.body_template: {exc}") from None
    raise ConfigError(f"config key sms.provider must be one of {', '.join(SMS_PROVIDERS)}")


# --- message texts ----------------------------------------------------------------


def render_text(template: str, params: Mapping[str, str | None]) -> str:
    """Fill a message text from a contact's fields; never raises.

    ``{param1}`` ... ``{param12}`` and ``{external_id}`` take the contact's
    values; a missing or None value, or any other placeholder, becomes empty.
    ``{{`` and ``}}`` give literal braces; a lone brace is kept as it is.
    """

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1).strip()
        if name not in TEMPLATE_FIELDS:
            return ""
        value = params.get(name)
        return "" if value is None else str(value)

    return _TEXT_TOKEN.sub(fill, template)


def unknown_placeholders(template: str) -> list[str]:
    """Placeholders in a message text that render_text would leave empty."""
    return [
        m.group(1)
        for m in _TEXT_TOKEN.finditer(template)
        if m.group(1) is not None and m.group(1).strip() not in TEMPLATE_FIELDS
    ]


# --- replies ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InboundSms:
    """A reply from a contact. ``number`` is the sender as received, not normalised
    (digits with an optional leading +); ``to`` is our number it was sent to, when known;
    ``message_id`` identifies the message (a SIP MESSAGE's Call-ID and CSeq), when known:
    every daemon sees the same event, and the database keeps one reply per id."""

    number: str
    text: str
    received_at: datetime
    to: str = ""
    message_id: str = ""


def inbound_from_event(
    event: Mapping[str, str], *, now: datetime | None = None
) -> InboundSms | None:
    """The reply in a ``UserEvent: DialerSmsIn`` ([dialer-sms-in]); None for other events.

    A DialerSmsIn whose sender is not a phone number, or whose Body is not
    base64, is logged and gives None. ``received_at`` is ``now`` (default: this
    process's clock), as the dialer times events by its own clock.
    """
    headers = {str(key).lower(): str(value) for key, value in event.items()}
    if headers.get("event", "").lower() != "userevent":
        return None
    if headers.get("userevent", "").lower() != "dialersmsin":
        return None
    number = _number_from_uri(headers.get("from", ""))
    if number is None:
        logger.warning(
            "SMS reply ignored: sender %r is not a phone number",
            headers.get("from", ""),
            extra={"action": "sms_inbound"},
        )
        return None
    try:
        raw = base64.b64decode(headers.get("body", ""), validate=True)
    except (binascii.Error, ValueError):
        logger.warning(
            "SMS reply from %s ignored: its Body is not base64 (check [dialer-sms-in])",
            number,
            extra={"action": "sms_inbound"},
        )
        return None
    return InboundSms(
        number=number,
        text=raw.decode("utf-8", errors="replace"),
        received_at=now or datetime.now(UTC),
        to=_number_from_uri(headers.get("to", "")) or "",
        message_id=headers.get("messageid", "").strip(),
    )


def inbound_from_http(payload: Mapping[str, Any], *, now: datetime | None = None) -> InboundSms:
    """The reply in a gateway callback: a JSON object ``{"from": "+1202...", "text": "..."}``.

    Other keys are ignored. Raises ValueError, with a message fit for the HTTP
    answer, when the payload is not such an object.
    """
    if not isinstance(payload, Mapping):
        raise ValueError('an SMS callback must be a JSON object with "from" and "text"')
    sender = payload.get("from")
    text = payload.get("text")
    if not isinstance(sender, str) or not sender.strip():
        raise ValueError('an SMS callback needs "from": the sender\'s phone number, as a string')
    number = _clean_number(sender.strip().removeprefix("tel:"))
    if number is None:
        raise ValueError(f'an SMS callback\'s "from" is not a phone number: {sender!r}')
    if not isinstance(text, str):
        raise ValueError('an SMS callback needs "text": the message, as a string')
    return InboundSms(number=number, text=text, received_at=now or datetime.now(UTC))


def _clean_number(raw: str) -> str | None:
    number = _SEPARATORS.sub("", raw)
    return number if _NUMBER.fullmatch(number) else None


def _number_from_uri(value: str) -> str | None:
    """The user part of the first sip:/sips:/tel: URI in ``value``, if a number."""
    match = _URI_NUMBER.search(value)
    if match is None:
        return None
    return _clean_number(urllib.parse.unquote(match.group(1) or match.group(2)))


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"
