"""Reading request bodies within the configured size limit."""

from __future__ import annotations

from starlette.requests import Request

from service.errors import BadRequest, PayloadTooLarge


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body exceeds {limit} bytes (max_body_bytes)")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes whether or not Content-Length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length must be an integer, got {declared!r}") from None
        if size > limit:
            raise _too_large(limit)
        return await request.body()
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
