"""A scriptable AMI server for the edge cases real Asterisk cannot be made to produce
on demand: a peer that stops answering, a link cut mid-action, a refused login."""

from __future__ import annotations

import asyncio
import contextlib


class FakeAmi:
    def __init__(self, secret: str = "s3cret") -> None:
        self.secret = secret
        self.actions: list[dict[str, str]] = []
        self.logins = 0
        # Actions named here get no reply at all (like an Originate still ringing).
        self.unanswered = {"originate"}
        # When True the server reads but never writes: a hung peer.
        self.mute = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def drop(self) -> None:
        """Cut every open connection, as a crashed Asterisk would."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def named(self, name: str) -> list[dict[str, str]]:
        return [a for a in self.actions if a.get("action", "").lower() == name]

    def send_event(self, **headers: str) -> None:
        block = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        for writer in self._writers:
            writer.write(block.encode())

    async def flood(self, head: bytes, filler: bytes, limit: int) -> int:
        """Send ``head``, then ``filler`` over and over (never the blank line that ends a
        message) until the peer drops the link or ``limit`` bytes went out; the bytes sent."""
        writer = self._writers[-1]
        sent = 0
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            while sent < limit and not writer.is_closing():
                writer.write(filler)
                sent += len(filler)
                await writer.drain()
        return sent

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action: dict[str, str] = {}
                for line in raw.decode().split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        action[key.lower()] = value
                self.actions.append(action)
                self._reply(writer, action)

    def _reply(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> None:
        name = action.get("action", "").lower()
        if self.mute or name in self.unanswered:
            return
        action_id = action.get("actionid", "")
        if name == "login":
            if action.get("secret") == self.secret:
                self.logins += 1
                body = "Response: Success\r\nMessage: Authentication accepted\r\n"
            else:
                body = "Response: Error\r\nMessage: Authentication failed\r\n"
        elif name == "ping":
            body = "Response: Success\r\nPing: Pong\r\n"
        else:
            body = "Response: Success\r\n"
        writer.write(f"{body}ActionID: {action_id}\r\n\r\n".encode())
