"""The v2 infer hot path as raw ASGI, outside FastAPI's middleware, routing and dependency machinery.

`POST /v2/models/{name}[/versions/{version}]/infer` is answered here; every other request goes to the FastAPI
stack unchanged. Measured with wrk on 2 cores, FastAPI's stack cost about as much as the whole infer itself.
"""

from __future__ import annotations

import logging
import re
import time

import orjson
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from service.body import ClientGone, decode_body, read_body
from service.dataplane import DataPlane
from service.errors import Forbidden, NotReady, ServiceError, UnsupportedMediaType, error_response
from service.origin import EXPOSED_HEADERS, OriginPolicy

log = logging.getLogger(__name__)

INFER_PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")
_JSON = [(b"content-type", b"application/json")]
_BINARY = [(b"content-type", b"application/octet-stream")]
EXPOSED = ", ".join(EXPOSED_HEADERS).encode()


def _cors(origin: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), (b"access-control-expose-headers", EXPOSED)]


class InferFastPath:
    def __init__(self, app: ASGIApp, state: State, origins: OriginPolicy | None = None) -> None:
        self.app = app
        self.state = state
        self.origins = origins or OriginPolicy([])  # the server's own pages only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                await self._infer(scope, receive, send, match["name"], match["version"])
                return
        elif scope["type"] == "http" and scope["method"] != "OPTIONS" and INFER_PATH.fullmatch(scope["path"]):
            message = f"{scope['method']} is not allowed on {scope['path']}: inference is a POST"
            await error_response(405, message, {"Allow": "POST"})(scope, receive, send)
            return  # OPTIONS goes on: CORS preflights are answered by the app's middleware
        await self.app(scope, receive, send)

    async def _infer(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        started = time.perf_counter()
        plane: DataPlane | None = getattr(self.state, "dataplane", None)
        headers = dict(scope["headers"])
        extra: list[tuple[bytes, bytes]] = []
        cors: list[tuple[bytes, bytes]] = []
        shadowed = None
        try:
            if (origin := headers.get(b"origin")) is not None:  # a browser's request
                refusal = self.origins.refusal(origin, headers.get(b"host"))
                if refusal is not None:
                    raise Forbidden(refusal)
                cors = _cors(origin) if self.origins.listed(origin.decode("latin-1").lower()) else []
            if plane is None:
                raise NotReady("the service is starting")
            if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
                raise UnsupportedMediaType(
                    "a v2 infer body is JSON (application/json), optionally followed by binary tensor data "
                    "(application/octet-stream); multipart is not accepted (images go to /v1/classify)"
                )
            limit = plane.settings.max_body_bytes
            body = await read_body(receive, limit, headers.get(b"content-length"))
            body = decode_body(body, headers.get(b"content-encoding"), limit)
            header_length = headers.get(b"inference-header-content-length")
            content, json_size, shadowed = await plane.infer(
                name, version, body, None if header_length is None else header_length.decode("latin-1")
            )
            status = 200
            if json_size is None:
                extra = _JSON
            else:
                extra = [*_BINARY, (b"inference-header-content-length", str(json_size).encode())]
        except ClientGone:
            return
        except ServiceError as exc:
            status, content = exc.status_code, orjson.dumps({"error": exc.message})
            extra = _JSON + [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        except Exception:
            log.exception("infer on model %r failed", name)
            status, content, extra = 500, orjson.dumps({"error": f"internal error serving model {name!r}"}), _JSON
        finally:
            if plane is not None:
                plane.metrics.observe_request("infer", name if plane.registry.known(name) else "unknown", started)
        response_headers = [*extra, *cors, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})
        if shadowed is not None and plane is not None:
            plane.shadow.offer(shadowed)  # the answer is out: the teacher's run is off this request's path
