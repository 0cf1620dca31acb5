"""What the benchmark sends: one real test image as the model's input tensor, in each body encoding."""

from __future__ import annotations

import json

import numpy as np
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from distill_bench.drivers.wrk import Request
from distill_bench.results.bench import Body
from modelrepo.card import ModelCard


def model_input(card: ModelCard, pixels: np.ndarray) -> np.ndarray:
    """Pixels (H, W) uint8 normalised as the card says, the way a v2 client sends them."""
    pre = card.preprocessing
    x = (pixels.astype(np.float32) * pre.scale - pre.mean[0]) / pre.std[0]
    return x.reshape(1, 1, pre.height, pre.width).astype(np.float32)  # (1, 1, 28, 28)


def infer_requests(card: ModelCard, x: np.ndarray) -> dict[Body, Request]:
    """The same tensor as a v2 JSON body and as a binary-extension body, the latter built by tritonclient itself."""
    path = f"/v2/models/{card.name}/infer"
    as_json = {
        "inputs": [{"name": card.input.name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    tensor = InferInput(card.input.name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    body, header_length = InferenceServerClient.generate_request_body(
        [tensor], outputs=[InferRequestedOutput(card.output.name, binary_data=True)]
    )
    binary_headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_length)}
    return {
        "json": Request(path, json.dumps(as_json).encode(), {"Content-Type": "application/json"}),
        "binary": Request(path, bytes(body), binary_headers),
    }
