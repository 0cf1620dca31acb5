"""The app factory: `create_app(settings)`; the lifespan builds the registry, batchers and data plane."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from service import __version__
from service.connections import ConnectionWatch
from service.dataplane import DataPlane
from service.docs import install_docs
from service.errors import install_error_handlers
from service.fastpath import InferFastPath
from service.guard import RequestGuard
from service.metrics import Metrics
from service.origin import OriginPolicy, install_origin_policy
from service.paths import PathsAndHead
from service.peers import WorkerBoard
from service.protocol import WATCH_STATE
from service.repository import ModelRegistry
from service.routes import about, friendly, page, repository, v2
from service.schemas import document_fast_path
from service.settings import Settings
from service.shutdown import drain_on_signal

log = logging.getLogger(__name__)


class ServiceApp(FastAPI):
    """FastAPI with the v2 infer fast path ahead of it, under the request guard (admission and deadline)."""

    guard: Callable[[ASGIApp], ASGIApp] | None = None  # create_app sets it from the settings
    origins = OriginPolicy([])  # create_app sets it from the settings

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_fast_path(super().openapi())
        return self.openapi_schema

    def build_middleware_stack(self) -> ASGIApp:
        inner = InferFastPath(super().build_middleware_stack(), self.state, self.origins)
        return PathsAndHead(inner if self.guard is None else self.guard(inner))


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def follow_repository(models: ModelRegistry, loading: asyncio.Task[None] | None, every_s: float) -> None:
    """`model_control=poll`: rescan the repository every `every_s` once the first load is done; a poll that
    fails is logged and the next one tried."""
    if loading is not None:
        await asyncio.shield(loading)
    while True:
        await asyncio.sleep(every_s)
        try:
            await models.poll()
        except Exception:
            log.exception("polling the model repository failed; trying again in %gs", every_s)


def create_app(
    settings: Settings | None = None,
    registry: CollectorRegistry | None = None,
    metrics_dir: Path | None = None,
    peers: WorkerBoard | None = None,
) -> FastAPI:
    """Build the app. Models load in the background after startup; `/v2/health/ready` says when they are done.
    A worker process of several (`service.workers`) gets its multiprocess `metrics_dir`, whose scrape sums all
    workers, and the board of its `peers`: its readiness waits for theirs, and one started beside serving peers
    loads its models before it takes a connection."""
    settings = settings or Settings()
    metrics = Metrics(registry or CollectorRegistry(), metrics_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        models = ModelRegistry(settings, metrics)
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.dataplane = DataPlane(settings, models, metrics, peers)

        async def load() -> None:
            await models.load_all()
            if peers is not None:
                peers.mark("ready")  # done loading: its own readiness speaks for it from now on

        if peers is not None and peers.others_serving():
            peers.mark("warming")
            await load()  # a restarted worker takes no connection until it can serve
        elif peers is not None:
            peers.mark("loading")
        loading = asyncio.create_task(load(), name="load-models") if not models.loaded else None
        polling = (
            asyncio.create_task(follow_repository(models, loading, settings.repository_poll_s), name="poll")
            if settings.model_control == "poll"
            else None
        )
        watch = ConnectionWatch(settings.connection_limits(), metrics.connections_closed)
        watch.start()
        app.state.dataplane.shadow.start()
        try:
            with drain_on_signal(app.state.dataplane, settings.shutdown_drain_s):
                yield {WATCH_STATE: watch}  # uvicorn hands the lifespan's state to every connection's protocol
        finally:
            await watch.stop()
            for task in (polling, loading):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if peers is not None:
                peers.leave()
            await app.state.dataplane.shadow.stop()
            await models.close()
            app.state.dataplane.decoder.close()
            metrics.process_stopped()

    app = ServiceApp(
        title="distill-serve",
        version=__version__,
        description="Teacher and distilled student side by side: Open Inference Protocol v2 and friendly "
        "classify/compare endpoints, with Prometheus metrics at /metrics.",
        lifespan=lifespan,
        # Metrics are Prometheus (service.metrics); FastAPI's native OpenTelemetry would otherwise look at
        # its providers and the environment on every request, ahead of the infer fast path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # service.docs serves them without a CDN
        redoc_url=None,
        redirect_slashes=False,  # a redirect would echo the client's Host header; a 404 says what to fix
    )
    install_docs(app)
    app.origins = install_origin_policy(app, settings.allowed_origins)
    app.guard = functools.partial(
        RequestGuard,
        timeout_s=settings.request_timeout_s,
        max_inflight=settings.max_inflight_requests,
        retry_after_s=settings.retry_after_s,
        shed=metrics.requests_shed,
    )
    install_error_handlers(app)
    app.include_router(v2.router)
    app.include_router(repository.router)
    app.include_router(friendly.router)
    app.include_router(about.router)
    app.include_router(page.router)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return app
