"""Batcher: writes submitted together are made together, and every caller is answered."""

from __future__ import annotations

import asyncio

import pytest

from dialer_server.engine.batches import Batcher


class Away(Exception):
    """Stands for PostgreSQL being away: the whole batch fails."""


class Writes:
    """A write function that records each batch it gets."""

    def __init__(self, fail_on: int | None = None, away: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.away = away

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.away:
            raise Away("database away")
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [item * 10 for item in items]


async def test_items_submitted_in_one_turn_are_written_in_one_batch_in_order() -> None:
    writes = Writes()
    batcher: Batcher[int, int] = Batcher("test", writes)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert writes.batches == [[0, 1, 2, 3, 4]]


async def test_items_submitted_while_a_batch_is_written_go_in_the_next_one() -> None:
    gate = asyncio.Event()
    batches: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        batches.append(list(items))
        await gate.wait()
        return items

    batcher: Batcher[int, int] = Batcher("test", write)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    assert batches == [[1]]
    gate.set()
    assert await first == 1
    assert [await f for f in later] == [2, 3]
    assert batches == [[1], [2, 3]]


async def test_a_linger_gathers_what_comes_meanwhile() -> None:
    writes = Writes()
    batcher: Batcher[int, int] = Batcher("test", writes, linger_s=0.05)

    async def later(item: int, delay: float) -> int | None:
        await asyncio.sleep(delay)
        return await batcher.submit(item)

    assert list(await asyncio.gather(later(1, 0), later(2, 0.01), later(3, 0.02))) == [10, 20, 30]
    assert writes.batches == [[1, 2, 3]]


async def test_a_batch_never_grows_past_its_limit() -> None:
    writes = Writes()
    batcher: Batcher[int, int] = Batcher("test", writes, max_batch=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert writes.batches == [[0, 1], [2, 3], [4]]


async def test_one_bad_item_fails_alone_the_others_are_written_one_by_one() -> None:
    writes = Writes(fail_on=2)
    batcher: Batcher[int, int] = Batcher("test", writes)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert results[:2] == [0, 10] and results[3] == 30
    assert isinstance(results[2], ValueError)
    assert writes.batches == [[0, 1, 2, 3], [0], [1], [2], [3]]


async def test_the_database_away_fails_every_caller_of_the_batch_with_its_error() -> None:
    writes = Writes(away=True)
    batcher: Batcher[int, int] = Batcher("test", writes, fails_all=(Away,))
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, Away) for r in results)
    assert writes.batches == [[0, 1, 2]]


async def test_nothing_written_answers_every_caller_none() -> None:
    async def stopping(items: list[int]) -> None:
        return None

    batcher: Batcher[int, int] = Batcher("test", stopping)
    assert list(await asyncio.gather(batcher.submit(1), batcher.submit(2))) == [None, None]


async def test_close_leaves_no_caller_waiting() -> None:
    never = asyncio.Event()

    async def stuck(items: list[int]) -> list[int]:
        await never.wait()
        return items

    batcher: Batcher[int, int] = Batcher("test", stuck)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    await batcher.close()
    for future in waiting:
        with pytest.raises(asyncio.CancelledError):
            await future


async def test_a_new_batch_starts_after_the_flusher_is_gone() -> None:
    writes = Writes()
    batcher: Batcher[int, int] = Batcher("test", writes)
    assert await batcher.submit(1) == 10
    await asyncio.sleep(0.01)
    assert await batcher.submit(2) == 20
    assert writes.batches == [[1], [2]]
