"""Live version rollout on the real server under steady load: real concurrent clients count every failed request
(there must be none) while a new version is loaded, warmed and swapped in, and while a broken one is reported and
left out; readiness answers 200 throughout. With two workers, each polls and swaps. Bounded: a few seconds of
load per phase, each wait with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import Server, run_service
from tiny_models import add_version, mlp_student

from distill_bench.servers.service import wait_workers

STUDENT = "tiny-student"
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.1] * 784}]}
CLIENTS = 8
POLL = {"DISTILL_MODEL_CONTROL": "poll", "DISTILL_REPOSITORY_POLL_S": "0.2", "DISTILL_REQUEST_TIMEOUT_S": "5"}


@dataclass
class Load:
    """What the clients saw: the version of every answer, and every failure (status or exception)."""

    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    readiness: Counter[int] = field(default_factory=Counter)
    slowest_s: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def client_loop(url: str, load: Load, fresh_connections: bool) -> None:
    limits = httpx.Limits(max_keepalive_connections=0) if fresh_connections else httpx.Limits()
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:
        while not load.stop.is_set():
            started = time.perf_counter()
            try:
                response = await client.post(f"/v2/models/{STUDENT}/infer", json=BODY)
            except httpx.HTTPError as exc:
                load.failures.append(repr(exc))
                continue
            load.slowest_s = max(load.slowest_s, time.perf_counter() - started)
            if response.status_code == 200:
                load.versions[response.json()["model_version"]] += 1
            else:
                load.failures.append(f"{response.status_code} {response.text}")


async def probe_loop(url: str, load: Load) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        while not load.stop.is_set():
            load.readiness[(await client.get("/v2/health/ready")).status_code] += 1
            await asyncio.sleep(0.05)


async def served(url: str, version: str, checks: int = 1) -> bool:
    """`checks` fresh connections (with several workers, the kernel spreads them) all answered by `version`."""
    for _ in range(checks):
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            if (await client.get(f"/v2/models/{STUDENT}")).json()["versions"] != [version]:
                return False
    return True


async def answered_more(load: Load, version: str, at_least: int = CLIENTS) -> None:
    """A second, and until the clients got `at_least` more answers from `version` (bounded: a busy machine may
    be slow to answer, but not this slow)."""
    target, deadline = load.versions[version] + at_least, time.monotonic() + 30
    await asyncio.sleep(1.0)
    while load.versions[version] < target:
        assert time.monotonic() < deadline, f"fewer than {at_least} answers from version {version} within 30 s"
        await asyncio.sleep(0.1)


async def under_load(server: Server, phases: list[tuple[object, str]], fresh: bool = False, checks: int = 1) -> Load:
    """Keep CLIENTS clients busy; for each (change, version) phase make the change, wait until `version` is
    served, and load it a second more."""
    load = Load()
    tasks = [asyncio.create_task(client_loop(server.url, load, fresh)) for _ in range(CLIENTS)]
    tasks.append(asyncio.create_task(probe_loop(server.url, load)))
    try:
        await answered_more(load, "1")
        for change, version in phases:
            assert callable(change)
            change()
            deadline = time.monotonic() + 30
            while not await served(server.url, version, checks):
                assert time.monotonic() < deadline, f"version {version} not served within 30 s"
                await asyncio.sleep(0.2)
            await answered_more(load, version)
    finally:
        load.stop.set()
        await asyncio.gather(*tasks)
    return load


def test_a_rollout_and_a_broken_version_under_load_fail_no_request(model_repo: Path, tmp_path: Path) -> None:
    with run_service(model_repo, tmp_path / "service.log", POLL) as server:
        phases = [
            (lambda: add_version(model_repo, STUDENT, mlp_student(seed=5), 2), "2"),
            (lambda: add_version(model_repo, STUDENT, mlp_student(seed=6), 3, sha256="0" * 64), "2"),
        ]
        load = asyncio.run(under_load(server, phases))
        index = httpx.post(f"{server.url}/v2/repository/index").json()
        log = server.log.read_text()
    assert load.failures == []
    assert load.versions["1"] > 0 and load.versions["2"] > 0 and "3" not in load.versions
    assert set(load.readiness) == {200}
    assert load.slowest_s < 5  # within request_timeout_s: no request waited out its deadline
    broken = next(e for e in index if e.get("version") == "3")
    assert broken["state"] == "UNAVAILABLE" and "does not match its card" in broken["reason"]
    assert "closed tiny-student v1" in log


def test_every_worker_polls_and_swaps(model_repo: Path, tmp_path: Path) -> None:
    env = {**POLL, "DISTILL_WORKERS": "2"}
    with run_service(model_repo, tmp_path / "service.log", env) as server:
        wait_workers(server.log, 2)
        phases = [(lambda: add_version(model_repo, STUDENT, mlp_student(seed=5), 2), "2")]
        load = asyncio.run(under_load(server, phases, fresh=True, checks=10))
        log = server.log.read_text()
    assert load.failures == []
    assert load.versions["1"] > 0 and load.versions["2"] > 0
    assert set(load.readiness) == {200}
    swapped = {line.split("]")[0] for line in log.splitlines() if "loaded tiny-student v2" in line}
    assert len(swapped) == 2, swapped  # both workers loaded version 2
