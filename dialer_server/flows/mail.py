"""Email tasks' messages: rendered from the task's templates, sent over SMTP.

Sent with aiosmtplib (every SMTP command bounded by the timeout, STARTTLS or
implicit TLS as configured). A message carries its pass's idempotency key as its
Message-ID (and ``X-Dialer-Idempotency-Key``): a task run again after a daemon died
mid-send sends the same key, so a mail system or a reader can drop the copy.

What the server answered decides: accepted is sent; a permanent refusal (5xx, an
address that is not one) fails the task with the reason; anything temporary (4xx,
no connection, a timeout) is tried again by the executor.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from ..config import SmtpConfig
from ..telephony.sms import render_text

# An address as a mail server takes it: no display name, no spaces, one @.
_ADDRESS = re.compile(r"[^@\s<>,;\"()\[\]\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}")
_MAX_ERROR = 300


@dataclasses.dataclass(frozen=True)
class Sent:
    """What sending gave: ``ok``; else ``error`` and whether to try again."""

    ok: bool
    error: str = ""
    temporary: bool = False
    bad_address: bool = False


def one_line(text: str) -> str:
    """A header value on one line (a template's line break cannot add a header)."""
    return " ".join(text.split())


def build_message(*, key: str, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = one_line(subject)
    message["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "dialer.invalid"
    message["Message-ID"] = f"<{key}@{domain}>"
    message["X-Dialer-Idempotency-Key"] = key
    message.set_content(body)
    return message


def render(options: Mapping[str, object], params: Mapping[str, str | None]) -> tuple[str, str, str]:
    """(to, subject, body) of an email task for a contact's fields."""
    return (
        one_line(render_text(str(options["to"]), params)),
        render_text(str(options["subject"]), params),
        render_text(str(options["body"]), params),
    )


def valid_address(address: str) -> bool:
    return bool(_ADDRESS.fullmatch(address))


async def send(config: SmtpConfig, message: EmailMessage, timeout_s: float) -> Sent:
    """Hand one message to the configured SMTP server; never raises."""
    if not config.host:
        return Sent(False, "no SMTP server configured (smtp.host)")
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            use_tls=config.tls == "tls",
            start_tls=True if config.tls == "starttls" else False,
            timeout=timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        temporary = any(400 <= c < 500 for c in codes)
        detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return Sent(False, _cut(f"recipient refused: {detail}"), temporary, not temporary)
    except aiosmtplib.SMTPResponseException as exc:
        temporary = 400 <= exc.code < 500
        return Sent(False, _cut(f"SMTP {exc.code}: {exc.message}"), temporary)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # No connection, a dropped one, a timeout: the server may take it later.
        return Sent(False, _cut(f"{type(exc).__name__}: {exc}"), True)
    return Sent(True)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + "..."
