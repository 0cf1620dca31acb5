"""What every request's method and path go through first, so probes and tools find what they expect:

- HEAD is answered wherever GET is (load balancers probe with HEAD): the app sees a GET, the client gets its
  status and headers without the body.
- A trailing slash is the same path without it (`/v2/` is `/v2`): answered, not redirected, since a redirect
  would echo the client's `Host` header back at it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class PathsAndHead:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if scope["method"] == "HEAD":
            await self.app({**scope, "method": "GET"}, receive, _without_body(send))
            return
        await self.app(scope, receive, send)


def _without_body(send: Send) -> Send:
    async def headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return  # the rest of a streamed body: nothing to send until its end
            message = {"type": "http.response.body", "body": b""}
        await send(message)

    return headers_only
