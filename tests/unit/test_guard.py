"""`RequestGuard` around the smallest inline app: admission (503 + Retry-After past max in flight, before the
body is read; other methods never refused) and the deadline (504, the request's work cancelled)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from asgi import Client, StubApp, call, http_scope
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from service.guard import RequestGuard
from service.metrics import Metrics


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 30))


def guarded(app: Any, *, timeout_s: float = 30.0, max_inflight: int = 1) -> tuple[RequestGuard, Metrics]:
    metrics = Metrics(CollectorRegistry())
    guard = RequestGuard(
        app, timeout_s=timeout_s, max_inflight=max_inflight, retry_after_s=3, shed=metrics.requests_shed
    )
    return guard, metrics


def test_a_post_past_max_inflight_is_503_with_retry_after_before_its_body_is_read() -> None:
    async def main() -> None:
        release = asyncio.Event()
        inner = StubApp(release)
        guard, metrics = guarded(inner, max_inflight=1)
        first = asyncio.create_task(call(guard, http_scope("POST", "/v1/classify")))
        await inner.entered.wait()
        refused = await call(guard, http_scope("POST", "/v1/classify"), Client(chunks=[b"{}"]))
        assert refused.status == 503 and refused.headers["retry-after"] == "3"
        assert "max_inflight_requests" in refused.json()["error"]
        assert refused.received == 0  # answered before its body was read
        assert len(inner.calls) == 1
        assert metrics.registry.get_sample_value("distill_requests_shed_total", {"endpoint": "classify"}) == 1
        release.set()
        assert (await first).status == 200
        assert guard.inflight == 0
        assert (await call(guard, http_scope("POST", "/v2/models/m/infer"))).status == 200  # admitted again

    run(main)


def test_requests_other_than_post_are_never_refused() -> None:
    async def main() -> None:
        guard, metrics = guarded(StubApp(), max_inflight=0)  # every POST is refused
        assert (await call(guard, http_scope("POST", "/v2/models/m/infer"))).status == 503
        for method in ("GET", "HEAD", "OPTIONS"):
            answer = await call(guard, http_scope(method, "/v2/health/ready"))
            assert answer.status == 200 and answer.body == b"inner"
        assert metrics.registry.get_sample_value("distill_requests_shed_total", {"endpoint": "infer"}) == 1

    run(main)


def test_a_request_past_its_deadline_is_504_and_its_work_cancelled() -> None:
    cancelled = asyncio.Event()

    async def never_answers(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        guard, _ = guarded(never_answers, timeout_s=0.05)
        answer = await call(guard, http_scope("POST", "/v1/classify"))
        assert answer.status == 504 and "request_timeout_s" in answer.json()["error"]
        assert cancelled.is_set()
        assert guard.inflight == 0

    run(main)


def test_a_response_started_before_the_deadline_is_not_cut_short() -> None:
    async def slow_body(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.3)  # past the deadline, but the answer has begun
        await send({"type": "http.response.body", "body": b"done"})

    async def main() -> None:
        guard, _ = guarded(slow_body, timeout_s=0.05)
        answer = await call(guard, http_scope("GET", "/v2/models/m"))
        assert answer.status == 200 and answer.body == b"done"

    run(main)


def test_other_scopes_pass_through_untouched() -> None:
    async def main() -> None:
        inner = StubApp()
        guard, _ = guarded(inner, max_inflight=0)
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        client = Client()
        await guard(scope, client.receive, client.send)
        assert inner.calls == [(scope, client.receive, client.send)]

    run(main)
