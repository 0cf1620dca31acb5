"""The data plane: what every route calls. Health, metadata and v2 inference over the registry's batchers."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrepo.card import TensorSpec
from service import __version__
from service.batcher import DynamicBatcher
from service.class_output import top_classes
from service.classification import Classifier
from service.codec import RequestedOutput, encode_infer_response, parse_infer_request
from service.control import RepositoryControl
from service.errors import InvalidInput, NotReady
from service.images import ImageDecoder
from service.loading import ServedModel
from service.metrics import Metrics
from service.peers import WorkerBoard
from service.repository import ModelRegistry
from service.runtimes.base import RunResult, Tensors
from service.settings import Settings
from service.shadow import Shadow, ShadowJob

SERVER_NAME = "distill-serve"
# Every extension of the protocol this server answers (KServe v2 and Triton's HTTP extensions).
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics"]
AS_JSON, AS_BINARY = RequestedOutput(binary=False), RequestedOutput(binary=True)


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": spec.shape}


def require_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInput(f"{what} contains NaN or Inf; every value must be finite")


def require_finite_outputs(model: str, outputs: Tensors) -> None:
    """A float input can be finite and still too large for the model (3e38 overflows its first layer): its
    outputs are then NaN or Inf, which is no answer (and JSON would carry them as null)."""
    for name, array in outputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidInput(
                f"model {model!r} computed non-finite values (NaN or Inf) for output {name!r}: the input is out of "
                "the range the model takes; send values of the scale it was trained on (see its card's preprocessing)"
            )


class DataPlane:
    def __init__(
        self, settings: Settings, registry: ModelRegistry, metrics: Metrics, peers: WorkerBoard | None = None
    ) -> None:
        self.settings = settings
        self.peers = peers  # the other worker processes of this server, if any
        self.registry = registry
        self.metrics = metrics
        self.shadow = Shadow(settings.shadow_rate, settings.shadow_queue_size, registry, metrics)
        self.control = RepositoryControl(settings, registry)
        self.classifier = Classifier(registry, metrics, settings.cascade_threshold, self.run, self.shadow)
        self.decoder = ImageDecoder(
            settings.decoding_threads(), settings.decode_pixel_budget, settings.decode_wait_s, settings.retry_after_s
        )
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
        if self.peers is not None and (waiting := self.peers.still_loading()):
            raise NotReady(f"worker processes {waiting} of this server are still loading their models")

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        model = self.registry.get(name, version)
        card = model.card
        return {
            "name": card.name,
            "versions": list(self.registry.served.get(name, {})) if version is None else [str(model.version)],
            "platform": model.runtime.platform,
            "inputs": [_tensor_metadata(card.input)],
            "outputs": [_tensor_metadata(card.output)],
            "parameters": {"max_batch_size": self.settings.max_request_rows},  # rows per request, as in its config
        }

    def model_ready(self, name: str, version: str | None) -> None:
        self.registry.get(name, version)

    # -- inference -----------------------------------------------------------------------------------------
    async def run(self, model: ServedModel, inputs: Tensors, rows: int) -> RunResult:
        """The one way any route reaches a model: its batcher, which may run these rows with others'. The caller
        counts the success (`model.metrics.success`) once the client's whole answer is ready."""
        batcher: DynamicBatcher = model.batcher
        result = await batcher.submit(inputs, rows, count_success=False)
        require_finite_outputs(model.name, result.outputs)
        return result

    async def infer(
        self, name: str, version: str | None, body: bytes, header_length: str | None
    ) -> tuple[bytes, int | None, ShadowJob | None]:
        """The encoded answer, the length of its JSON part when binary data follows, and the shadow job to offer
        once the answer is sent (None unless this request was sampled)."""
        model = self.registry.get(name, version)
        request = parse_infer_request(body, header_length, model.signature)  # checked against the model
        tensor = request.inputs[0]
        require_finite(tensor.array, f"input {tensor.name!r}")
        result = await self.run(model, {tensor.name: tensor.array}, tensor.shape[0])
        card = model.card
        default = [(card.output.name, AS_BINARY if request.binary_output else AS_JSON)]
        outputs = [
            (n, "BYTES", top_classes(result.outputs[n], want.classes, card.labels), want.binary)
            if want.classes
            else (n, card.output.datatype, result.outputs[n], want.binary)
            for n, want in (default if request.outputs is None else request.outputs.items())
        ]
        content, json_size = encode_infer_response(model.name, model.version, request.id, outputs)
        model.metrics.success.inc()  # only an answer the client gets counts as a success
        shadow = self.shadow
        if shadow.rate and model.name == shadow.student and shadow.sample():
            scores = result.outputs[card.output.name]
            return content, json_size, ShadowJob(model, tensor.array, scores.argmax(axis=1), result.share_s, None)
        return content, json_size, None
