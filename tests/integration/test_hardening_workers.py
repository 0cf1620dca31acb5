"""Several worker processes (`DISTILL_WORKERS=2`): SIGTERM under load drops no accepted request, and a worker
restarted after a crash takes no traffic until its models are warm, so readiness never flaps."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from servers import run_service
from tiny_models import add_model, slow_model

from distill_bench.results.hardening import HardeningSettings
from distill_bench.runs.hardening import shutdown_round
from distill_bench.servers.service import SERVING, wait_workers, worker_pids
from modelrepo.layout import card_path, read_card

ROUNDS = 3


def test_sigterm_to_two_workers_under_load_drops_no_request(model_repo: Path, tmp_path: Path) -> None:
    """10 clients on kept-alive connections; a request sent on an accepted connection must be answered. Refused
    connections (after the listening socket closed) are fine: nothing was sent, a client can retry elsewhere."""
    settings = HardeningSettings(model_repo, tmp_path, workers=2, shutdown_clients=10)
    student = read_card(card_path(model_repo, "tiny-student"))
    rounds = [shutdown_round(settings, student, tmp_path / f"round-{i}.log") for i in range(ROUNDS)]
    print(rounds)
    assert all(r["answered"] > 0 and r["refused"] > 0 for r in rounds), rounds
    assert [r["dropped"] for r in rounds] == [0] * ROUNDS, rounds


def test_a_restarted_worker_takes_no_traffic_until_its_models_are_warm(model_repo: Path, tmp_path: Path) -> None:
    add_model(model_repo, "slow", slow_model(), "teacher")  # a few seconds of warm-up: a window to fall into
    env = {"DISTILL_WORKERS": "2", "DISTILL_WARMUP_RUNS": "10", "DISTILL_STUDENT": "tiny-student"}
    with run_service(model_repo, tmp_path / "service.log", env) as server:
        first = wait_workers(server.log, 2)
        answers: list[tuple[str, int]] = []
        stop = threading.Event()

        def probe() -> None:
            infer = {"inputs": [[0] * 784]}
            while not stop.is_set():
                try:  # fresh connections: the kernel hands each to either worker
                    answers.append(("ready", httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code))
                    answers.append(("classify", httpx.post(f"{server.url}/v1/classify", json=infer).status_code))
                except httpx.TransportError:
                    pass  # in flight on the worker that was killed
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            time.sleep(0.5)
            os.kill(first[0], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while len(worker_pids(server.log, SERVING)) < 3:  # the replacement has loaded its models
                assert time.monotonic() < deadline, server.log.read_text()[-3000:]
                time.sleep(0.1)
            time.sleep(1.0)  # and serves
        finally:
            stop.set()
            prober.join()
    refused = [(what, status) for what, status in answers if status != 200]
    assert len(answers) > 50 and not refused, f"{len(refused)} of {len(answers)} answers were not 200: {refused[:5]}"
