"""Measurement tools over a running service: the `make demo` speedup report (and, later, benchmarks).

Needs no torch: it drives the service over HTTP, reads its /metrics and runs locust.
"""
