"""Writes that arrive together, made together: one statement or transaction for many.

Hundreds of calls at once each mark their attempt sent, answered, then record their
result. Made one by one, every write is a round trip to PostgreSQL, and the round trips,
not the rows, are most of what a call costs the daemon and PostgreSQL. A ``Batcher``
gathers the writes its callers submit while one is being made (and, with a linger, for
a moment before), and makes them with one call of its ``write``.

What it keeps true:

- each item is written by exactly one call of ``write``, and its caller is answered
  only once that call returned: whatever a caller is told was committed (or failed);
- a batch failing with an error of ``fails_all`` (PostgreSQL away, a timeout) fails
  every caller of that batch with it; any other error is the batch's content: it is
  written again one item at a time, so that one bad item fails alone;
- one flush at a time, and a flush task only while there is work: it is named, and if
  it ends for any reason, no caller is left waiting (each gets the error, or a
  cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A batch never grows past this: a statement's arrays stay small.
MAX_BATCH = 500


class Batcher(Generic[T, R]):
    """Submit items one by one; ``write`` gets them in batches, in submission order.

    ``write(items)`` returns one result per item, in order, or None when nothing was
    written and never will be (the daemon stops): every caller of the batch then gets
    None. ``linger_s``: how long a flush waits for more items before it writes (0: the
    items submitted in the same turn of the event loop).
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], Awaitable[Sequence[R] | None]],
        *,
        linger_s: float = 0.0,
        fails_all: tuple[type[BaseException], ...] = (),
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.name = name
        self._write = write
        self._linger_s = linger_s
        self._fails_all = fails_all
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Set to end the linger early (``flush_now``).
        self._now = asyncio.Event()

    async def submit(self, item: T) -> R | None:
        """Write ``item`` with the others of its batch; its result once written."""
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(), name=f"{self.name}-batches")
        return await future

    def post(self, item: T) -> None:
        """Write ``item`` with the others of its batch, answering nobody: for a write
        nothing waits for (a progress mark). Its failure is the batch's, logged there."""
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(), name=f"{self.name}-batches")

    def flush_now(self) -> None:
        """Write what is pending without waiting for the rest of the linger (nothing
        more is coming: the caller knows)."""
        if self._pending:
            self._now.set()

    async def close(self) -> None:
        """Stop flushing; callers still waiting are cancelled."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        self._fail(self._pending, None)
        self._pending = []

    async def _flush_all(self) -> None:
        taken: list[tuple[T, asyncio.Future[R | None]]] = []
        try:
            if self._linger_s > 0:
                with contextlib.suppress(TimeoutError):  # the linger's end
                    async with asyncio.timeout(self._linger_s):
                        await self._now.wait()
            else:
                await asyncio.sleep(0)
            self._now.clear()
            while self._pending:
                taken, self._pending = (
                    self._pending[: self._max_batch],
                    self._pending[self._max_batch :],
                )
                await self._flush(taken)
                taken = []
        except BaseException as exc:
            # Cancelled (the daemon stops) or a bug: nobody may wait for ever.
            error = None if isinstance(exc, asyncio.CancelledError) else exc
            self._fail(taken + self._pending, error)
            self._pending = []
            if error is not None:
                logger.error("%s batches failed: %r", self.name, exc, extra={"action": "batch"})
            raise
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R | None]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except self._fails_all as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            # One bad item must not fail the others: each on its own.
            for one in batch:
                await self._flush([one])
            return
        for index, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(None if results is None else results[index])

    @staticmethod
    def _fail(
        batch: Sequence[tuple[T, asyncio.Future[R | None]]], error: BaseException | None
    ) -> None:
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.cancel()
            else:
                future.set_exception(error)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A posted item's outcome, read so that asyncio does not report it unread."""
    if not future.cancelled():
        future.exception()
