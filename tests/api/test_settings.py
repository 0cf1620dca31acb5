"""Settings: env prefix, per-model overrides, and the generated settings table kept current."""

from __future__ import annotations

from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from servers import wait_ready

from service.__main__ import main
from service.app import create_app
from service.settings import Settings, available_cores
from service.settings_doc import DOC_PATH, settings_markdown


def test_settings_doc_is_current() -> None:
    assert DOC_PATH.read_text() == settings_markdown(), "run: python -m service --write-settings-doc"


def test_every_field_is_documented() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_env_prefix_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("DISTILL_MODEL_OVERRIDES", '{"big": {"max_batch_size": 4, "max_queue_delay_ms": 2.5}}')
    settings = Settings()
    assert settings.batching_for("small").max_batch_size == 16
    big = settings.batching_for("big")
    assert (big.max_batch_size, big.max_queue_delay_s, big.max_queue_size) == (4, 0.0025, 256)
    assert settings.threads_for("big").intra_op_threads == available_cores()
    assert not settings.threads_for("big").allow_spinning


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_PORT", "9000")
    assert Settings().port == 9000
    assert Settings(port=9100).port == 9100


def test_cross_field_check() -> None:
    with pytest.raises(ValueError, match="different"):
        Settings(student="m", teacher="m")


def test_cli_flags_override_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISTILL_PORT", "9000")
    monkeypatch.setenv("DISTILL_HOST", "0.0.0.0")
    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(kwargs))
    main(["--models", str(tmp_path), "--port", "9100", "--log-level", "warning"])
    assert served["port"] == 9100 and served["host"] == "0.0.0.0" and served["log_level"] == "warning"


def test_a_model_that_runs_on_the_event_loop_is_loaded_with_one_thread(
    model_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.settings.available_cores", lambda: 4)
    settings = Settings(models_dir=model_repo, warmup_runs=1, inline_run_max_us=1e9)  # every model inline
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        models = client.app.state.dataplane.registry.models  # type: ignore[attr-defined]
        assert models and all(
            m.runtime.session.get_session_options().intra_op_num_threads == 1 for m in models.values()
        )
    settings = Settings(models_dir=model_repo, warmup_runs=1, inline_run_max_us=0)  # none inline
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        models = client.app.state.dataplane.registry.models  # type: ignore[attr-defined]
        assert all(m.runtime.session.get_session_options().intra_op_num_threads == 4 for m in models.values())
