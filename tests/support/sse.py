"""A client of /api/v1/events for tests: collects the stream's events as a CRM would."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp


class SseClient:
    """Reads an event stream in a task; ``events`` holds (id, type, data) as they come."""

    def __init__(self, url: str, token: str, last_event_id: str | None = None) -> None:
        self.url = url
        self.token = token
        self.last_event_id = last_event_id
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.status: int | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.opened = asyncio.Event()

    async def __aenter__(self) -> SseClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._task = asyncio.create_task(self._read(), name="sse-client")
        async with asyncio.timeout(10):
            await self.opened.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        async with self._session.get(self.url, headers=headers) as response:
            self.status = response.status
            self.opened.set()
            if response.status != 200:
                return
            fields: dict[str, Any] = {"data": []}
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "event" in fields and fields["data"]:
                        event = (
                            int(fields["id"]),
                            fields["event"],
                            json.loads("".join(fields["data"])),
                        )
                        async with self._changed:
                            self.events.append(event)
                            self._changed.notify_all()
                    fields = {"data": []}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    fields["data"].append(value)
                else:
                    fields[name] = value

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [data for _, kind, data in self.events if kind == event_type]

    async def wait_for(self, predicate: Callable[[SseClient], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))
