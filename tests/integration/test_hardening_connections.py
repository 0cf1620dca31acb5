"""Slow, silent and careless clients against a real server: slow bodies do not starve requests whose body has
arrived and are answered 408; headers sent too slowly are 408; connections that never send are closed; at the
open-file limit new connections evict idle ones (or are refused with 503) without a log flood; uvicorn's own 400
is JSON; clients leaving mid-upload cost one debug line, not a traceback."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import Server, run_service

from distill_bench.servers.process import ensure_open_files

INFER = "/v2/models/tiny-student/infer"
BODY = json.dumps(
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}]}
).encode()


def connect(server: Server) -> socket.socket:
    host, port = server.host_port.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def head(path: str, length: int, content_type: str = "application/json") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout_s` passes)."""
    sock.settimeout(timeout_s)
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def error_of(response: bytes) -> str:
    headers, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), response[:300]
    message: str = json.loads(body)["error"]
    return message


@contextmanager
def held(server: Server, count: int, first_bytes: bytes) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(connect(server))
            if first_bytes:
                sock.sendall(first_bytes)
            socks.append(sock)
        yield socks


def counter(server: Server, reason: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "distill_connections_closed_total" and s.labels.get("reason") == reason:
                return float(s.value)
    return 0.0


@pytest.fixture
def many_files() -> None:
    if not ensure_open_files(4096):
        pytest.skip("needs 4096 open files; this machine's hard limit is lower (ulimit -Hn)")


@pytest.mark.usefixtures("many_files")
def test_slow_bodies_do_not_starve_requests_whose_body_has_arrived(model_repo: Path, tmp_path: Path) -> None:
    with run_service(model_repo, tmp_path / "service.log") as server, held(server, 512, head(INFER, 4096) + b"{"):

        def one(_: int) -> int:
            return httpx.post(f"{server.url}{INFER}", content=BODY, timeout=30).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200, {s: statuses.count(s) for s in set(statuses)}


def test_a_body_that_does_not_arrive_in_time_is_408(model_repo: Path, tmp_path: Path) -> None:
    env = {"DISTILL_BODY_TIMEOUT_S": "0.5"}
    with run_service(model_repo, tmp_path / "service.log", env) as server, connect(server) as sock:
        sock.sendall(head(INFER, 4096) + b'{"inputs": [')
        response = answer(sock, 10)
        assert response.startswith(b"HTTP/1.1 408"), response[:200]
        assert "body_timeout_s" in error_of(response)
        assert counter(server, "body_timeout") == 1


def test_headers_sent_too_slowly_are_408(model_repo: Path, tmp_path: Path) -> None:
    env = {"DISTILL_HEADER_TIMEOUT_S": "0.5"}
    with run_service(model_repo, tmp_path / "service.log", env) as server, connect(server) as sock:
        started = time.monotonic()
        for byte in b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n":  # a byte at a time, never finished
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # closed by the server
            if select.select([sock], [], [], 0.1)[0]:
                break
        response = answer(sock, 10)
        assert time.monotonic() - started < 8
        assert response.startswith(b"HTTP/1.1 408") and "header_timeout_s" in error_of(response), response[:200]


def test_connections_that_never_send_are_closed(model_repo: Path, tmp_path: Path) -> None:
    env = {"DISTILL_IDLE_TIMEOUT_S": "0.5"}
    with run_service(model_repo, tmp_path / "service.log", env) as server, held(server, 200, b"") as socks:
        deadline = time.monotonic() + 10
        open_ones = list(socks)
        while open_ones and time.monotonic() < deadline:
            readable, _, _ = select.select(open_ones, [], [], 0.5)
            for sock in readable:
                assert sock.recv(1) == b""  # closed without a word: nothing was asked
                open_ones.remove(sock)
        assert not open_ones, f"{len(open_ones)} of 200 silent connections still open"
        assert counter(server, "idle_timeout") == 200


OPEN_FILES = 256  # the service's limit in the next two tests: its max_connections is then 192


@pytest.mark.usefixtures("many_files")
def test_at_the_open_file_limit_idle_connections_make_room_for_probes(model_repo: Path, tmp_path: Path) -> None:
    prefix = ("prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}", "--")
    with run_service(model_repo, tmp_path / "service.log", prefix=prefix) as server, held(server, 400, b""):
        for _ in range(20):
            assert httpx.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        assert counter(server, "evicted") >= 400 - 192
        log = server.log
    text = log.read_text()
    assert "Traceback" not in text and "out of system resource" not in text
    assert len(text.splitlines()) < 40, text[-3000:]  # no line per connection
    assert "max_connections 192 reached" in text


@pytest.mark.usefixtures("many_files")
def test_at_the_limit_with_no_idle_connection_new_ones_get_503(model_repo: Path, tmp_path: Path) -> None:
    prefix = ("prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}", "--")
    env = {"DISTILL_HEADER_TIMEOUT_S": "60"}
    with (
        run_service(model_repo, tmp_path / "service.log", env, prefix=prefix) as server,
        held(server, 192, b"GET /v2/health/live HTTP/1.1\r\n"),  # every slot reading headers: none idle
    ):
        time.sleep(1.0)  # the server has read them all (an idle newcomer before them would be evicted)
        with connect(server) as late:
            response = answer(late, 10)
        assert response.startswith(b"HTTP/1.1 503") and "max_connections" in error_of(response), response[:300]
    assert "Traceback" not in server.log.read_text()


def test_a_request_httptools_cannot_parse_is_a_json_400(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        response = answer(sock, 10)
    assert response.startswith(b"HTTP/1.1 400") and "HTTP" in error_of(response), response


def test_clients_leaving_mid_upload_cost_no_traceback(model_repo: Path, tmp_path: Path) -> None:
    chunk = b"x" * (100 << 10)  # past the 64 KB that uvicorn buffers: the app is reading the body
    with run_service(model_repo, tmp_path / "service.log", {"DISTILL_LOG_LEVEL": "info"}) as server:
        for path, content_type in (("/v1/classify", "multipart/form-data; boundary=b"), (INFER, "application/json")):
            for _ in range(10):
                with connect(server) as sock:
                    sock.sendall(head(path, 1 << 20, content_type) + chunk)
                time.sleep(0.05)
        assert httpx.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        text = server.log.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]
