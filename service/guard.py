"""A deadline on every request, outermost in the ASGI stack: no request hangs past `request_timeout_s`.

The whole request (a slow client's body, the batcher's queue, the model run) runs under one timeout. Past it,
the request's task is cancelled (its queued rows are dropped by the batcher) and the caller gets 504 with a
message, unless a response had already started (then the connection is closed). A request still running when
the graceful shutdown gives up gets 503.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response

log = logging.getLogger(__name__)


class RequestDeadline:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, receive, tracked)
        except TimeoutError:
            log.warning("%s %s took longer than %.3gs", scope["method"], scope["path"], self.timeout_s)
            if started:
                raise
            message = (
                f"the request took longer than {self.timeout_s:g}s (request_timeout_s) and was abandoned: "
                "the server is busy or the body arrived too slowly"
            )
            await error_response(504, message)(scope, receive, send)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when its graceful-shutdown timeout is over: say so rather than
            # letting it answer a bare 500, and end the task (which is what the cancellation asked for).
            if started:
                raise
            message = "the server is shutting down and could not finish this request in time; retry"
            await error_response(503, message, {"Retry-After": "1"})(scope, receive, send)
