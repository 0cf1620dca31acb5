"""The OpenAPI contract of every response, and of the v2 infer route served ahead of FastAPI (`service.fastpath`).

These models document; the routes return plain dicts (no validation on the hot path). The fuzz test
(tests/integration/test_reliability_fuzz.py) checks that every response matches them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelrepo.datatypes import DatatypeName as Datatype


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="what went wrong, and what was expected")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "the request does not follow the protocol (or, for load, the model could not be loaded: why)",
        401: "load and unload need the control token: Authorization: Bearer <token>",
        403: "a browser request from another origin's page (see allowed_origins), or model control is off",
        404: "unknown model, version or route",
        413: "body, batch or image over the configured limits",
        415: "content type or encoding not accepted",
        422: "well-formed but unusable values",
        500: "a model failed to run this request's batch (the message names it)",
        503: "not ready, shutting down, or overloaded (with Retry-After)",
        504: "the request took longer than request_timeout_s",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in codes}


READ_ERRORS = errors(404, 422, 503, 504)


def documents(
    model: type[BaseModel], *, many: bool = False, errors: dict[int | str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Route keywords: `model` (a list of them if `many`) documents the 200 response, `errors` the others; the
    route still returns plain data, unvalidated."""
    answer = {"model": list[model] if many else model, "description": "success"}  # type: ignore[valid-type]
    return {"response_model": None, "responses": {200: answer, **(errors or {})}}


INFER_ERRORS = errors(400, 403, 404, 413, 415, 422, 500, 503, 504)
CONTROL_ERRORS = errors(400, 401, 403, 404, 413, 422, 503, 504)
INDEX_ERRORS = errors(400, 404, 413, 422, 503, 504)


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="every version served; requests without a version get the newest")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(description="max_batch_size: the most rows one request may carry")


class ConfigTensor(BaseModel):
    name: str
    data_type: str = Field(description="Triton's name: TYPE_FP32, ...")
    dims: list[int] = Field(description="without the batch axis")
    format: str | None = None
    label_filename: str | None = None


class ModelConfig(BaseModel):
    """Triton's model configuration (the fields this service fills)."""

    name: str
    platform: str
    backend: str
    version_policy: dict[str, Any]
    max_batch_size: int = Field(description="the most rows one request may carry (max_request_rows)")
    input: list[ConfigTensor]
    output: list[ConfigTensor]
    dynamic_batching: dict[str, Any] = Field(description="preferred_batch_size: the most rows of one run; its queue")
    instance_group: list[dict[str, Any]] = Field(description="one CPU instance per worker process")
    parameters: dict[str, dict[str, str]]


class Duration(BaseModel):
    count: int
    ns: int


class InferenceStats(BaseModel):
    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration
    cache_hit: Duration
    cache_miss: Duration


class ModelStats(BaseModel):
    name: str
    version: str
    last_inference: int
    inference_count: int = Field(description="rows run")
    execution_count: int = Field(description="runs (batches)")
    inference_stats: InferenceStats
    batch_stats: list[dict[str, Any]]


class ModelStatistics(BaseModel):
    model_stats: list[ModelStats]


class RepositoryEntry(BaseModel):
    name: str
    version: str | None = None
    state: Literal["READY", "LOADING", "UNAVAILABLE"]
    reason: str


class ControlAnswer(BaseModel):
    name: str
    versions: list[str] | None = Field(default=None, description="load: the versions now served")
    state: str | None = Field(default=None, description="unload: UNAVAILABLE")


class ModelReady(BaseModel):
    name: str
    ready: bool


class Ranked(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    label: str
    class_index: int
    probability: float
    answered_by: str = Field(description="the model that gave this answer (cascade: student or teacher)")
    top: list[Ranked]


class Classified(BaseModel):
    model: str | None = Field(description="the model, or null for the cascade")
    route: str
    predictions: list[Prediction]
    compute_ms: float


class CompareSide(BaseModel):
    model: str
    role: str = Field(description="the model's role on its card: student or teacher")
    predictions: list[Prediction]
    compute_ms: float


class Compared(BaseModel):
    a: CompareSide
    b: CompareSide
    student: CompareSide | None = Field(
        default=None, description="the student's side (a or b), when one side is a student and the other a teacher"
    )
    teacher: CompareSide | None = Field(default=None, description="the teacher's side, likewise")
    speedup: float | None = Field(description="b's compute time over a's: how many times faster a ran")
    agreement: float = Field(description="share of rows on which both gave the same class")
    agree: list[bool]


# -- what the web page reads (service.routes.about) ------------------------------------------------------------
class ModelCardSummary(BaseModel):
    name: str
    role: str
    teacher: str | None
    version: int
    platform: str
    labels: list[str]
    input: TensorMetadata
    test_accuracy: float = Field(description="accuracy on the whole test set, measured at export (fraction)")
    parameters: int
    size_bytes: int
    method: str = Field(description="how it was trained: teacher, kd, none, or a newer method's name")
    method_words: str
    architecture: str
    architecture_words: str
    quantization: dict[str, Any] | None = Field(description="for an INT8 copy: method, FP32 model, accuracies")
    ensemble: list[str] | None = Field(description="for an ensemble: its members' names")
    created: str
    summary: str = Field(description="the card in one sentence")


class ServedPair(BaseModel):
    student: str | None = Field(description="the model answering route=student (null when none is served)")
    teacher: str | None


class ModelsOverview(BaseModel):
    models: list[ModelCardSummary]
    pair: ServedPair
    cascade_threshold: float = Field(description="the cascade's default threshold (cascade_threshold)")
    loaded: bool = Field(description="every model has been tried (loaded or failed)")
    loading: list[str] = Field(description="models still loading")
    failed: dict[str, str] = Field(description="models that could not be served, and why")


class SampleFile(BaseModel):
    file: str
    label: str = Field(description="the true class")
    class_index: int
    test_index: int = Field(description="its position in the test split")
    url: str


class SampleList(BaseModel):
    dataset: str | None
    samples: list[SampleFile]
    note: str | None = Field(description="why there are no samples, when there are none")


class ComputeHistogram(BaseModel):
    count: float
    sum: float = Field(description="seconds")
    buckets: list[list[float]] = Field(description="[upper bound in seconds, cumulative count], +Inf left out")


class ModelFigures(BaseModel):
    role: str | None
    requests: dict[str, float] = Field(description="requests that reached the model, by outcome")
    compute: ComputeHistogram = Field(description="distill_inference_duration_seconds")
    labeled: float
    correct: float


class AgreementFigures(BaseModel):
    labels: dict[str, str] = Field(description="student, teacher (and source where the service counts one)")
    agree: float
    disagree: float


class Stats(BaseModel):
    time: float = Field(description="the server's clock, Unix seconds: divide differences by differences of this")
    models: dict[str, ModelFigures]
    endpoints: dict[str, float] = Field(description="requests answered, by endpoint")
    agreement: list[AgreementFigures]
    cascade: dict[str, float] = Field(description="cascade rows answered by the student or the teacher")


# -- v2 infer (Open Inference Protocol, JSON with Triton's binary tensor data extension) ------------------------
class InferParameters(BaseModel):
    binary_data_size: int | None = Field(default=None, ge=0, description="bytes of this tensor after the JSON")
    binary_data: bool | None = None
    binary_data_output: bool | None = None
    classification: int | None = Field(
        default=None, ge=1, description='an output: its top k classes as BYTES "score:index:label" (Triton)'
    )


class InferInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 is not allowed here: the actual shape")
    data: list[Any] | None = Field(default=None, description="flat or nested numbers, row-major")
    parameters: InferParameters | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parameters: InferParameters | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None
    parameters: InferParameters | None = None


class InferOutput(BaseModel):
    name: str
    datatype: Datatype | Literal["BYTES"] = Field(description="BYTES for a classification output")
    shape: list[int]
    data: list[float] | list[str] | None = None
    parameters: InferParameters | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutput]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document_fast_path(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the v2 infer routes (served by `service.fastpath`, so FastAPI does not see them) to an OpenAPI doc."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (InferRequest, InferResponse, ErrorBody):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(generated.pop("$defs", {}))
        components[model.__name__] = generated
    error = {"content": {"application/json": {"schema": _ref(ErrorBody)}}}
    operation = {
        "tags": ["v2"],
        "summary": "Infer",
        "description": "Open Inference Protocol v2 inference. Binary tensor data may follow the JSON; the "
        "`Inference-Header-Content-Length` header then gives the JSON's length.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(InferRequest)}}},
        "responses": {
            "200": {
                "description": "the outputs (binary data after the JSON when asked for)",
                "content": {
                    "application/json": {"schema": _ref(InferResponse)},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **{str(code): {**error, "description": doc["description"]} for code, doc in INFER_ERRORS.items()},
        },
    }
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    paths = schema.setdefault("paths", {})
    paths["/v2/models/{name}/infer"] = {"post": {**operation, "operationId": "infer", "parameters": [name]}}
    paths["/v2/models/{name}/versions/{version}/infer"] = {
        "post": {**operation, "operationId": "infer_version", "parameters": [name, version]}
    }
    return schema
