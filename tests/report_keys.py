"""Key sets of `reports/distillation.json` that other tools read, written out here as the contract states them
(not read from the code that writes them, so a renamed key fails the tests)."""

from __future__ import annotations

# One entry of the `quantization` list: a model tried in INT8, and what the gate decided.
QUANTIZATION_KEYS = {
    "model",
    "fp32_model",
    "method",
    "calibration",
    "fp32_accuracy",
    "int8_accuracy",
    "drop",
    "gate",
    "published",
}
