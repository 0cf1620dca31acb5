"""`GET /v2/models/{name}[/versions/{v}]/config`: a model's configuration in Triton's JSON shape, so tools that read
it first (tritonclient's `get_model_config`, model analyzers, perf scripts) find what they expect.

Mapped from the card and the settings: `max_batch_size` is the most rows one request may carry
(`max_request_rows`; a request over it is a 400), dims leave out the batch axis (as Triton's do when
`max_batch_size` > 0), `dynamic_batching` is the batcher (`preferred_batch_size`: the most rows it gathers into
one run) and its queue, `instance_group` one CPU instance per worker process.
"""

from __future__ import annotations

from typing import Any

from modelrepo.card import TensorSpec, VersionPolicy
from service.loading import ServedModel
from service.settings import Settings

TRITON_TYPES = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64", "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64", "BYTES": "TYPE_STRING",
}  # fmt: skip


def _tensor(spec: TensorSpec, image_layout: str | None) -> dict[str, Any]:
    dims = spec.shape[1:]  # the batch axis is max_batch_size's
    entry: dict[str, Any] = {"name": spec.name, "data_type": TRITON_TYPES[spec.datatype], "dims": dims}
    if image_layout is not None:
        entry["format"] = f"FORMAT_{image_layout}" if len(dims) == 3 else "FORMAT_NONE"
    return entry


def _version_policy(policy: VersionPolicy) -> dict[str, Any]:
    if policy.latest is not None:
        return {"latest": {"num_versions": policy.latest}}
    return {"specific": {"versions": sorted(policy.pinned or [])}}


def model_config(model: ServedModel, settings: Settings) -> dict[str, Any]:
    card = model.card
    batching = settings.batching_for(card.name)
    threads = settings.threads_for(card.name, inline=model.batcher.inline)
    parameters = {
        "role": card.role,
        "teacher": card.teacher or "",
        "output_kind": card.output_kind,
        "intra_op_thread_count": str(threads.intra_op_threads),  # as Triton's onnxruntime backend names it
    }
    return {
        "name": card.name,
        "platform": model.runtime.platform,
        "backend": "onnxruntime",
        "version_policy": _version_policy(settings.version_policy_for(card.name, card.version_policy)),
        "max_batch_size": settings.max_request_rows,
        "input": [_tensor(card.input, card.preprocessing.layout)],
        "output": [{**_tensor(card.output, None), "label_filename": ""}],
        "dynamic_batching": {
            "preferred_batch_size": [batching.max_batch_size],
            "max_queue_delay_microseconds": round(batching.max_queue_delay_s * 1e6),
            "default_queue_policy": {
                "timeout_action": "REJECT",
                "default_timeout_microseconds": round(settings.request_timeout_s * 1e6),
                "allow_timeout_override": False,
                "max_queue_size": batching.max_queue_size,
            },
        },
        "instance_group": [{"name": card.name, "kind": "KIND_CPU", "count": settings.workers}],
        "parameters": {key: {"string_value": value} for key, value in parameters.items()},
    }
