"""`service.body`, which every route reads its body through: the size limit (declared or streamed), Content-Length,
decompression within the limit, client disconnects, and the batch's row limit."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable

import pytest
from asgi import Client

from service.body import ClientGone, check_rows, decode_body, read_body
from service.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType


def read(client: Client, limit: int, declared: bytes | None = None) -> bytes:
    return asyncio.run(read_body(client.receive, limit, declared))


def test_chunks_are_joined_in_order() -> None:
    assert read(Client(chunks=[b"ab", b"", b"cd"]), 4) == b"abcd"
    assert read(Client(), 4) == b""


def test_a_declared_length_past_the_limit_is_refused_unread() -> None:
    client = Client(chunks=[b"x" * 5])
    with pytest.raises(PayloadTooLarge, match="4 bytes"):
        read(client, 4, b"5")
    assert client.received == 0


def test_an_undeclared_stream_stops_at_the_chunk_past_the_limit() -> None:
    client = Client(chunks=[b"xx", b"xx", b"x", b"never read"])
    with pytest.raises(PayloadTooLarge, match="max_body_bytes"):
        read(client, 4)
    assert client.received == 3


def test_a_content_length_that_is_not_a_number_is_400() -> None:
    with pytest.raises(BadRequest, match="Content-Length"):
        read(Client(chunks=[b"{}"]), 4, b"two")


def test_a_client_gone_mid_body_is_client_gone() -> None:
    with pytest.raises(ClientGone):
        read(Client(chunks=[b"{"], disconnect=True), 100)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [(b"gzip", gzip.compress), (b"GZIP", gzip.compress), (b"deflate", zlib.compress)],
)
def test_gzip_and_deflate_are_inflated(encoding: bytes, compress: Callable[[bytes], bytes]) -> None:
    data = b'{"inputs": [[0, 1, 2]]}' * 10
    assert decode_body(compress(data), encoding, len(data)) == data


def test_plain_bodies_are_returned_as_they_are() -> None:
    assert decode_body(b"abc", None, 3) == b"abc"
    assert decode_body(b"abc", b"identity", 3) == b"abc"


def test_a_compressed_body_is_inflated_no_further_than_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)  # about 10 kB that would inflate to 10 MB
    with pytest.raises(PayloadTooLarge, match="decompressed"):
        decode_body(bomb, b"gzip", 1_000_000)


def test_bad_or_unknown_encodings_are_refused() -> None:
    with pytest.raises(BadRequest, match="not valid gzip"):
        decode_body(b"not gzip at all", b"gzip", 1000)
    with pytest.raises(UnsupportedMediaType, match="'br'"):
        decode_body(b"...", b"br", 1000)


def test_rows_between_one_and_the_limit() -> None:
    check_rows(1, 4)
    check_rows(4, 4)
    with pytest.raises(InvalidInput, match="empty"):
        check_rows(0, 4)
    with pytest.raises(PayloadTooLarge, match="max_request_rows"):
        check_rows(5, 4)
