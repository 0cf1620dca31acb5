"""`distill` refuses a teacher that cannot be right for the data with exit code 2 and one line that names the
fix, before any student trains (and, for what the file alone shows, before any image is decoded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from foreign_teachers import colour_folder, colour_teacher, save

from distill_training.__main__ import main


def distill(tmp_path: Path, teacher: Path, *extra: str) -> list[str]:
    return [
        "distill", "--teacher-onnx", str(teacher), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "models"),
        "--run-dir", str(tmp_path / "run"), "--reports", str(tmp_path / "reports"), "--profile", "quick", *extra,
    ]  # fmt: skip


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The one error line of a refused run (exit code 2, no traceback)."""
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return colour_folder(tmp_path / "data")


def test_a_file_that_is_not_onnx_is_refused_in_one_line(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "teacher.pt"
    weights.write_bytes(b"\x80\x02 a pickled torch checkpoint")
    line = refused(capsys, distill(tmp_path, weights))
    assert "is not an ONNX model onnxruntime can load" in line and "export your classifier to ONNX" in line
    assert "Traceback" not in capsys.readouterr().err


def test_a_class_count_mismatch_is_refused_before_any_image_is_decoded(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = save(colour_teacher(classes=4), tmp_path / "four.onnx")
    line = refused(capsys, distill(tmp_path, teacher))
    assert "gives 4 class scores but the data has 3 classes (blue, green, red)" in line
    assert not (tmp_path / "run" / "images").exists()


def test_a_wrong_class_order_is_refused_with_the_order_that_fits(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = save(colour_teacher(), tmp_path / "teacher.onnx")  # outputs red, green, blue; folders sort blue first
    line = refused(capsys, distill(tmp_path, teacher))
    assert "agrees with the labels on only" in line and "at least 1.5x chance is needed" in line
    assert "Its outputs fit the classes best in this order: red, green, blue." in line
    assert not (tmp_path / "run" / "students").exists()


def test_wrong_preprocessing_is_refused(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "labels.txt").write_text("red\ngreen\nblue\n")
    teacher = save(colour_teacher(), tmp_path / "teacher.onnx")
    # a blue channel normalised far above the others: the teacher then sees every image as blue
    line = refused(capsys, distill(tmp_path, teacher, "--mean", "0,0,-5", "--std", "1,1,0.01"))
    assert "agrees with the labels on only" in line and "--mean, --std, --scale, --layout" in line


def test_a_name_that_cannot_name_a_model_is_refused(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = save(colour_teacher(), tmp_path / "teacher.onnx")
    assert "--name 'my teacher!' must be letters" in refused(
        capsys, distill(tmp_path, teacher, "--name", "my teacher!")
    )


def test_a_missing_data_folder_is_named_before_the_teacher_is_compared_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = save(colour_teacher(), tmp_path / "teacher.onnx")
    line = refused(capsys, distill(tmp_path, teacher))  # tmp_path / "data" was never written
    assert "dataset directory" in line and "does not exist" in line and "class scores" not in line


@pytest.mark.parametrize(("size", "message"), [("0x5", "two positive sizes"), ("axb", "image_size: invalid literal")])
def test_a_bad_size_is_refused(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str], size: str, message: str
) -> None:
    teacher = save(colour_teacher(size=("h", "w")), tmp_path / "open-size.onnx")
    assert message in refused(capsys, distill(tmp_path, teacher, "--size", size))
