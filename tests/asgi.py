"""Calling an ASGI app directly, without a server or an HTTP client: for middleware tested around a stub app."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def http_scope(method: str, path: str, headers: Iterable[tuple[str, str]] = ()) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


@dataclass
class Client:
    """One request's side of the conversation: the body it sends (in chunks), and what it received back."""

    chunks: list[bytes] = field(default_factory=list)
    disconnect: bool = False  # after the chunks, the client goes away instead of finishing its body
    received: int = 0  # receive() calls made by the app
    sent: list[Message] = field(default_factory=list)

    async def receive(self) -> Message:
        self.received += 1
        chunks = self.chunks or [b""]
        if self.received > len(chunks):
            return {"type": "http.disconnect"}
        more = self.received < len(chunks) or self.disconnect
        return {"type": "http.request", "body": chunks[self.received - 1], "more_body": more}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def headers(self) -> dict[str, str]:
        (start,) = [m for m in self.sent if m["type"] == "http.response.start"]
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(app: ASGIApp, scope: Scope, client: Client | None = None) -> Client:
    client = client or Client()
    await app(scope, client.receive, client.send)
    return client


class StubApp:
    """The smallest inner app: records each call and answers 200 `inner`, after `release` is set if given."""

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.calls: list[tuple[Scope, Receive, Send]] = []
        self.entered = asyncio.Event()
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope, receive, send))
        self.entered.set()
        if scope["type"] != "http":
            return
        if self.release is not None:
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"inner"})
