"""A real SMTP server on 127.0.0.1 (aiosmtpd) for email task tests.

It takes every message over the wire as a mail server would, records it (parsed
with the standard library), and can be told to answer slowly (a daemon killed
mid-send) or to refuse with a status. Nothing of dialer_server is used here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclasses.dataclass(frozen=True)
class Mail:
    to: list[str]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return str(self.message.get_content())


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        # Taken before the answer: a client that dies while waiting for it has sent it.
        self.server.mails.append(Mail(list(envelope.rcpt_tos), message))
        self.server.changed.set()
        if self.server.delay_s:
            await asyncio.sleep(self.server.delay_s)
        return self.server.answer


class SmtpServer:
    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.delay_s = 0.0
        self.answer = "250 OK"
        self.changed = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="smtp.test"), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def by_recipient(self) -> dict[str, list[Mail]]:
        out: dict[str, list[Mail]] = {}
        for mail in self.mails:
            for to in mail.to:
                out.setdefault(to, []).append(mail)
        return out
