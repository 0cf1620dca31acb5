"""`InferFastPath` around the smallest inline app: it answers `POST .../infer` itself (within the body limit) and
hands every other request to the inner app unchanged, its body unread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from asgi import Client, StubApp, call, http_scope
from prometheus_client import CollectorRegistry
from starlette.datastructures import State
from starlette.types import Scope

from service.dataplane import DataPlane
from service.fastpath import InferFastPath
from service.metrics import Metrics
from service.repository import ModelRegistry
from service.settings import Settings

STUDENT = "tiny-student"
JSON = [("content-type", "application/json")]


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 60))


def infer_body(rows: int = 1) -> bytes:
    x = np.zeros((rows, 1, 28, 28), dtype=np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.reshape(-1).tolist()}
    return orjson.dumps({"inputs": [tensor]})


@asynccontextmanager
async def fast_path(settings: Settings, *, load: bool) -> AsyncIterator[tuple[InferFastPath, StubApp, Metrics]]:
    """The fast path over a stub app, with a data plane whose models are loaded (or not yet)."""
    metrics = Metrics(CollectorRegistry())
    registry = ModelRegistry(settings, metrics)
    state = State()
    state.dataplane = DataPlane(settings, registry, metrics)
    inner = StubApp()
    if load:
        await registry.load_all()
    try:
        yield InferFastPath(inner, state), inner, metrics
    finally:
        await registry.close()


@pytest.mark.parametrize("path", [f"/v2/models/{STUDENT}/infer", f"/v2/models/{STUDENT}/versions/1/infer"])
def test_post_infer_is_answered_here_and_never_reaches_the_inner_app(settings: Settings, path: str) -> None:
    async def main() -> None:
        async with fast_path(settings, load=True) as (app, inner, metrics):
            body = infer_body(2)
            headers = [*JSON, ("content-length", str(len(body)))]
            answer = await call(app, http_scope("POST", path, headers), Client(chunks=[body[:100], body[100:]]))
            assert answer.status == 200, answer.body
            assert answer.headers["content-type"] == "application/json"
            assert int(answer.headers["content-length"]) == len(answer.body)
            (output,) = answer.json()["outputs"]
            assert output["name"] == "logits" and output["shape"] == [2, 10]
            assert inner.calls == []
            labels = {"endpoint": "infer", "model": STUDENT}
            assert metrics.registry.get_sample_value("distill_request_duration_seconds_count", labels) == 1

    run(main)


@pytest.mark.parametrize(
    "scope",
    [
        http_scope("OPTIONS", f"/v2/models/{STUDENT}/infer"),  # a CORS preflight is the app's (GET is a 405)
        http_scope("POST", "/v1/classify", JSON),
        http_scope("POST", f"/v2/models/{STUDENT}/infer/more"),
        http_scope("POST", f"/v2/models/{STUDENT}/versions/1/extra/infer"),
        http_scope("POST", "/v2/models//infer"),
        {"type": "websocket", "path": f"/v2/models/{STUDENT}/infer", "headers": []},
        {"type": "lifespan", "asgi": {"version": "3.0"}},
    ],
)
def test_every_other_request_reaches_the_inner_app_unchanged(settings: Settings, scope: Scope) -> None:
    async def main() -> None:
        async with fast_path(settings, load=False) as (app, inner, _):
            client = Client(chunks=[b"{}"])
            await app(scope, client.receive, client.send)
            assert inner.calls == [(scope, client.receive, client.send)]
            assert inner.calls[0][0] is scope
            assert client.received == 0  # the body is the inner app's to read

    run(main)


def test_a_declared_body_over_max_body_bytes_is_413_unread(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, max_body_bytes=2000)

    async def main() -> None:
        async with fast_path(settings, load=False) as (app, inner, _):
            headers = [*JSON, ("content-length", "2001")]
            client = Client(chunks=[b"x" * 2001])
            answer = await call(app, http_scope("POST", f"/v2/models/{STUDENT}/infer", headers), client)
            assert answer.status == 413 and "2000" in answer.json()["error"]
            assert client.received == 0 and inner.calls == []

    run(main)


def test_a_streamed_body_is_413_once_past_max_body_bytes(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, max_body_bytes=2000)

    async def main() -> None:
        async with fast_path(settings, load=False) as (app, _, _):
            client = Client(chunks=[b"x" * 1200] * 5)  # no Content-Length
            answer = await call(app, http_scope("POST", f"/v2/models/{STUDENT}/infer", JSON), client)
            assert answer.status == 413 and "max_body_bytes" in answer.json()["error"]
            assert client.received == 2  # stopped reading at the chunk that crossed the limit

    run(main)


def test_infer_before_startup_is_503() -> None:
    async def main() -> None:
        inner = StubApp()
        answer = await call(InferFastPath(inner, State()), http_scope("POST", f"/v2/models/{STUDENT}/infer", JSON))
        assert answer.status == 503 and "starting" in answer.json()["error"]
        assert inner.calls == []

    run(main)


def test_a_client_gone_mid_body_gets_no_answer(settings: Settings) -> None:
    async def main() -> None:
        async with fast_path(settings, load=False) as (app, inner, _):
            client = Client(chunks=[b'{"inputs": ['], disconnect=True)
            await call(app, http_scope("POST", f"/v2/models/{STUDENT}/infer", JSON), client)
            assert client.sent == [] and inner.calls == []

    run(main)
