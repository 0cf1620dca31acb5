"""An INT8 copy of an FP32 ONNX model (`onnxruntime.quantization`), validated against it on real images.

- static (QDQ): weights int8 per output channel, activations uint8, their scales fixed ahead of time from a
  seeded sample of the training split by a calibration method (`CALIBRATIONS`). Every method asked for is tried
  and the copy most accurate on the validation split is kept; the test split only gives the final numbers.
- dynamic: weights int8 ahead of time, each activation's scale computed from the batch as the model runs. It
  suits nets of MatMul and Gemm only (MLPs): nothing to calibrate, and no convolution left in float.

The FP32 model is first put through onnxruntime's pre-processing (shape inference, and the graph optimisations
that fold a BatchNorm into its Conv), which quantization needs for a graph that runs fused.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process
from tqdm import tqdm

from distill_training.config import ConfigError, QuantizeConfig
from distill_training.export import onnx_logits, session

STATIC: Final = "static-qdq"
DYNAMIC: Final = "dynamic"
CALIBRATIONS: Final = {
    "minmax": CalibrationMethod.MinMax,  # the observed range: exact, and stretched by any outlier
    "entropy": CalibrationMethod.Entropy,  # the range whose 128-level histogram keeps the KL divergence smallest
    "percentile": CalibrationMethod.Percentile,  # the range holding 99.999% of the observed values
}
# The calibrators' options. onnxruntime's entropy default histogram has as many bins (128) as the quantized one,
# which leaves its search a single candidate, the whole range: every scale came out equal to MinMax's. 2048 bins
# give it TensorRT's search (Migacz, "8-bit Inference with TensorRT", 2017). `quantize_static` passes no bin
# counts through, so the ranges are computed here and handed to it as its calibration cache.
CALIBRATOR_OPTIONS: Final[dict[str, dict[str, int]]] = {
    "minmax": {},
    "entropy": {"num_bins": 2048, "num_quantized_bins": 128},
    "percentile": {},
}
DYNAMIC_ARCHITECTURES: Final = frozenset({"mlp"})  # what a card's `architecture` names for MatMul-only nets


def method_for(architecture: str) -> str:
    """Dynamic for an MLP, static QDQ with calibration for everything with convolutions."""
    return DYNAMIC if architecture in DYNAMIC_ARCHITECTURES else STATIC


def check_settings(cfg: QuantizeConfig) -> None:
    """A ConfigError for a `quantize.*` setting the step cannot use (checked before any training)."""
    unknown = [n for n in cfg.calibrations if n not in CALIBRATIONS]
    if unknown or not cfg.calibrations:
        raise ConfigError(
            f"quantize.calibrations must name some of {', '.join(CALIBRATIONS)}, got {list(cfg.calibrations)}"
        )
    if not 0 <= cfg.max_drop <= 1:
        raise ConfigError(f"quantize.max_drop is a fraction of test accuracy (0.005: half a point), got {cfg.max_drop}")
    for name in ("calibration_images", "throughput_batch", "throughput_calls"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"quantize.{name} must be at least 1, got {getattr(cfg, name)}")


class ImageReader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
    """Calibration batches of normalised images (N, C, H, W) for the model's one input."""

    def __init__(self, images: np.ndarray, input_name: str, batch_size: int = 64) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        )
        self._input = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input: batch}


def calibration_sample(train_x: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded sample of `count` training images (all of them when the split is smaller)."""
    order = np.random.default_rng(seed).permutation(len(train_x))[:count]
    return np.ascontiguousarray(train_x[np.sort(order)], dtype=np.float32)


def _preprocessed(fp32: Path, folder: Path) -> Path:
    out = folder / "preprocessed.onnx"
    quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    return out


def _ranges(model: Path, images: np.ndarray, calibration: str, folder: Path) -> Path:
    """Every activation's range from `images` by `calibration`, saved as a calibration cache (JSON)."""
    calibrator = create_calibrator(
        model,
        None,  # every float tensor
        augmented_model_path=str(folder / "augmented.onnx"),
        calibrate_method=CALIBRATIONS[calibration],
        extra_options=CALIBRATOR_OPTIONS[calibration],
    )
    input_name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    calibrator.collect_data(ImageReader(images, input_name))
    cache = folder / "ranges.json"
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


def quantize_file(
    fp32: Path, out: Path, *, method: str, calibration: str = "", images: np.ndarray | None = None
) -> Path:
    """Write the INT8 copy of `fp32` to `out`: static QDQ calibrated on `images` with `calibration`, or dynamic."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # The calibrators print a few lines per tensor to stdout; the step reports what it chose instead.
    with tempfile.TemporaryDirectory(prefix="distill-int8-", dir=out.parent) as tmp, redirect_stdout(io.StringIO()):
        pre = _preprocessed(fp32, Path(tmp))
        if method == DYNAMIC:
            quantize_dynamic(pre, out, per_channel=True, weight_type=QuantType.QInt8)
        elif method == STATIC and images is not None:
            quantize_static(
                pre,
                out,
                None,  # the ranges come from the cache
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CALIBRATIONS[calibration],
                calibration_cache_path=_ranges(pre, images, calibration, Path(tmp)),
            )
        else:
            raise ValueError(f"unknown quantization method {method!r} (or static without calibration images)")
    return out


@dataclass(frozen=True)
class Agreement:
    """An INT8 copy against its FP32 model on the same real images."""

    images: int
    agreement: float  # argmax agreement with the FP32 model
    max_abs_diff: float  # largest logit difference
    accuracy: float  # of the INT8 copy on these images' labels


def agreement(int8: Path, fp32_logits: np.ndarray, x: np.ndarray, y: np.ndarray) -> Agreement:
    """Run the INT8 copy on `x` and compare with the FP32 model's logits on the same images."""
    got = onnx_logits(session(int8), x)  # (N, K)
    return Agreement(
        images=len(x),
        agreement=float((got.argmax(1) == fp32_logits.argmax(1)).mean()),
        max_abs_diff=float(np.abs(got - fp32_logits).max()),
        accuracy=float((got.argmax(1) == y).mean()),
    )


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # normalised images (N, C, H, W)
    y: np.ndarray  # labels (N,)
    fp32_logits: np.ndarray  # the FP32 model's (N, K)


def split_of(fp32: Path, x: np.ndarray, y: np.ndarray) -> Split:
    return Split(x, y, onnx_logits(session(fp32), x))


@dataclass(frozen=True)
class Quantized:
    path: Path
    method: str
    calibration: str  # the chosen one; "" for dynamic
    val: Agreement
    test: Agreement
    val_accuracy_by_calibration: dict[str, float]  # every calibration tried


def best_copy(
    fp32: Path,
    folder: Path,
    *,
    method: str,
    calibrations: tuple[str, ...],
    images: np.ndarray,
    val: Split,
    test: Split,
) -> Quantized:
    """The INT8 copy of `fp32` (into `folder/model.onnx`); with static quantization, one per calibration method,
    the most accurate on validation kept (the first listed on a tie)."""
    target = folder / "model.onnx"
    if method == DYNAMIC:
        quantize_file(fp32, target, method=method)
        val_check = agreement(target, val.fp32_logits, val.x, val.y)
        return Quantized(target, method, "", val_check, agreement(target, test.fp32_logits, test.x, test.y), {})
    tried: dict[str, Agreement] = {}
    for name in tqdm(calibrations, desc=f"{folder.name}: calibration methods"):
        path = quantize_file(fp32, folder / f"trial-{name}.onnx", method=method, calibration=name, images=images)
        tried[name] = agreement(path, val.fp32_logits, val.x, val.y)
    chosen = max(calibrations, key=lambda name: tried[name].accuracy)
    (folder / f"trial-{chosen}.onnx").replace(target)
    for name in calibrations:
        (folder / f"trial-{name}.onnx").unlink(missing_ok=True)
    by_calibration = {name: a.accuracy for name, a in tried.items()}
    test_check = agreement(target, test.fp32_logits, test.x, test.y)
    return Quantized(target, method, chosen, tried[chosen], test_check, by_calibration)
