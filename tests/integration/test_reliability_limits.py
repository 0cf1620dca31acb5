"""Body limits on the wire (a real uvicorn): a declared Content-Length past the limit is refused before the body
is read, a chunked body is cut off once past it, and a barrage of bad input leaves the process's memory bounded."""

from __future__ import annotations

import io
import select
import socket
import struct
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image
from servers import Server, run_service

from distill_bench.servers.procfs import rss_bytes

LIMIT = 8 << 20  # the default max_body_bytes
PATHS = ["/v2/models/tiny-student/infer", "/v1/classify"]


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tiny_models import make_repo

    root = tmp_path_factory.mktemp("limits")
    with run_service(make_repo(root / "models"), root / "service.log") as server:
        yield server


def connect(server: Server) -> socket.socket:
    host, port = server.host_port.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> bytes:
    """Status line, headers and a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _expected(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _expected(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return len(head) + 4 + (int(lengths[0]) if lengths else 0)


@pytest.mark.parametrize("path", PATHS)
def test_declared_length_past_the_limit_is_413_without_reading_the_body(limited: Server, path: str) -> None:
    with connect(limited) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n"
        sock.sendall(head.encode() + b'{"inputs": [')  # then nothing: the server must answer without the rest
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"max_body_bytes" in response


@pytest.mark.parametrize("path", PATHS)
def test_chunked_body_is_cut_off_past_the_limit(limited: Server, path: str) -> None:
    chunk = b"0" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    stream = 256 << 20  # what a client would send if nobody stopped it
    sent = 0
    with connect(limited) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        sock.settimeout(0.5)
        while sent < stream and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(frame)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: its side is full, or closed
            sent += len(chunk)
        sock.settimeout(10)
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < LIMIT + (48 << 20), f"sent {sent >> 20} MiB before the server refused"  # socket buffers only


def bomb_png() -> bytes:
    """A PNG header declaring 60000 x 60000 greyscale pixels, with no data after it."""
    header = b"IHDR" + struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))


def test_memory_stays_bounded_under_bad_input(limited: Server) -> None:
    small = io.BytesIO()
    Image.new("L", (4000, 4000)).save(small, format="PNG")  # 16 M pixels in ~16 kB: within the budget once
    attacks: list[tuple[str, dict[str, object]]] = [
        ("/v1/classify", {"files": [("files", ("bomb.png", bomb_png(), "image/png"))]}),
        ("/v1/classify", {"files": [("files", (f"{i}.png", small.getvalue(), "image/png")) for i in range(200)]}),
        ("/v1/classify", {"content": b'{"inputs": [' + b"1.5," * (LIMIT // 4 - 8) + b"1]}"}),
        ("/v1/classify", {"content": b"[" * (LIMIT // 2) + b"]" * (LIMIT // 2)}),
        (PATHS[0], {"content": b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], '
                    b'"data": [' + b"0.5," * (LIMIT // 4 - 40) + b"0]}]}"}),
        (PATHS[0], {"content": b"x" * (LIMIT + 1)}),
    ]  # fmt: skip
    statuses: set[int] = set()
    with httpx.Client(base_url=limited.url, timeout=60) as client:
        client.post(PATHS[0], content=b"{}")  # warm the path
        before = rss_bytes(limited.pid)
        peak = before
        for _ in range(3):
            for path, kwargs in attacks:
                response = client.post(path, **kwargs)
                statuses.add(response.status_code)
                assert 400 <= response.status_code < 500 and response.json()["error"], response.text[:300]
                peak = max(peak, rss_bytes(limited.pid))
        time.sleep(0.5)
        after = rss_bytes(limited.pid)
    print(f"RSS {before >> 20} MiB before, peak {peak >> 20} MiB, {after >> 20} MiB after {3 * len(attacks)} attacks")
    assert {400, 413, 422} <= statuses
    # 200 images of 16 M pixels would be 3.2 GB decoded; the budget stops after the first.
    assert peak - before < 400 << 20, f"RSS grew from {before >> 20} MiB to a peak of {peak >> 20} MiB"
    assert after - before < 200 << 20, f"RSS grew from {before >> 20} MiB to {after >> 20} MiB"
