"""`GET /v1/stats`: the service's own metrics as JSON, from the same scrape as `/metrics` (so with several workers
it is their sum).

Every figure is cumulative since the service started, as in Prometheus: a reader takes two snapshots and divides
their differences by the time between them (requests/s, p50/p99 over that window, agreement, accuracy), as
`rate()` does. The web page does exactly that.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

from prometheus_client.samples import Sample

from service.metrics import Metrics

Samples = dict[str, list[Sample]]  # by sample name (`..._bucket`, `..._total`)
COMPUTE = "distill_inference_duration_seconds"


def scrape_samples(metrics: Metrics) -> Samples:
    """Every sample of a scrape (summed over workers, as `/metrics`), by sample name."""
    found: Samples = defaultdict(list)
    for family in metrics.families():
        for sample in family.samples:
            found[sample.name].append(sample)
    return found


def _empty_model() -> dict[str, Any]:
    return {
        "role": None,
        "requests": {},
        "compute": {"count": 0.0, "sum": 0.0, "buckets": []},
        "labeled": 0.0,
        "correct": 0.0,
    }


def _model_figures(found: Samples) -> dict[str, dict[str, Any]]:
    models: defaultdict[str, dict[str, Any]] = defaultdict(_empty_model)
    for s in found["distill_inference_requests_total"]:
        models[s.labels["model"]]["role"] = s.labels["role"]
        models[s.labels["model"]]["requests"][s.labels["outcome"]] = s.value
    for s in found[f"{COMPUTE}_bucket"]:
        if math.isfinite(float(s.labels["le"])):  # the +Inf bucket is the count
            models[s.labels["model"]]["compute"]["buckets"].append([float(s.labels["le"]), s.value])
    for part in ("count", "sum"):
        for s in found[f"{COMPUTE}_{part}"]:
            models[s.labels["model"]]["compute"][part] = s.value
    for key in ("labeled", "correct"):
        for s in found[f"distill_predictions_{key}_total"]:
            models[s.labels["model"]][key] = s.value
    for entry in models.values():
        entry["compute"]["buckets"].sort()
    return dict(sorted(models.items()))


def _agreement(found: Samples) -> list[dict[str, Any]]:
    """One entry per label set but `outcome` (student, teacher, and any label a newer service adds)."""
    pairs: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in found["distill_agreement_total"]:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "outcome"))
        entry = pairs.setdefault(key, {"labels": dict(key), "agree": 0, "disagree": 0})
        entry[s.labels["outcome"]] = s.value
    return [pairs[key] for key in sorted(pairs)]


def snapshot(metrics: Metrics) -> dict[str, Any]:
    found = scrape_samples(metrics)
    endpoints: dict[str, float] = defaultdict(float)
    for s in found["distill_request_duration_seconds_count"]:
        endpoints[s.labels["endpoint"]] += s.value
    return {
        "time": time.time(),
        "models": _model_figures(found),
        "endpoints": dict(sorted(endpoints.items())),
        "agreement": _agreement(found),
        "cascade": {s.labels["outcome"]: s.value for s in found["distill_cascade_total"]},
    }
