"""A request body within the input limits, for every route: the v2 fast path and the friendly endpoints alike.

Bytes first: a declared Content-Length past the limit is refused unread, a longer stream once past it, and a
compressed body (`Content-Encoding: gzip | deflate`) is inflated no further than the limit. Then rows: a batch
is between one row and `max_request_rows`.
"""

from __future__ import annotations

import zlib

from starlette.types import Receive

from service.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body exceeds {limit} bytes (max_body_bytes)")


async def read_body(receive: Receive, limit: int, declared: bytes | None) -> bytes:
    """The whole body from ASGI `receive`; `declared` is the Content-Length header, if any."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length must be an integer, got {declared!r}") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_body(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """Undo `Content-Encoding: gzip | deflate` (tritonclient's request compression) within the size limit."""
    if encoding is None or encoding == b"identity":
        return body
    wbits = {b"gzip": 31, b"deflate": 15}.get(encoding.lower())
    if wbits is None:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding.decode('latin-1')!r} is not supported; use gzip or deflate"
        )
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding.decode()} data: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed request body exceeds {limit} bytes (max_body_bytes)")
    return data


def check_rows(rows: int, limit: int) -> None:
    """A batch of at least one row and at most `limit` (`max_request_rows`)."""
    if rows == 0:
        raise InvalidInput("the batch is empty: send at least one row")
    if rows > limit:
        raise PayloadTooLarge(f"the batch has {rows} rows; at most {limit} per request (max_request_rows)")
