"""docker compose for real: the stack comes up under a real engine and is checked from the host.

One stack per module (tests/deploy/conftest.py); the tests run in file order and the last one stops the api.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from compose_stack import API_IMAGE, COMPOSE_FILES, ROOT, Stack, run, wait_for

from modelrepo.layout import model_path, read_card

# The first test's setup builds the images and may train the quick models: minutes on a fresh machine.
pytestmark = pytest.mark.timeout(1800)

MODELS = ("fmnist-teacher", "fmnist-student")
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "distill-serve.json"


def container(stack: Stack, service: str) -> dict:  # type: ignore[type-arg]
    (cid,) = stack("ps", "-q", service).split()
    return json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True).stdout)[0]


def prom_query(stack: Stack, expr: str) -> list[dict]:  # type: ignore[type-arg]
    response = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("files", [["-f", "docker-compose.yml"], COMPOSE_FILES], ids=["compose", "with-test-override"])
def test_compose_files_are_valid_for_compose_v1(files: list[str], docker_engine: None) -> None:
    env = os.environ | {"DISTILL_TEST_MODELS": "/models"}
    result = subprocess.run(
        ["docker-compose", *files, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_ready_and_trainer_completed(stack: Stack) -> None:
    assert httpx.get(f"{stack.api}/v2/health/ready").status_code == 200
    assert httpx.get(f"{stack.api}/v2/health/live").status_code == 200
    trainer = container(stack, "trainer")["State"]
    assert (trainer["Status"], trainer["ExitCode"]) == ("exited", 0)


def test_api_container_runs_as_non_root_and_turns_healthy(stack: Stack) -> None:
    api = container(stack, "api")
    assert api["Config"]["User"] == "10001:10001"
    assert api["HostConfig"]["ReadonlyRootfs"] is True  # as in Kubernetes: it serves with nothing to write
    assert stack("exec", "-T", "api", "id", "-u").strip() == "10001"
    assert api["Config"]["Entrypoint"][:3] == ["/opt/venv/bin/python", "-m", "service"]
    # Docker's own healthcheck (the image's HEALTHCHECK, restated in compose) probes /v2/health/ready.
    wait_for("api healthy", lambda: container(stack, "api")["State"]["Health"]["Status"] == "healthy", 90, 2)


def infer(stack: Stack, name: str, rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Random rows through tritonclient.http; returns (input, logits)."""
    client = triton.InferenceServerClient(url=stack.api.removeprefix("http://"))
    card = read_card(stack.models / name / "config.json")
    shape = [rows if d == -1 else d for d in card.input.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    request = triton.InferInput(card.input.name, shape, card.input.datatype)
    request.set_data_from_numpy(x)
    result = client.infer(name, [request], outputs=[triton.InferRequestedOutput(card.output.name)])
    return x, result.as_numpy(card.output.name)


@pytest.mark.parametrize("name", MODELS)
def test_v2_inference_through_tritonclient_matches_onnxruntime(stack: Stack, name: str) -> None:
    """A standard v2 client gets the same logits from the container as onnxruntime on the host."""
    client = triton.InferenceServerClient(url=stack.api.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready(name)
    x, logits = infer(stack, name)
    card = read_card(stack.models / name / "config.json")
    session = ort.InferenceSession(str(model_path(stack.models, name, card.latest_version)))
    (expected,) = session.run([card.output.name], {card.input.name: x})
    assert logits.shape == (4, len(card.labels))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_prometheus_scrapes_the_api(stack: Stack) -> None:
    def api_target_up() -> bool:
        targets = httpx.get(f"{stack.prometheus}/api/v1/targets").json()["data"]["activeTargets"]
        return any(t["labels"]["job"] == "distill-api" and t["health"] == "up" for t in targets)

    wait_for("the api target up in Prometheus", api_target_up, 60)
    series = wait_for("distill_ series in Prometheus", lambda: prom_query(stack, '{__name__=~"distill_.+"}'), 30)
    names = {s["metric"]["__name__"] for s in series}  # type: ignore[attr-defined]
    assert {"distill_model_info", "distill_inference_duration_seconds_bucket"} <= names
    loaded = {s["metric"]["model"] for s in prom_query(stack, "distill_model_info")}
    assert set(MODELS) <= loaded <= set(MODELS) | {f"{m}-int8" for m in MODELS}  # and the INT8 copies published


def test_every_dashboard_query_runs_on_the_real_prometheus(stack: Stack) -> None:
    """Each dashboard query is valid PromQL for the real server; the speedup join finds the teacher/student pair."""
    queries = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    for expr in queries:
        prom_query(stack, expr.replace("$__rate_interval", "1m"))
    (speedup,) = [q for q in queries if "group_right" in q and "histogram_quantile" in q]

    def speedup_after_traffic() -> list[dict]:  # type: ignore[type-arg]
        # Rates need traffic between two scrapes: keep both models busy until the ratio has a value.
        for name in MODELS:
            infer(stack, name)
        series = prom_query(stack, speedup.replace("$__rate_interval", "1m"))
        # One series per student of the teacher (an INT8 copy too); only those with traffic have a value.
        return [s for s in series if math.isfinite(float(s["value"][1]))]

    (pair,) = wait_for("a finite speedup", speedup_after_traffic, 60, 2)  # type: ignore[misc]
    assert (pair["metric"]["model"], pair["metric"]["teacher"]) == ("fmnist-student", "fmnist-teacher")
    assert float(pair["value"][1]) > 0


def test_loadtest_profile_runs_locust_headless_into_its_volume(stack: Stack) -> None:
    """`--profile loadtest`: locust (exit 0: no request failed) against api, CSV and HTML in the reports volume."""
    stack("--profile", "loadtest", "run", "--rm", "locust")
    volume = f"{stack.project}_loadtest-reports"
    stats = run(["docker", "run", "--rm", "-v", f"{volume}:/reports:ro", "--entrypoint", "cat", API_IMAGE,
                 "/reports/locust_stats.csv"])  # fmt: skip
    (aggregated,) = [row for row in csv.DictReader(io.StringIO(stats)) if row["Name"] == "Aggregated"]
    assert int(aggregated["Request Count"]) > 0
    assert int(aggregated["Failure Count"]) == 0


def test_sigterm_stops_the_api_gracefully(stack: Stack) -> None:
    """Exec-form entrypoint: uvicorn itself gets SIGTERM and exits 0, rather than being killed (137)."""
    stack("stop", "-t", "20", "api")
    state = container(stack, "api")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert re.search(r"Shutting down|Finished server process", stack("logs", "--no-color", "api"))
