"""Errors carry their HTTP status; one handler turns each into `{"error": "..."}`."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of every error the service answers on purpose."""

    status_code = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    """The request does not follow the protocol (malformed JSON, wrong input name, shape or datatype)."""

    status_code = 400


class Unauthorized(ServiceError):
    """A state-changing request without the right bearer token (`service.control`)."""

    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="distill-serve"'})


class Forbidden(ServiceError):
    """A browser request from a web page of another origin (`service.origin`), or repository control while it
    is off."""

    status_code = 403


class NotFound(ServiceError):
    """Unknown model or version."""

    status_code = 404


class PayloadTooLarge(ServiceError):
    """Body or batch over the configured limits."""

    status_code = 413


class UnsupportedMediaType(ServiceError):
    status_code = 415


class InvalidInput(ServiceError):
    """Well-formed but unusable values: NaN/Inf, an empty batch, pixels out of range, a non-image file."""

    status_code = 422


class NotReady(ServiceError):
    """The server or model is loading, failed to load, or is shutting down."""

    status_code = 503


class Overloaded(ServiceError):
    """The model's queue is full: retry later."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class InferenceFailed(ServiceError):
    """onnxruntime failed on a batch; only that batch's requests fail."""

    status_code = 500


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": message}),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


async def _on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if exc.status_code == 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.message)
    return error_response(exc.status_code, exc.message, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    """A client that left mid-body is no error of ours: one debug line, and an answer nobody reads."""
    log.debug("%s %s: the client disconnected before its body arrived", request.method, request.url.path)
    return Response(status_code=400)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug of ours still answers `{"error": ...}`, like every other error (the traceback goes to the log)."""
    return error_response(500, f"internal error serving {request.method} {request.url.path}")


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
    )
    return error_response(422, f"invalid request: {problems}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected)
