"""The report's section on the INT8 copies, written from the `quantization_measured` list of its JSON payload."""

from __future__ import annotations

from typing import Any

Lines = list[str]


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


def _calibrations(t: dict[str, Any]) -> str:
    tried = t["val_accuracy_by_calibration"]
    if not tried:
        return "none (scales per batch)"
    return ", ".join(f"{'**' + c + '**' if c == t['calibration'] else c} {acc:.2%}" for c, acc in tried.items())


def _trials(trials: list[dict[str, Any]]) -> Lines:
    lines = [
        "| INT8 model | method | calibration (val accuracy of each; chosen in bold) | FP32 test | INT8 test | drop "
        "| agreement with FP32 | published |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        d = t["decision"]
        lines.append(
            f"| `{t['model']}` | {t['method']} | {_calibrations(t)} | {t['fp32_accuracy']:.2%} | "
            f"{t['int8_accuracy']:.2%} | {d['drop'] * 100:+.2f} pts | {t['agreement']:.2%} of {t['images']:,} | "
            f"{'yes' if d['published'] else '**no**'} |"
        )
    return [*lines, "", *(f"- `{t['model']}`: {t['decision']['reason']}." for t in trials), ""]


def _speeds(trials: list[dict[str, Any]]) -> Lines:
    batch = trials[0]["fp32_speed"]["batch"]
    lines = [
        f"| model | precision | test accuracy | batch-1 p50 | p90 | batch-{batch} images/s per core | size on disk "
        "| served |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        for precision, name, accuracy, speed, served in (
            ("FP32", t["fp32_model"], t["fp32_accuracy"], t["fp32_speed"], True),
            ("INT8", t["model"], t["int8_accuracy"], t["int8_speed"], t["decision"]["published"]),
        ):
            lines.append(
                f"| `{name}` | {precision} | {accuracy:.2%} | {speed['p50_us']:,.1f} µs | {speed['p90_us']:,.1f} µs | "
                f"{speed['images_per_s']:,.0f} | {_kib(speed['size_bytes'])} | {'yes' if served else 'no'} |"
            )
    return [*lines, ""]


def _verdict(trials: list[dict[str, Any]]) -> str:
    """What the figures say about INT8 on this CPU, from the figures."""
    ratios = [t["fp32_speed"]["p50_us"] / t["int8_speed"]["p50_us"] for t in trials]
    batch = [t["int8_speed"]["images_per_s"] / t["fp32_speed"]["images_per_s"] for t in trials]
    dot = trials[0]["int8_dot_products"]
    instructions = f"int8 dot products: {', '.join(dot)}" if dot else "no int8 dot-product instructions (VNNI, AMX)"
    cpu = f"{trials[0]['cpu']} ({instructions}; 1-minute load average {trials[0]['load_1min']:.1f})"
    pace = "faster" if min(ratios) > 1 else "slower" if max(ratios) < 1 else "faster for some, slower for others"
    return (
        f"On {cpu}, INT8 ran {pace} than FP32 at batch 1 ({', '.join(f'{r:.2f}x' for r in ratios)} the FP32 speed) "
        f"and at {', '.join(f'{b:.2f}x' for b in batch)} its throughput at batch {trials[0]['fp32_speed']['batch']}, "
        "with files "
        + ", ".join(f"{t['fp32_speed']['size_bytes'] / t['int8_speed']['size_bytes']:.1f}x" for t in trials)
        + " smaller."
    )


def quantization_section(trials: list[dict[str, Any]]) -> Lines:
    if not trials:
        return ["## INT8 copies", "", "Not tried (`quantize.enabled` is off).", ""]
    gate = trials[0]["decision"]["gate"]
    brought = (
        []
        if any(t["role"] == "teacher" for t in trials)
        else [
            "The teacher was brought as an ONNX file (`distill`), with its own input, output and layout: only the "
            "student is quantized.",
            "",
        ]
    )
    return [
        "## INT8 copies",
        "",
        "Each FP32 model served gets an INT8 copy (onnxruntime quantization): static QDQ, int8 weights per output "
        "channel and uint8 activations with scales calibrated on a seeded sample of the training split by each "
        "calibration method, the copy most accurate on validation kept; dynamic (activation scales per batch) for "
        "an MLP. Each is checked against its FP32 model on the whole test set (argmax agreement, accuracy). "
        f"**The rule**: a copy is published as `<name>-int8` when it loses at most {gate * 100:.2f} pts of test "
        "accuracy (the gate, `quantize.max_drop`) and is faster at batch 1 or smaller on disk.",
        "",
        *brought,
        *_trials(trials),
        "Measured side by side with the FP32 model, onnxruntime on one thread (batch-1 latency in interleaved "
        "rounds; throughput per core):",
        "",
        *_speeds(trials),
        _verdict(trials),
        "",
    ]
