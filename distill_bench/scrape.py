"""Prometheus text scrapes of the service's /metrics as plain numbers: deltas between two scrapes, sums and
histogram quantiles."""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def fetch_metrics(url: str) -> str:
    """The text exposition of `<url>/metrics`."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def parse_samples(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def delta(after: Samples, before: Samples) -> Samples:
    """What happened between two scrapes of the same process (counters and histograms only grow)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _matches(labels: Labels, wanted: Mapping[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == v for k, v in wanted.items())


def total(samples: Samples, name: str, **wanted: str) -> float:
    """Sum of the samples called `name` whose labels include `wanted`."""
    return sum(v for (n, labels), v in samples.items() if n == name and _matches(labels, wanted))


def buckets(samples: Samples, histogram: str, **wanted: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, summed over the labels not in `wanted`."""
    counts: dict[float, float] = defaultdict(float)
    for (name, labels), value in samples.items():
        if name == f"{histogram}_bucket" and _matches(labels, wanted):
            counts[float(dict(labels)["le"])] += value
    return sorted(counts.items())


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float:
    """Linear interpolation inside the bucket holding the q-th observation, as PromQL's histogram_quantile.

    NaN when the histogram is empty; the largest finite bound when q falls in the +Inf bucket.
    """
    if not cumulative or cumulative[-1][1] <= 0:
        return math.nan
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
