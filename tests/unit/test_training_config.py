"""Config profiles and command-line overrides; the CLI's one-line error for a bad --data-dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_training.__main__ import _config, _parser, main
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
            "student.architecture=vit",
            "--data-dir",
            str(tmp_path / "missing"),
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: unknown student.architecture 'vit'; known: auto, mlp, cnn, mobilenet\n"


def test_the_budget_flags_set_the_budget_section() -> None:
    args = _parser().parse_args(
        ["pipeline", "--profile", "quick", "--time-budget-min", "3", "--latency-budget-us", "40", "--min-speedup", "5"]
    )
    budget = _config(args).budget
    assert (budget.time_budget_min, budget.latency_budget_us, budget.min_speedup) == (3.0, 40.0, 5.0)
    assert _config(_parser().parse_args(["pipeline"])).budget == load_config("default").budget


def test_an_unknown_member_or_method_is_a_one_line_error_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for setting, message in (
        ("teacher.members=conv,transformer", "unknown teacher architecture 'transformer'; known: conv, resnet"),
        ("student.methods=kd,fitnets", "unknown student method 'fitnets'; known: kd, dkd, consistent, none"),
        ("student.candidates=cnn:16x32", "candidate 'cnn:16x32': a size for cnn looks like cnn:16-32"),
    ):
        argv = ["teacher", "--profile", "quick", "--set", setting, "--data-dir", str(tmp_path / "missing")]
        assert main(argv) == 2
        assert capsys.readouterr().err == f"error: {message}\n"
