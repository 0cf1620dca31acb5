"""The `distill` command: your teacher, as an ONNX file, on your data (an image folder, IDX or NPZ), through the
pipeline's steps: its outputs cached on the training views, the KD student and the label-only control trained
from them, the students exported, the teacher copied into the repository with its card, and the report.

Its flags are settings of the config (`onnx_teacher.*`, `data.*`, the model names, the run and report folders);
`configured` completes the config from the teacher file, before any data is decoded or any student trains.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from distill_training.config import ConfigError, PipelineConfig
from distill_training.data import class_names
from distill_training.onnx_teacher import open_teacher
from distill_training.onnx_views import check_classes
from modelrepo.card import NAME_PATTERN

# flag -> the setting it sets
FLAG_SETTINGS = {
    "teacher_onnx": "onnx_teacher.path",
    "data": "data.data_dir",
    "layout": "onnx_teacher.layout",
    "scale": "onnx_teacher.scale",
    "mean": "onnx_teacher.mean",
    "std": "onnx_teacher.std",
    "output": "onnx_teacher.output",
    "channels": "data.channels",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher-onnx", required=True, metavar="PATH", help="your teacher, an ONNX classifier")
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="DIR/train/<class>/*.png (+ DIR/test/), DIR/<class>/*, IDX or NPZ"
    )
    parser.add_argument("--name", help="model names NAME-teacher and NAME-student (default: the data folder's name)")
    parser.add_argument("--layout", choices=("NCHW", "NHWC"), help="the input layout, if its shape is unclear")
    parser.add_argument("--size", metavar="HxW", help="the input size, where the teacher's graph leaves it open")
    parser.add_argument("--channels", choices=("1", "3"), help="greyscale or RGB, where the graph leaves it open")
    parser.add_argument("--scale", help="x = (pixel * scale - mean) / std (default 1/255 for a float input)")
    parser.add_argument("--mean", metavar="M[,M,M]", help="per-channel mean, if the graph does not normalise itself")
    parser.add_argument("--std", metavar="S[,S,S]", help="per-channel std, if the graph does not normalise itself")
    parser.add_argument("--output", help="the output holding the class scores (default: the first)")


def model_base_name(args: argparse.Namespace) -> str:
    """--name, else the data folder's name made safe for a model name."""
    if args.name:
        return str(args.name)
    folder = Path(args.data).resolve().name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", folder).strip("-._") or "custom"


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings the flags give, the model names, and a run and report folder of this teacher's own."""
    if not args.teacher_onnx or not args.data:
        raise ConfigError("--teacher-onnx and --data need a path: your .onnx file and your image folder")
    name = model_base_name(args)
    if not NAME_PATTERN.match(f"{name}-teacher"):
        raise ConfigError(f"--name {name!r} must be letters, digits, '_', '.' or '-' (at most 55), starting alnum")
    out = {setting: str(getattr(args, flag)) for flag, setting in FLAG_SETTINGS.items() if getattr(args, flag)}
    if args.size:
        out["data.image_size"] = args.size.lower().replace("x", ",")
    out |= {
        "teacher.name": f"{name}-teacher",
        "student.name": f"{name}-student",
        "student.control_name": f"{name}-control",
        "run_dir": f"runs/{name}-{args.profile}",
        "export.report_dir": f"reports/{name}",
        # Your teacher may be of any size: the student is the most accurate candidate, as fast as it is
        # (--min-speedup or --latency-budget-us ask for more).
        "budget.min_speedup": "0",
    }
    return out


def configured(cfg: PipelineConfig) -> PipelineConfig:
    """The config with the data's channels and size set to the teacher's input, once the teacher file is
    readable and gives as many class scores as the data has classes (OnnxTeacherError / ConfigError else)."""
    teacher = open_teacher(cfg.onnx_teacher, cfg.data)
    check_classes(teacher, class_names(cfg.data))
    prep = teacher.preprocessing
    data = replace(cfg.data, channels=prep.channels, image_size=(prep.height, prep.width))
    return replace(cfg, data=data)
