"""Measurement of a running service over HTTP: the demo's speedup report, the capacity search, the wrk
benchmark and the soak.

Needs no torch and imports no `service` module: it starts the service as a process, drives it with load
generators and reads its /metrics. Grouped by what each module is:

- `drivers/`: the load generators, each run as a subprocess and read back as typed values (wrk, locust).
- `servers/`: the processes under load (the service, the floor app), started on free ports and stopped by PID,
  and what /proc says of them.
- `runs/`: what each command measures, in order (bench, capacity, demo, soak).
- `results/`: the typed records a run writes as raw JSON and a report reads back.
- `reports/`: Markdown, JSON and plots, each a function of recorded results.
- shared by several of those: `scrape` (a /metrics scrape as numbers), `samples` (real test images) and `pair`
  (the student and teacher a repository serves).
"""
