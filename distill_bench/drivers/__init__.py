"""Load generators, each run as a subprocess, their results read back as typed values: wrk and locust."""
