"""Config profiles and command-line overrides; the CLI's one-line error for a bad --data-dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_training.__main__ import main
from distill_training.config import ConfigError, load_config, parse_set_args, save_config


def test_overrides_are_parsed_by_field_type(tmp_path: Path) -> None:
    cfg = load_config(
        "quick",
        overrides=parse_set_args(
            ["teacher.epochs=7", "student.hidden=64,32", "teacher.augment=false", "student.temperature=3"]
        ),
    )
    assert cfg.teacher.epochs == 7 and cfg.student.hidden == (64, 32)
    assert cfg.teacher.augment is False and cfg.student.temperature == 3.0


def test_saved_config_loads_back_identically(tmp_path: Path) -> None:
    cfg = load_config("default", overrides={"student.hidden": "100", "data.val_size": "123"})
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config("quick", tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("item", ["teacher.nope=1", "nosection.epochs=1", "teacher.epochs=many", "epochs"])
def test_bad_overrides_are_clear_errors(item: str) -> None:
    with pytest.raises(ConfigError):
        load_config("quick", overrides=parse_set_args([item]))


def test_bad_data_dir_is_a_one_line_error_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["teacher", "--profile", "quick", "--data-dir", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--data-dir" in err and "Traceback" not in err


def test_an_unknown_architecture_is_a_one_line_error_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "teacher",
            "--profile",
            "quick",
            "--set",
            "student.architecture=cnn",
            "--data-dir",
            str(tmp_path / "missing"),
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: unknown student.architecture 'cnn'; known: mlp\n"
