"""The locustfile, headless, against the real service: every request answered, and counted by the service."""

from __future__ import annotations

from pathlib import Path

import httpx
from servers import Server
from tiers import require

from distill_bench.drivers.locust import LoadSettings, run_locust
from distill_bench.scrape import delta, parse_samples, total

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def test_locust_requests_all_succeed_and_the_service_counts_each(server: Server, tmp_path: Path) -> None:
    require(Path(DATA_DIR, "t10k-images-idx3-ubyte.gz").exists(), "Debian package dataset-fashion-mnist")
    before = parse_samples(httpx.get(f"{server.url}/metrics").text)
    stats = run_locust(
        server.url, ["student", "teacher", "cascade", "compare"], tmp_path / "load", LoadSettings(4, 4, DATA_DIR)
    )
    seen = delta(parse_samples(httpx.get(f"{server.url}/metrics").text), before)
    by_name = stats.by_name

    assert stats.failures == 0
    assert stats.requests > 20
    assert set(by_name) == {"student json", "student image", "teacher json", "teacher image", "cascade json",
                            "compare json"}  # fmt: skip
    requests = "distill_request_duration_seconds_count"
    assert total(seen, requests) == stats.requests
    assert total(seen, requests, endpoint="classify", model="tiny-student") == (
        by_name["student json"] + by_name["student image"]
    )
    assert total(seen, requests, endpoint="classify", model="tiny-teacher") == (
        by_name["teacher json"] + by_name["teacher image"]
    )
    assert total(seen, requests, endpoint="classify", model="cascade") == by_name["cascade json"]
    assert total(seen, requests, endpoint="compare") == by_name["compare json"]
    # Every request carried one true label. Compare runs both models on it; cascade runs the student, and the
    # teacher too on the rows it falls back on, where the two answers are compared.
    fallbacks = total(seen, "distill_cascade_total", outcome="teacher")
    assert total(seen, "distill_cascade_total") == by_name["cascade json"]
    assert total(seen, "distill_predictions_labeled_total") == stats.requests + by_name["compare json"] + fallbacks
    assert total(seen, "distill_agreement_total") == by_name["compare json"] + fallbacks
