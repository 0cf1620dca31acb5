"""The data plane: what every route calls. Health, metadata and v2 inference over the registry's batchers."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrepo.card import TensorSpec
from service import __version__
from service.batcher import DynamicBatcher
from service.body import check_rows
from service.classification import Classifier
from service.codec import InputTensor, ParsedInferRequest, encode_infer_response, parse_infer_request
from service.errors import BadRequest, InvalidInput, NotReady
from service.metrics import Metrics
from service.repository import ModelRegistry, ServedModel
from service.runtimes.base import RunResult, Tensors
from service.settings import Settings

SERVER_NAME = "distill-serve"
EXTENSIONS = ["binary_tensor_data"]


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": spec.shape}


def require_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInput(f"{what} contains NaN or Inf; every value must be finite")


def _check_input(model: str, tensor: InputTensor, spec: TensorSpec) -> None:
    if tensor.datatype != spec.datatype:
        raise BadRequest(
            f"input {tensor.name!r} of model {model!r} has datatype {tensor.datatype}, expected {spec.datatype}"
        )
    if len(tensor.shape) != len(spec.shape) or any(
        e not in (-1, a) for a, e in zip(tensor.shape, spec.shape, strict=True)
    ):
        raise BadRequest(
            f"input {tensor.name!r} of model {model!r} has shape {list(tensor.shape)}, expected {spec.shape} "
            "(-1 = any batch size)"
        )


class DataPlane:
    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.classifier = Classifier(registry, metrics, settings.cascade_threshold, self.run)
        self.draining = False  # set on SIGTERM: readiness answers 503 while in-flight requests finish

    # -- health and metadata -------------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def begin_drain(self) -> None:
        self.draining = True

    def check_ready(self) -> None:
        registry = self.registry
        if self.draining:
            raise NotReady("shutting down: finishing in-flight requests")
        if not registry.loaded:
            loading = sorted(s.name for s in registry.with_status("loading"))
            raise NotReady(f"loading models: {loading} still to load")
        if not registry.states:
            raise NotReady(registry.empty_reason())
        if not registry.ready:
            raise NotReady(f"no model could be served: {[s.reason for s in registry.with_status('failed')]}")

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        model = self.registry.get(name, version)
        card = model.card
        return {
            "name": card.name,
            "versions": [str(model.version)],
            "platform": model.runtime.platform,
            "inputs": [_tensor_metadata(card.input)],
            "outputs": [_tensor_metadata(card.output)],
        }

    def model_ready(self, name: str, version: str | None) -> None:
        self.registry.get(name, version)

    # -- inference -----------------------------------------------------------------------------------------
    async def run(self, model: ServedModel, inputs: Tensors, rows: int) -> RunResult:
        """The one way any route reaches a model: its batcher, which may run these rows with others'."""
        batcher: DynamicBatcher = model.batcher
        return await batcher.submit(inputs, rows)

    def _feeds(self, model: ServedModel, request: ParsedInferRequest) -> tuple[Tensors, int]:
        spec = model.card.input
        names = [t.name for t in request.inputs]
        if names != [spec.name]:
            raise BadRequest(f"model {model.name!r} takes exactly one input {spec.name!r}, got inputs {names}")
        tensor = request.inputs[0]
        _check_input(model.name, tensor, spec)
        rows = tensor.shape[0]
        check_rows(rows, self.settings.max_request_rows)
        require_finite(tensor.array, f"input {tensor.name!r}")
        return {spec.name: tensor.array}, rows

    def _selected(self, model: ServedModel, request: ParsedInferRequest) -> list[tuple[str, bool]]:
        available = model.card.output.name
        if request.outputs is None:
            return [(available, request.binary_output)]
        unknown = [n for n in request.outputs if n != available]
        if unknown:
            raise BadRequest(f"model {model.name!r} has no output {unknown}; its outputs are [{available!r}]")
        return list(request.outputs.items())

    async def infer(
        self, name: str, version: str | None, body: bytes, header_length: str | None
    ) -> tuple[bytes, int | None]:
        model = self.registry.get(name, version)
        request = parse_infer_request(body, header_length)
        feeds, rows = self._feeds(model, request)
        selected = self._selected(model, request)
        result = await self.run(model, feeds, rows)
        datatype: str = model.card.output.datatype
        outputs = [(n, datatype, result.outputs[n], binary) for n, binary in selected]
        return encode_infer_response(model.name, model.version, request.id, outputs)
