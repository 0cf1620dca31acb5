"""uvicorn's httptools HTTP/1.1 protocol, made to hold up against slow, silent and careless clients.

- Nagle's algorithm is off on every connection. uvicorn writes a response's headers and its body in two writes;
  with Nagle on, the body waits for the client to acknowledge the headers, and clients delay that (40 ms on
  Linux). asyncio turns Nagle off only where the socket names TCP as its protocol, and uvicorn's worker processes
  create their listening socket without naming it (2 workers on asyncio here: 44 ms per request at any load).
- A request reaches the app once its body has arrived (or 64 KB of it, when uvicorn stops reading until the app
  takes it), so connections sending their body slowly hold no in-flight slot (`service.guard`) and cannot starve
  requests whose body is there. A request declaring a body past `max_body_bytes` goes to the app at once, which
  answers 413 without reading it.
- Each connection marks its phase (idle, reading headers, reading the body, answered) for the one sweep of
  `service.connections`, which times out the slow and silent ones and keeps the connection count under the limit.
  That sweep also replaces uvicorn's keep-alive timer, one timer per response.
- The protocol's own errors are `{"error": ...}` JSON like every other error: a malformed request (400), a
  timeout (408), a connection past the limit (503).
"""

from __future__ import annotations

import asyncio
import http
import socket
import time
from typing import Any

import orjson
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from service.connections import ConnectionWatch, Phase, Reason

WATCH_STATE = "connection_watch"  # the lifespan state key of the process's `ConnectionWatch`
LISTENERS_CLOSED_S = 0.3  # on shutdown, by when every worker has closed its listening socket (uvicorn ticks: 0.1 s)
SHUTDOWN_GRACE_S = 0.5  # then how long an idle connection stays open for a request already on its way
_TIMEOUT_MESSAGES = {
    "header_timeout": "the request's headers did not arrive within header_timeout_s ({:g}s)",
    "body_timeout": "the request's body did not arrive within body_timeout_s ({:g}s)",
}


def error_bytes(status: int, message: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole `{"error": ...}` response that closes the connection."""
    body = orjson.dumps({"error": message})
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(lines) + body


class ServiceHttpProtocol(HttpToolsProtocol):
    phase: Phase = "idle"
    since: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch: ConnectionWatch | None = self.app_state.get(WATCH_STATE)
        self._deferred: tuple[RequestResponseCycle, Any] | None = None
        self._closing = False  # the server is shutting down

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self.since = time.monotonic()
        if self.watch is not None and not self.watch.admit(self):
            message = f"the server holds max_connections ({self.watch.limits.max_connections}) busy connections"
            self._answer_and_close(503, f"{message}; retry later", [(b"retry-after", b"1")])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.watch is not None:
            self.watch.forget(self)
        self._deferred = None
        super().connection_lost(exc)

    # -- phases, and the app started once the body is in ---------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase, self.since = "head", time.monotonic()

    def on_headers_complete(self) -> None:
        self.phase, self.since = "body", time.monotonic()
        super().on_headers_complete()
        if self._closing and self.cycle is not None:
            self.cycle.keep_alive = False  # answered, then closed: the server is shutting down

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if not cycle.more_body:
            super()._start_asgi_task(cycle, app)
            return
        self._deferred = (cycle, app)  # until on_message_complete, in the same data_received for most requests
        if cycle.waiting_for_100_continue:  # the client waits for this before it sends the body
            cycle.waiting_for_100_continue = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deferred is not None and self._declares_too_much():  # only a body still on its way is looked at
            self._dispatch()  # the app answers 413 without reading the body

    def _declares_too_much(self) -> bool:
        if self.watch is None:
            return False
        length = next((value for name, value in self.headers if name == b"content-length"), None)
        return length is not None and length.isdigit() and int(length) > self.watch.limits.max_body_bytes

    def _dispatch(self) -> None:
        if self._deferred is not None:
            cycle, app = self._deferred
            self._deferred = None
            super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._deferred is not None and len(self.cycle.body) > HIGH_WATER_LIMIT:
            self._dispatch()  # uvicorn has stopped reading: the app must take the body from here

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.phase = "busy"
        self._dispatch()

    def on_response_complete(self) -> None:
        """uvicorn's, without its keep-alive timer: the sweep times out idle connections."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self.phase, self.since = "idle", time.monotonic()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._closing:
            self.loop.call_later(SHUTDOWN_GRACE_S, self._close_if_idle)

    # -- closing on the server's side ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """uvicorn's graceful shutdown, which has just closed this process's listening socket, closed idle
        connections at once: a kept-alive client's next request, sent but not yet read, was lost unanswered, and
        clients told to close reconnected while another worker still listened, into a queue the kernel reset
        when that worker closed in turn. Now connections are asked to close only once every worker has stopped
        listening (they are all signalled at once), so a client that reconnects is refused, never reset; and an
        idle one is closed after a short grace, a request arriving meanwhile answered with `Connection: close`."""
        self.loop.call_later(LISTENERS_CLOSED_S, self._close_gracefully)

    def _close_gracefully(self) -> None:
        self._closing = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif self.phase == "idle":
            self.loop.call_later(SHUTDOWN_GRACE_S, self._close_if_idle)
        # else: a request's headers or body are arriving; it is answered, then the connection closes

    def _close_if_idle(self) -> None:
        if self.phase == "idle" and not self.transport.is_closing():
            self.transport.close()

    def time_out(self, reason: Reason) -> None:
        """Called by the sweep (or to make room): answer 408 where a request is being read, then close."""
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started and self.phase != "head"
        if reason in _TIMEOUT_MESSAGES and not answered and self.watch is not None:
            limits = self.watch.limits
            timeout = limits.header_timeout_s if reason == "header_timeout" else limits.body_timeout_s
            self._answer_and_close(408, _TIMEOUT_MESSAGES[reason].format(timeout), [])
        else:
            self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # an app waiting for the body sees the client gone: no response
            self.cycle.message_event.set()

    def _answer_and_close(self, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.transport.write(error_bytes(status, message, [*self.server_state.default_headers, *headers]))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what httptools cannot parse, as JSON."""
        self._answer_and_close(400, f"{msg} It is not valid HTTP/1.1.", [])
