"""The multi-worker metrics folder: an earlier run's values never reach this run's totals, and nothing is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings
from service.workers import MULTIPROC_ENV, metrics_dir


def test_a_given_folder_is_emptied_at_start_and_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "multiproc"
    folder.mkdir()
    (folder / "counter_1234.db").write_bytes(b"stale")  # a crashed earlier run's counts
    (folder / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    with metrics_dir() as used:
        assert used == folder
        assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
        (folder / "counter_5678.db").write_bytes(b"this run")
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


def test_without_a_folder_each_run_gets_a_fresh_one_removed_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with metrics_dir() as first, metrics_dir() as second:
        assert first != second
        assert not list(first.iterdir())
        (first / "counter_1.db").write_bytes(b"x")
    assert not first.exists() and not second.exists()


def test_workers_share_the_cores_for_onnxruntime_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_INTRA_OP_THREADS", raising=False)
    monkeypatch.setattr("service.settings.available_cores", lambda: 8)
    assert Settings(workers=1).threads_for("m").intra_op_threads == 8
    assert Settings(workers=3).threads_for("m").intra_op_threads == 2
    assert Settings(workers=16).threads_for("m").intra_op_threads == 1
    assert Settings(workers=4, intra_op_threads=3).threads_for("m").intra_op_threads == 3


def test_a_model_on_the_event_loop_gets_one_thread_unless_its_override_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_INTRA_OP_THREADS", raising=False)
    monkeypatch.setattr("service.settings.available_cores", lambda: 8)
    assert Settings().threads_for("m", inline=True).intra_op_threads == 1
    assert Settings(intra_op_threads=3).threads_for("m", inline=True).intra_op_threads == 1  # e.g. k8s's "2"
    overrides = {"m": {"intra_op_threads": 4}}
    assert Settings(model_overrides=overrides).threads_for("m", inline=True).intra_op_threads == 4
