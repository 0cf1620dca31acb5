"""`GET /v2/models[/{name}[/versions/{v}]]/stats`: Triton's statistics extension (tritonclient's
`get_inference_statistics`), read from the same scrape as `/metrics`, so with several workers it is their sum.

What each figure is, from the Prometheus families (one source of truth):
- `inference_count`: rows run (`distill_batch_size_sum`); `execution_count`: runs (`distill_batch_size_count`).
- `success.count`: requests answered (`distill_inference_requests_total{outcome="success"}`); `success.ns`: the
  whole-request time of requests naming the model (`distill_request_duration_seconds_sum`, failures included:
  the histogram has no outcome label).
- `fail.count`: requests failed or refused (outcome `error`, `rejected`); their time is not measured apart (0).
- `queue`: `distill_queue_duration_seconds`, one per request; `compute_infer`: `distill_inference_duration_seconds`,
  one per run (a run takes several requests' rows); `compute_input` and `compute_output` are inside it (0 ns).
- Figures are per model, every version since start together (the metrics have no version label); an entry names
  the newest version served, or the one asked for.
"""

from __future__ import annotations

from typing import Any

from service.live import Samples, scrape_samples
from service.loading import ServedModel
from service.metrics import Metrics

NS = 1e9


def _sum(found: Samples, sample: str, model: str, **labels: str) -> float:
    return sum(
        s.value
        for s in found[sample]
        if s.labels.get("model") == model and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _duration(count: float, seconds: float) -> dict[str, int]:
    return {"count": round(count), "ns": round(seconds * NS)}


def _entry(found: Samples, name: str, version: str) -> dict[str, Any]:
    def histogram(family: str) -> dict[str, int]:
        return _duration(_sum(found, f"{family}_count", name), _sum(found, f"{family}_sum", name))

    requests = "distill_inference_requests_total"
    compute = histogram("distill_inference_duration_seconds")
    failed = _sum(found, requests, name, outcome="error") + _sum(found, requests, name, outcome="rejected")
    return {
        "name": name,
        "version": version,
        "last_inference": 0,  # not measured
        "inference_count": round(_sum(found, "distill_batch_size_sum", name)),
        "execution_count": round(_sum(found, "distill_batch_size_count", name)),
        "inference_stats": {
            "success": _duration(
                _sum(found, requests, name, outcome="success"),
                _sum(found, "distill_request_duration_seconds_sum", name),
            ),
            "fail": _duration(failed, 0.0),
            "queue": histogram("distill_queue_duration_seconds"),
            "compute_input": {"count": compute["count"], "ns": 0},
            "compute_infer": compute,
            "compute_output": {"count": compute["count"], "ns": 0},
            "cache_hit": _duration(0, 0.0),
            "cache_miss": _duration(0, 0.0),
        },
        "batch_stats": [],
    }


def model_statistics(metrics: Metrics, models: list[ServedModel]) -> dict[str, Any]:
    """`models`: the served versions asked about, one per model."""
    found = scrape_samples(metrics)
    return {"model_stats": [_entry(found, m.name, str(m.version)) for m in models]}
