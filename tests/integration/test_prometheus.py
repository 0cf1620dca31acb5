"""A real Prometheus server scrapes the real service; both models' inference histograms arrive through its API."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from servers import Server
from tiers import require

from distill_bench.servers.process import free_port, running

PROMETHEUS = shutil.which("prometheus")


@contextlib.contextmanager
def run_prometheus(target: str, workdir: Path) -> Iterator[str]:
    assert PROMETHEUS is not None
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: distill\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    cmd = [
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    with running(cmd, f"http://127.0.0.1:{port}", "/-/ready", workdir / "prometheus.log", None, 60.0) as prometheus:
        yield prometheus.url


def models_with_samples(prometheus: str) -> set[str]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": "distill_inference_duration_seconds_count"})
    response.raise_for_status()
    return {r["metric"]["model"] for r in response.json()["data"]["result"] if float(r["value"][1]) > 0}


def test_prometheus_scrapes_both_models(server: Server, tmp_path: Path) -> None:
    require(PROMETHEUS is not None, "the Prometheus server (Debian package `prometheus`) is not installed")
    rows = {"inputs": [[0.0] * 784, [255.0] * 784]}
    assert httpx.post(f"{server.url}/v1/compare", json=rows).status_code == 200
    with run_prometheus(server.host_port, tmp_path) as prometheus:
        deadline = time.monotonic() + 60
        while (found := models_with_samples(prometheus)) != {"tiny-student", "tiny-teacher"}:
            assert time.monotonic() < deadline, f"Prometheus has inference histograms for {found} only"
            time.sleep(0.5)
        buckets = httpx.get(
            f"{prometheus}/api/v1/query",
            params={"query": 'distill_inference_duration_seconds_bucket{model="tiny-student", le="1e-05"}'},
        ).json()["data"]["result"]
        assert buckets, "the 10 us bucket is missing"
