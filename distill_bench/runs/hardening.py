"""`hardening`: the service against hostile but legal clients, measured: memory under concurrent uploads of a
large image, the liveness probe's latency while large images are decoded, valid requests while hundreds of
connections hold a half-sent body, and requests dropped when several workers are stopped under load.

Each measurement starts its own service (`python -m service` on a free 127.0.0.1 port) with the service's
defaults, so the figures are what a user of those defaults gets. Clients are the standard library's, on threads.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import signal
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from distill_bench.pair import student_and_teacher
from distill_bench.results.hardening import (
    HardeningResult,
    HardeningSettings,
    LiveProbe,
    Shutdown,
    SlowBodies,
    Uploads,
)
from distill_bench.results.machine import this_machine
from distill_bench.runs.soak import RssSampler
from distill_bench.servers.process import RunningService, ensure_open_files
from distill_bench.servers.procfs import rss_bytes
from distill_bench.servers.service import serve, wait_workers
from modelrepo.card import ModelCard

BOUNDARY = "distill-bench-hardening"
MIB = 2**20


def large_png(side: int) -> bytes:
    """A side x side RGBA PNG of one colour: a few tens of KB on the wire, side^2 pixels once decoded."""
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (120, 120, 120, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(png: bytes) -> tuple[bytes, str]:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="large.png"\r\n'
    body = (head + "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def infer_body(card: ModelCard) -> bytes:
    shape = [1, *card.input.shape[1:]]
    data = np.zeros(int(np.prod(shape)), dtype=np.float32).tolist()
    tensor = {"name": card.input.name, "shape": shape, "datatype": "FP32", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def _address(service: RunningService) -> tuple[str, int]:
    host, port = service.url.removeprefix("http://").split(":")
    return host, int(port)


def post(service: RunningService, path: str, body: bytes, content_type: str, timeout_s: float = 120.0) -> int:
    """One request on a fresh connection; its status, or 0 when the connection failed."""
    connection = http.client.HTTPConnection(*_address(service), timeout=timeout_s)
    try:
        connection.request("POST", path, body, {"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def measure_uploads(settings: HardeningSettings, log: Path) -> Uploads:
    png = large_png(settings.image_side)
    body, content_type = multipart(png)
    with serve(settings.models, log) as service:
        before = rss_bytes(service.pid)
        sampler = RssSampler(service.pid, 0.01)
        sampler.start()
        try:
            with ThreadPoolExecutor(settings.uploads) as pool:
                statuses = list(
                    pool.map(lambda _: post(service, "/v1/classify", body, content_type), range(settings.uploads))
                )
        finally:
            sampler.stop()
    peak = max(b for _, b in sampler.samples)
    return Uploads(len(png), before / MIB, peak / MIB, dict(Counter(statuses)))


def _until(stop: threading.Event, work: Callable[[], None]) -> None:
    while not stop.is_set():
        work()


def measure_live_probe(settings: HardeningSettings, log: Path) -> LiveProbe:
    body, content_type = multipart(large_png(settings.image_side))
    answered: list[int] = []
    latencies: list[float] = []
    with serve(settings.models, log) as service:
        stop = threading.Event()
        with ThreadPoolExecutor(settings.decode_clients) as pool:
            for _ in range(settings.decode_clients):
                pool.submit(_until, stop, lambda: answered.append(post(service, "/v1/classify", body, content_type)))
            time.sleep(1.0)  # the uploads are under way
            probe = http.client.HTTPConnection(*_address(service), timeout=30)
            ends = time.monotonic() + settings.probe_s
            while time.monotonic() < ends:
                started = time.perf_counter()
                probe.request("GET", "/v2/health/live")
                probe.getresponse().read()
                latencies.append(time.perf_counter() - started)
                time.sleep(0.02)
            probe.close()
            stop.set()
    ranked = sorted(latencies)
    return LiveProbe(
        probes=len(ranked),
        p50_ms=statistics.median(ranked) * 1e3,
        p99_ms=ranked[int(0.99 * (len(ranked) - 1))] * 1e3,
        max_ms=ranked[-1] * 1e3,
        uploads_answered=len(answered),
    )


def _slow_connection(address: tuple[str, int], path: str) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    sock.sendall(head.encode() + b"{")
    return sock


class SlowBodyHolder(threading.Thread):
    """Holds `count` connections that sent their headers and one byte of body; one the server closes is reopened."""

    def __init__(self, address: tuple[str, int], path: str, count: int) -> None:
        super().__init__(name="slow-bodies", daemon=True)
        self.address, self.path = address, path
        self.socks = [_slow_connection(address, path) for _ in range(count)]
        self.reopened = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            readable, _, _ = select.select(self.socks, [], [], 0.2)
            for sock in readable:  # an answer (408, 503) or a close: either way the server let go of it
                self.socks.remove(sock)
                sock.close()
                try:
                    self.socks.append(_slow_connection(self.address, self.path))
                    self.reopened += 1
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.join()
        for sock in self.socks:
            sock.close()


def measure_slow_bodies(settings: HardeningSettings, card: ModelCard, log: Path) -> SlowBodies:
    path = f"/v2/models/{card.name}/infer"
    body = infer_body(card)
    statuses: list[int] = []
    with serve(settings.models, log) as service:
        holder = SlowBodyHolder(_address(service), path, settings.slow_bodies)
        holder.start()
        try:
            stop = threading.Event()
            with ThreadPoolExecutor(settings.valid_clients) as pool:
                for _ in range(settings.valid_clients):
                    pool.submit(_until, stop, lambda: statuses.append(post(service, path, body, "application/json")))
                time.sleep(settings.probe_s)
                stop.set()
        finally:
            holder.close()
    return SlowBodies(settings.slow_bodies, holder.reopened, len(statuses), statuses.count(200))


def keep_alive_client(service: RunningService, path: str, body: bytes, tally: Counter[str]) -> None:
    """Sends on one kept-alive connection (a new one when the server closes it) until a connection is refused."""
    connection = http.client.HTTPConnection(*_address(service), timeout=30)
    ends = time.monotonic() + 60
    while time.monotonic() < ends:
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
        except ConnectionRefusedError:
            tally["refused"] += 1
            return
        except OSError:  # the kept-alive connection was closed before the request went out: not sent
            connection.close()
            continue
        try:
            response = connection.getresponse()
            response.read()
            tally["answered"] += 1
            if response.getheader("connection", "").lower() == "close":
                connection.close()
        except (OSError, http.client.HTTPException):
            tally["dropped"] += 1
            connection.close()


def shutdown_round(settings: HardeningSettings, card: ModelCard, log: Path) -> Counter[str]:
    tally: Counter[str] = Counter()
    path, body = f"/v2/models/{card.name}/infer", infer_body(card)
    with serve(settings.models, log, env={"DISTILL_WORKERS": str(settings.workers)}) as service:
        if settings.workers > 1:
            wait_workers(service.log, settings.workers)
        with ThreadPoolExecutor(settings.shutdown_clients) as pool:
            for _ in range(settings.shutdown_clients):
                pool.submit(keep_alive_client, service, path, body, tally)
            time.sleep(2.0)
            os.kill(service.pid, signal.SIGTERM)
    return tally


def measure_shutdown(settings: HardeningSettings, card: ModelCard, raw: Path) -> Shutdown:
    rounds = [shutdown_round(settings, card, raw / f"shutdown-{i}.log") for i in range(settings.shutdown_rounds)]
    return Shutdown([r["answered"] for r in rounds], [r["refused"] for r in rounds], [r["dropped"] for r in rounds])


def run_hardening(settings: HardeningSettings) -> HardeningResult:
    raw = settings.out / "hardening-raw"
    raw.mkdir(parents=True, exist_ok=True)
    ensure_open_files(4 * settings.slow_bodies + 1024)  # before any service starts: they inherit the limit
    student = student_and_teacher(settings.models).student
    print("concurrent large uploads ...", flush=True)
    uploads = measure_uploads(settings, raw / "uploads.log")
    print("liveness while decoding ...", flush=True)
    live = measure_live_probe(settings, raw / "live.log")
    print("slow bodies ...", flush=True)
    slow = measure_slow_bodies(settings, student, raw / "slow-bodies.log")
    print("SIGTERM with several workers ...", flush=True)
    shutdown = measure_shutdown(settings, student, raw)
    return HardeningResult(settings, this_machine(), uploads, live, slow, shutdown)
