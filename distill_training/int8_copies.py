"""The quantize step: an INT8 copy of each FP32 model asked for (the served teacher and the exported student),
made (`quantize`), measured and gated (`int8`) into `<run_dir>/export/<name>-int8`, then installed into the
served repository when the rule publishes it, and withdrawn from there when it no longer does.

Each model's trial is saved in `<run_dir>/quantized/<name>-int8.json`, keyed by everything it depends on (the
FP32 file, the settings, the data), so a rerun finds it up to date and reports the same figures.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from distill_training.config import to_dict
from distill_training.context import Context, timed
from distill_training.export import Published
from distill_training.frontier import Entry
from distill_training.int8 import Trial, int8_name, measure_speeds, trial_of, write_int8
from distill_training.publishing import exported_dir, install
from distill_training.quantize import best_copy, calibration_sample, method_for, split_of
from distill_training.staleness import digest
from modelrepo.layout import card_path, model_path, read_card, sha256_file


def _key(ctx: Context, fp32: Published) -> str:
    export = ctx.cfg.export
    settings = to_dict(ctx.cfg.quantize) | {"latency": [export.latency_threads, export.latency_runs]}
    return digest({"fp32": fp32.record.sha256, "settings": settings, "data": [ctx.data.fingerprint, ctx.cfg.data]})


def _saved(ctx: Context, fp32: Published, key: str) -> tuple[Trial, Published] | None:
    name = int8_name(fp32.card.name)
    try:
        saved = json.loads((ctx.run_dir / "quantized" / f"{name}.json").read_text())
        card = read_card(card_path(exported_dir(ctx), name))
    except (OSError, ValueError):
        return None
    target = model_path(exported_dir(ctx), name, 1)
    if saved.get("key") != key or not target.is_file() or sha256_file(target) != card.versions[1].sha256:
        return None
    try:
        trial = Trial.from_json(saved["trial"])
    except (KeyError, TypeError):  # written by an older version of this step: made again
        return None
    return trial, Published(card, target, dict(card.versions[1].config.get("validation", {})))


def _make(ctx: Context, fp32: Published) -> tuple[Trial, Published]:
    cfg, data, export = ctx.cfg.quantize, ctx.data, ctx.cfg.export
    name = int8_name(fp32.card.name)
    work = ctx.run_dir / "quantized" / name
    copy = best_copy(
        fp32.model_file,
        work,
        method=method_for(fp32.record.architecture),
        calibrations=cfg.calibrations,
        images=calibration_sample(data.train_x.numpy(), cfg.calibration_images, cfg.calibration_seed),
        val=split_of(fp32.model_file, data.val_x.numpy(), data.val_y.numpy()),
        test=split_of(fp32.model_file, data.test_x.numpy(), data.test_y.numpy()),
    )
    speeds = measure_speeds(
        {"fp32": fp32.model_file, "int8": copy.path}, cfg, threads=export.latency_threads, runs=export.latency_runs
    )
    trial = trial_of(fp32, copy, (speeds["fp32"], speeds["int8"]), cfg.max_drop)
    published = write_int8(exported_dir(ctx), fp32, trial, copy.path, to_dict(cfg))
    shutil.rmtree(work, ignore_errors=True)
    saved = {"key": _key(ctx, fp32), "trial": trial.to_json()}
    (ctx.run_dir / "quantized" / f"{name}.json").write_text(json.dumps(saved, indent=2) + "\n")
    return trial, published


def _withdraw(repo: Path, fp32: Published, *, keep_if_current: bool) -> None:
    """Remove the INT8 copy of `fp32` that an earlier run installed (`keep_if_current`: only if it was made from
    another FP32 file than this one's)."""
    name = int8_name(fp32.card.name)
    try:
        card = read_card(card_path(repo, name))
    except (OSError, ValueError):
        return
    if card.quantization is None or card.quantization.fp32_model != fp32.card.name:
        return  # not a copy this step made
    source = card.versions[card.latest_version].config.get("source_sha256")
    if not (keep_if_current and source == fp32.record.sha256):
        shutil.rmtree(repo / name)


def quantize_models(ctx: Context, models: list[Published], repo: Path) -> list[Trial]:
    """The INT8 copy of each of `models` (FP32 models in the served repository `repo`), published into `repo`
    where the rule says so. With `quantize.enabled` off, none is made, and a copy an earlier run installed stays
    only while its FP32 model is the one it was made from."""
    if not ctx.cfg.quantize.enabled:
        for fp32 in models:
            _withdraw(repo, fp32, keep_if_current=True)
        return []
    trials = []
    for fp32 in models:
        trial, copy = _saved(ctx, fp32, _key(ctx, fp32)) or timed(ctx, "quantize", partial(_make, ctx, fp32))
        if trial.decision.published:
            install(copy, repo)
        else:
            _withdraw(repo, fp32, keep_if_current=False)
        trials.append(trial)
    return trials


def int8_entries(trials: list[Trial], frontier: list[Entry]) -> list[Entry]:
    """The frontier's INT8 points, each beside its FP32 model's entry (its architecture and method)."""
    entries = []
    for t in trials:
        fp32 = next(e for e in frontier if e.name == t.fp32_model and e.exported)
        entries.append(
            Entry(
                t.model,
                f"{fp32.role}-int8",
                fp32.architecture,
                fp32.method,
                t.parameters,
                t.int8_val_accuracy,
                t.int8_accuracy,
                t.int8_speed.p50_us,
                t.decision.published,
            )
        )
    return entries


def report_lists(trials: list[Trial]) -> dict[str, list[dict[str, Any]]]:
    """`quantization` (one entry per model tried, the keys fixed) and `quantization_measured` (every figure)."""
    return {"quantization": [t.entry() for t in trials], "quantization_measured": [t.to_json() for t in trials]}
