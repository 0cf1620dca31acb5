"""The floor of the benchmark: a raw ASGI app that reads the request body and answers a constant.

Run by uvicorn with its fastest loop and parser, it is the most any Python service on this stack can serve:
`uvicorn distill_bench.servers.floor:app --loop uvloop --http httptools --no-access-log`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill_bench.servers.process import RunningService, free_port, running

Message = MutableMapping[str, Any]
BODY = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the whole body, as a real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


@contextmanager
def serve_floor(log: Path) -> Iterator[RunningService]:
    """This app under uvicorn on a free 127.0.0.1 port until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", f"{__name__}:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    with running(command, f"http://127.0.0.1:{port}", "/", log, None, 30.0) as floor:
        yield floor
