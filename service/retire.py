"""Closing a replaced model version without failing a request that still holds it.

A request looks its model up once and keeps it until answered, so after a swap some requests may still be on
their way to the old version's batcher. The old version is closed once no request holds it (a weak reference
tells) and its batcher has finished what it was given, or at the latest once every request that could hold it is
past its deadline (`request_timeout_s`). Nothing is added to the request path: no count, no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.batcher import DynamicBatcher
    from service.loading import ServedModel

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.05


class Retirement:
    def __init__(self, request_timeout_s: float) -> None:
        self.grace_s = request_timeout_s + 1.0  # a request started before the swap is answered or cancelled by then
        self._tasks: set[asyncio.Task[None]] = set()

    def retire(self, model: ServedModel) -> None:
        """Close `model` once it is unused. Its batcher goes on serving whoever still holds it until then."""
        closing = self._close_when_unused(weakref.ref(model), model.batcher, f"{model.name} v{model.version}")
        task = asyncio.get_running_loop().create_task(closing, name=f"retire-{model.name}-{model.version}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_when_unused(self, held: weakref.ref[ServedModel], batcher: DynamicBatcher, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_s
        try:
            while (held() is not None or not batcher.idle) and loop.time() < deadline:
                await asyncio.sleep(CHECK_EVERY_S)
        finally:
            await batcher.stop()
        log.info("closed %s: replaced, and its last requests are answered", what)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Shutdown: close every retiring version now."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
