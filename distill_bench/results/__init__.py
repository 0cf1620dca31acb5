"""The typed records a run writes (raw JSON under `<out>/*-raw/`) and a report reads back by field."""
