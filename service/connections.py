"""Every open connection of one server process, watched by one periodic sweep: slow or silent clients are timed
out, and past the connection limit the oldest idle connection makes room (or the new one is refused).

Without this a client could hold a connection forever by never sending (uvicorn times out only connections that
have had a response), send its headers at a byte a second, or send headers and one byte of body; and at the
process's open-file limit asyncio could accept nothing, probes included, and logged every failed accept. Here:
- `idle_timeout_s`: a connection with no request under way (a new one, or kept alive after a response) is closed;
- `header_timeout_s`: a request whose headers have not all arrived is answered 408 and closed;
- `body_timeout_s`: a request whose body has not all arrived is answered 408 and closed;
- `max_connections` (by default a little under the open-file limit): a new connection past it closes the oldest
  idle one, or is answered 503 if none is idle. Closes and refusals are counted
  (`distill_connections_closed_total`) and logged in one line per interval, never one per connection.
The protocol (`service.protocol`) marks each connection's phase; the sweep, one task per process, does the rest:
no timer per request or per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from prometheus_client import Counter

log = logging.getLogger(__name__)

Phase = Literal["idle", "head", "body", "busy"]  # waiting for a request, its headers, its body; being answered
Reason = Literal["idle_timeout", "header_timeout", "body_timeout", "evicted", "refused", "accept_failed"]
REASONS: tuple[Reason, ...] = get_args(Reason)
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message, with a traceback, each time
OPEN_FILES_RESERVE = 64  # files a process needs besides its connections: models, logs, metrics, threads
LOG_EVERY_S = 10.0


def default_max_connections() -> int:
    """A little under this process's limit of open files, so that accepting never fails for lack of one."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - max(OPEN_FILES_RESERVE, soft // 8))


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    idle_timeout_s: float
    max_connections: int
    max_body_bytes: int  # a request declaring more goes to the app at once, which answers 413 unread

    @property
    def tick_s(self) -> float:
        """How often the sweep runs: a timeout fires at most this late."""
        return min(1.0, self.header_timeout_s / 5, self.body_timeout_s / 5, self.idle_timeout_s / 5)


class Watched(Protocol):
    """What the sweep needs of a connection (`service.protocol.ServiceHttpProtocol`)."""

    phase: Phase
    since: float  # time.monotonic() when the phase began

    def time_out(self, reason: Reason) -> None: ...


class ConnectionWatch:
    """One per server process, in the lifespan's state, where each new connection finds it."""

    def __init__(self, limits: ConnectionLimits, closed: Counter) -> None:
        self.limits = limits
        self._closed = {reason: closed.labels(reason) for reason in REASONS}
        self._connections: dict[Watched, None] = {}  # oldest first
        self._since_log: Tally[Reason] = Tally()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep(), name="connection-sweep")
        default = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == ACCEPT_FAILED:  # out of files despite the limit: counted, logged per interval
                self.count("accept_failed")
            elif default is not None:
                default(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._log_closes()

    def admit(self, connection: Watched) -> bool:
        """Register a new connection; False when it must be refused (the limit, and no idle one to close)."""
        if len(self._connections) >= self.limits.max_connections:
            oldest_idle = next((c for c in self._connections if c.phase == "idle"), None)
            if oldest_idle is None:
                self.count("refused")
                return False
            self.forget(oldest_idle)
            oldest_idle.time_out("evicted")
            self.count("evicted")
        self._connections[connection] = None
        return True

    def forget(self, connection: Watched) -> None:
        self._connections.pop(connection, None)

    def count(self, reason: Reason) -> None:
        self._closed[reason].inc()
        self._since_log[reason] += 1

    def expired(self, now: float) -> list[tuple[Watched, Reason]]:
        limits = self.limits
        timeouts: dict[Phase, tuple[float, Reason]] = {
            "idle": (limits.idle_timeout_s, "idle_timeout"),
            "head": (limits.header_timeout_s, "header_timeout"),
            "body": (limits.body_timeout_s, "body_timeout"),
        }
        found = []
        for connection in self._connections:
            timeout = timeouts.get(connection.phase)
            if timeout is not None and now - connection.since > timeout[0]:
                found.append((connection, timeout[1]))
        return found

    async def _sweep(self) -> None:
        last_log = time.monotonic()
        while True:
            await asyncio.sleep(self.limits.tick_s)
            now = time.monotonic()
            for connection, reason in self.expired(now):
                self.forget(connection)
                connection.time_out(reason)
                self.count(reason)
            if now - last_log >= LOG_EVERY_S:
                self._log_closes()
                last_log = now

    def _log_closes(self) -> None:
        if not self._since_log:
            return
        counts = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(self._since_log.items()))
        crowded = self._since_log["evicted"] + self._since_log["refused"]
        level = logging.WARNING if crowded else logging.INFO
        limit = f" (max_connections {self.limits.max_connections} reached)" if crowded else ""
        log.log(level, "connections closed by the server since the last report: %s%s", counts, limit)
        self._since_log.clear()
