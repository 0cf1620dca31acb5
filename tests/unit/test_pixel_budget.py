"""The process-wide budget of decoded pixels: first come first served, a bounded wait then 503, and nothing lost
when a waiting request is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from service.errors import Overloaded
from service.images import PixelBudget


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 10))


def test_waiters_are_served_in_arrival_order_as_pixels_come_back() -> None:
    async def main() -> None:
        budget, order = PixelBudget(10), []
        await budget.acquire(8, 1.0, 1)

        async def wait_for(pixels: int, name: str) -> None:
            await budget.acquire(pixels, 5.0, 1)
            order.append(name)

        first = asyncio.create_task(wait_for(6, "first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(wait_for(1, "second"))  # fits now, but waits its turn
        await asyncio.sleep(0.01)
        assert order == []
        budget.release(8)
        await asyncio.gather(first, second)
        assert order == ["first", "second"] and budget.free == 3

    run(main)


def test_a_wait_past_the_limit_is_overloaded_and_takes_nothing() -> None:
    async def main() -> None:
        budget = PixelBudget(10)
        await budget.acquire(10, 1.0, 1)
        with pytest.raises(Overloaded, match="decode_pixel_budget") as raised:
            await budget.acquire(5, 0.05, 3)
        assert raised.value.headers == {"Retry-After": "3"}
        budget.release(10)
        assert budget.free == 10

    run(main)


def test_a_cancelled_waiter_leaves_the_queue_and_the_budget_whole() -> None:
    async def main() -> None:
        budget = PixelBudget(10)
        await budget.acquire(10, 1.0, 1)
        waiting = asyncio.create_task(budget.acquire(4, 5.0, 1))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        budget.release(10)
        await budget.acquire(10, 0.0, 1)  # nobody took the cancelled waiter's share
        assert budget.free == 0

    run(main)
