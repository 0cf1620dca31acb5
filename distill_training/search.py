"""The candidate students and the choice among them: `architecture:size` specs, the config each one trains
with, and the most accurate on validation that meets the latency budget.

A spec names an entry of `nets.STUDENTS` and its size in one token: `mlp:128-128` (hidden layers),
`cnn:16-32` (conv widths), `mobilenet:32x2` (width x depth). Nothing here depends on where the teacher came from:
the candidates train on cached teacher logits and are judged by their own validation accuracy and latency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from distill_training.config import ConfigError, StudentConfig
from distill_training.nets import STUDENTS

AUTO = "auto"  # student.architecture: search every candidate


def _ints(size: str, sep: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in size.split(sep))
    if not values or min(values) < 1:
        raise ValueError(size)
    return values


def _mobilenet(cfg: StudentConfig, size: str) -> StudentConfig:
    width, depth = _ints(size, "x")
    return replace(cfg, width=width, depth=depth)


# How each architecture's size token sets its fields of StudentConfig.
SIZES: Final[dict[str, Callable[[StudentConfig, str], StudentConfig]]] = {
    "mlp": lambda cfg, size: replace(cfg, hidden=_ints(size, "-")),
    "cnn": lambda cfg, size: replace(cfg, channels=_ints(size, "-")),
    "mobilenet": _mobilenet,
}
SIZE_FORMS: Final = {"mlp": "128-128", "cnn": "16-32", "mobilenet": "32x2"}


def candidate_config(base: StudentConfig, spec: str) -> StudentConfig:
    """The student config of one candidate: `base` with the spec's architecture and size."""
    architecture, _, size = spec.partition(":")
    if architecture not in STUDENTS:
        raise ConfigError(f"candidate {spec!r}: unknown architecture {architecture!r}; known: {', '.join(STUDENTS)}")
    cfg = replace(base, architecture=architecture)
    if not size:
        return cfg
    try:
        return SIZES[architecture](cfg, size)
    except (KeyError, ValueError):
        form = SIZE_FORMS.get(architecture, "")
        raise ConfigError(f"candidate {spec!r}: a size for {architecture} looks like {architecture}:{form}") from None


def candidate_specs(cfg: StudentConfig) -> list[str]:
    """The candidates to search: all of them, or those of `student.architecture`; each checked."""
    specs = [s for s in cfg.candidates if cfg.architecture in (AUTO, s.partition(":")[0])]
    if cfg.architecture != AUTO and cfg.architecture not in STUDENTS:
        raise ConfigError(f"unknown student.architecture {cfg.architecture!r}; known: {AUTO}, {', '.join(STUDENTS)}")
    if not specs:
        specs = [cfg.architecture]  # the architecture at the sizes the config gives
    for spec in specs:
        candidate_config(cfg, spec)
    return specs


def folder_name(spec: str) -> str:
    """A file-system name for a spec: `cnn:16-32` -> `cnn-16-32`."""
    return spec.replace(":", "-")


class LatencyBudgetError(ConfigError):
    """No candidate meets the latency budget; the message names the fastest and its latency."""


@dataclass(frozen=True)
class Scored:
    spec: str
    val_accuracy: float
    latency_us: float


def latency_limit(budget_us: float, min_speedup: float, teacher_latency_us: float) -> tuple[float, str]:
    """The latency the exported student may take (inf: no limit), and the rule that set it."""
    limits = [(math.inf, "no latency budget")]
    if budget_us > 0:
        limits.append((budget_us, f"--latency-budget-us {budget_us:g}"))
    if min_speedup > 0:
        limits.append(
            (
                teacher_latency_us / min_speedup,
                f"--min-speedup {min_speedup:g} over the teacher's {teacher_latency_us:.1f} µs",
            )
        )
    return min(limits)


def within_budget(scored: Sequence[Scored], limit_us: float, rule: str) -> list[Scored]:
    """The candidates that meet the limit; a LatencyBudgetError naming the fastest when none does."""
    meeting = [s for s in scored if s.latency_us <= limit_us]
    if not meeting:
        fastest = min(scored, key=lambda s: s.latency_us)
        raise LatencyBudgetError(
            f"no student candidate meets the latency budget of {limit_us:.1f} µs ({rule}): the fastest, "
            f"{fastest.spec}, takes {fastest.latency_us:.1f} µs (onnxruntime, batch 1, one thread); relax the "
            "budget or add a smaller candidate (student.candidates)"
        )
    return meeting


def choose(scored: Sequence[Scored], limit_us: float, rule: str) -> Scored:
    """The most accurate on validation within the limit (the faster one on a tie)."""
    return max(within_budget(scored, limit_us, rule), key=lambda s: (s.val_accuracy, -s.latency_us))
