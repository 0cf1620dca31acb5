"""The training configuration: frozen dataclasses, two profiles, command-line overrides, YAML next to artifacts.

A run is fully described by one `PipelineConfig`. Profiles give its defaults (`quick` for tests, `default` for
the real models); `--config FILE.yaml` and `--set section.field=value` override them, in that order. The
resolved config is saved as `config.yaml` next to every artifact and inside every model card.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args, get_type_hints

import yaml

from modelrepo.dataset import DEFAULT_DATA_DIR, FASHION_MNIST_LABELS

T = TypeVar("T")
Precision = Literal["auto", "fp32", "bf16"]
PROFILES = ("quick", "default")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how train is split; the test set is only used for final numbers."""

    data_dir: str = DEFAULT_DATA_DIR
    labels: tuple[str, ...] = FASHION_MNIST_LABELS
    val_size: int = 5000  # held out of train for model selection
    val_fraction: float = 0.1  # ... but never more than this share of train (a small folder keeps most for training)
    train_limit: int = 0  # 0 = all of train; the quick profile trains on a subset
    split_seed: int = 0
    test_fraction: float = 0.2  # an image folder without test/: this share of each class, seeded, is the test split
    # Every image converted to `channels` (1 greyscale, 3 RGB) and resized to `image_size` (height, width); 0 and
    # () keep the data's own. An image folder needs both; `distill` sets them to the teacher's input.
    image_size: tuple[int, ...] = ()
    channels: int = 0


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher: one net, or an ensemble of several averaged into one; each member's architecture (a name in
    `nets.TEACHERS`), the nets' sizes, and the training recipe every member follows."""

    name: str = "fmnist-teacher"
    architecture: str = "conv"  # conv: two conv stages then a dense head; resnet: residual stages, pooled head
    # An ensemble: the members' architectures, member i trained on seed `seed + i`, their logits averaged and
    # served as one ONNX teacher. Empty: one teacher of `architecture`. The time budget keeps a second member only
    # where each gets the full `epochs` (epochs pay more than members below that).
    members: tuple[str, ...] = ("conv", "conv")
    width: int = 32  # channels of the first stage; the next stages have twice (conv) or 2x and 4x (resnet)
    hidden: int = 512  # conv: the dense head
    blocks: int = 1  # resnet: residual blocks per stage
    dropout: float = 0.3
    epochs: int = 12  # per member, the most: the time budget gives fewer on a slower machine, never below
    min_epochs: int = 6
    batch_size: int = 256
    lr: float = 3e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 5e-4
    augment: bool = True  # random horizontal flips and shifts of up to 2 pixels
    precision: Precision = "auto"  # auto: bf16 autocast where the CPU supports bf16, fp32 otherwise
    channels_last: bool = True
    seed: int = 0


@dataclass(frozen=True)
class StudentConfig:
    """Students distilled from cached teacher logits, and their label-only control: the candidate architectures
    (names in `nets.STUDENTS` with their sizes), the methods (`losses.LOSSES`), and the recipe they all share.

    How the defaults were chosen, and what else was tried: docs/decisions.md, section Training.
    """

    name: str = "fmnist-student"
    control_name: str = "fmnist-control"  # exported into the run directory, not the served repository
    # The candidates searched, `architecture:size` (mlp:128-128 hidden layers, cnn:16-32 conv widths,
    # mobilenet:32x2 width x depth). Each trains with `method` on seed 0; the most accurate on validation that
    # meets the latency budget is the exported architecture.
    candidates: tuple[str, ...] = ("mlp:128-128", "cnn:16-32", "cnn:32-64", "mobilenet:32x1")
    architecture: str = "auto"  # auto: search every candidate; a name: only that architecture's candidates
    method: str = "kd"  # the method of the search and of the exported student
    # Each compared with the control on the same seeds. `consistent` too where the schedule can be long: at 15-19
    # epochs here it scored no better than the control (docs/decisions.md, Training).
    methods: tuple[str, ...] = ("kd", "dkd")
    seeds: int = 3  # the comparison trains seeds 0..seeds-1 of each method and of the control
    # The sizes of one student (a candidate sets those of its architecture).
    hidden: tuple[int, ...] = (128, 128)  # mlp: hidden layers
    channels: tuple[int, ...] = (16, 32)  # cnn: conv widths, the first two with stride 2
    width: int = 32  # mobilenet: the stem's channels (the first block doubles them)
    depth: int = 1  # mobilenet: depthwise-separable blocks
    epochs: int = 40  # the most: the time budget gives fewer on a slower machine, never below min_epochs
    min_epochs: int = 10
    batch_size: int = 256
    lr: float = 3e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 1e-4
    temperature: float = 2.0  # kd: temperature T; low temperatures suit a small student
    kd_weight: float = 0.5  # kd: weight of the soft term; 1 - kd_weight goes to cross-entropy
    dkd_alpha: float = 1.0  # dkd: weight of the target-class term
    dkd_beta: float = 1.0  # dkd: weight of the non-target-class term (the paper's 8 is for 100 classes)
    dkd_temperature: float = 4.0
    consistent_temperature: float = 1.0  # consistent: function matching at this temperature, no labels
    # Teacher-scored views per training image: 0 the image, 1 its mirror (the views of kd, dkd and the control),
    # 2.. random shifts of up to 2 pixels and flips (consistent teaching samples all of them).
    views: int = 4
    # Mirror images among the students' views; off for classes a mirror changes (text, digits, arrows).
    mirror: bool = True
    # Intra-op threads per student: its matmuls are small, and a second thread on cores shared with other jobs
    # makes every op wait for it to be scheduled.
    threads: int = 1


@dataclass(frozen=True)
class ExportConfig:
    """ONNX export, its validation thresholds and the latency measurement of the report."""

    opset: int = 18
    validate_images: int = 512  # real test images compared between onnxruntime and PyTorch
    max_abs_diff: float = 1e-3  # largest tolerated logit difference
    min_agreement: float = 0.99  # smallest tolerated argmax agreement
    latency_threads: int = 1  # same intra-op thread count for every model
    latency_runs: int = 2000
    report_dir: str = "reports"


@dataclass(frozen=True)
class BudgetConfig:
    """What the pipeline must fit: a wall-time budget (it measures this machine's speed first and fits teacher
    members, epochs, seeds and candidates to it) and a latency budget for the exported student."""

    time_budget_min: float = 15.0  # 0: no time budget, the full recipe
    teacher_share: float = 0.55  # of the time left after calibration and the export reserve, for the teacher
    latency_budget_us: float = 0.0  # the exported student's onnxruntime batch-1 latency at most this (0: none)
    min_speedup: float = 20.0  # ...and at least this many times faster than the served teacher (0: none)
    calibration_steps: int = 6  # timed training steps per architecture


@dataclass(frozen=True)
class OnnxTeacherConfig:
    """A teacher brought as an ONNX file (`distill`), run in onnxruntime instead of trained here. What the graph
    does not say is given here (or in a JSON sidecar next to the file, `<file stem>.json`, with the same keys)."""

    path: str = ""  # the .onnx file; empty: train our own teacher
    layout: str = ""  # NCHW or NHWC; empty: read from the input's shape
    scale: float = 0.0  # x = (pixel * scale - mean) / std; 0: 1/255 for a float input, 1 for an integer one
    mean: tuple[float, ...] = ()  # one value, or one per channel; empty: 0 (normalisation inside the graph)
    std: tuple[float, ...] = ()  # empty: 1
    output: str = ""  # the output holding the class scores; empty: the graph's first
    batch_size: int = 128  # rows per onnxruntime run (a graph whose batch is fixed at 1 runs row by row)
    min_chance_ratio: float = 1.5  # refuse a teacher whose accuracy on train is below this many times chance


@dataclass(frozen=True)
class PipelineConfig:
    profile: str = "default"
    run_dir: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    onnx_teacher: OnnxTeacherConfig = field(default_factory=OnnxTeacherConfig)


SECTIONS = ("data", "teacher", "student", "export", "budget", "onnx_teacher")


def profile_config(profile: str) -> PipelineConfig:
    """The defaults of a profile: `default` (the real models) or `quick` (tiny nets on a subset, about 2 minutes)."""
    if profile == "default":
        return PipelineConfig()
    if profile == "quick":
        # The whole machinery in miniature: a two-member ensemble, three candidates, every method, two seeds.
        return PipelineConfig(
            profile="quick",
            run_dir="runs/quick",
            data=DataConfig(val_size=1000, train_limit=8000),
            teacher=TeacherConfig(width=8, hidden=64, members=("conv", "conv"), epochs=3, min_epochs=1, dropout=0.1),
            student=StudentConfig(
                candidates=("mlp:32", "cnn:8-16", "mobilenet:8x1"),
                methods=("kd", "dkd", "consistent"),
                seeds=2,
                epochs=4,
                min_epochs=1,
                views=3,
            ),
            export=ExportConfig(validate_images=256, latency_runs=200),
            # A budget it fits in with room to spare even on a busy 2-core machine (it takes about a minute), so
            # the tests see the whole recipe; what the budget cuts is tested on its own (tests/unit).
            budget=BudgetConfig(time_budget_min=6.0, min_speedup=2.0, calibration_steps=3),
        )
    raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")


class ConfigError(ValueError):
    """A bad override or config file; the message says which key and why."""


def lookup(table: Mapping[str, T], name: str, setting: str) -> T:
    """The entry `name` of one of the tables a setting names (an architecture, a method); a ConfigError that
    lists the known names otherwise."""
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {setting} {name!r}; known: {', '.join(table)}") from None


def _coerce(value: str, current: Any, annotation: Any) -> Any:
    """Parse a command-line string into the type of the field it replaces (`annotation`)."""
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {value!r}")
    if isinstance(current, tuple):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        kind = (get_args(annotation) or (str,))[0]  # tuple[int, ...] -> int, even when the default is ()
        return tuple(kind(p) for p in parts)
    if isinstance(current, int | float):
        return type(current)(value)
    return value


def _apply(section: Any, key: str, value: Any) -> Any:
    names = {f.name for f in fields(section)}
    if key not in names:
        raise ConfigError(f"unknown setting {key!r}; known: {', '.join(sorted(names))}")
    current = getattr(section, key)
    try:
        annotation = get_type_hints(type(section))[key]
        new = _coerce(value, current, annotation) if isinstance(value, str) else value
        if isinstance(current, tuple) and isinstance(new, list):
            new = tuple(new)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None
    return replace(section, **{key: new})


def apply_overrides(config: PipelineConfig, overrides: dict[str, Any]) -> PipelineConfig:
    """Apply `{"section.field": value}` (or top-level `"field"`) overrides; strings are parsed by field type."""
    for dotted, value in overrides.items():
        section_name, _, key = dotted.rpartition(".")
        if not section_name:
            config = cast(PipelineConfig, _apply(config, key, value))
            continue
        if section_name not in SECTIONS:
            raise ConfigError(f"unknown section {section_name!r} in {dotted!r}")
        section = _apply(getattr(config, section_name), key, value)
        config = replace(config, **{section_name: section})
    return config


def parse_set_args(items: list[str]) -> dict[str, str]:
    """`["teacher.epochs=5", ...]` -> `{"teacher.epochs": "5"}`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes section.field=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_config(
    profile: str, config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> PipelineConfig:
    """Profile defaults, then a YAML file (same nesting as `to_dict`), then `--set` overrides."""
    config = profile_config(profile)
    if config_file is not None:
        try:
            tree = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config file {config_file}: {err}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{config_file} must hold a mapping")
        config = apply_overrides(config, flatten(tree))
    return apply_overrides(config, overrides or {})


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-able dict of a config dataclass (tuples become lists)."""
    return cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(config))))


def save_config(config: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
