"""Schemathesis against the service's own OpenAPI schema, on a real server, bounded in examples: no response is a
5xx, and every response (status code, content type, body) matches the schema."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from servers import Server, run_service
from tiny_models import make_repo

EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    with run_service(make_repo(root / "models"), root / "service.log") as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: Server) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")


def test_every_response_is_documented_and_none_is_a_server_error(api_schema: schemathesis.schemas.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    assert len(operations) == 23  # 15, and Triton's config (2), statistics (3) and repository (3) extensions
    for operation in operations:  # one bounded hypothesis run per operation

        @given(case=operation.as_strategy(), served=st.sampled_from([None, "tiny-student", "tiny-teacher"]))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def fuzz(case: schemathesis.Case, served: str | None) -> None:
            if served is not None and "name" in (case.path_parameters or {}):  # a served model, not only 404s
                case.path_parameters["name"] = served
                if "version" in case.path_parameters:
                    case.path_parameters["version"] = "1"
            statuses[case.operation.label][case.call_and_validate(checks=CHECKS, timeout=30).status_code] += 1

        fuzz()
    print({label: dict(counts) for label, counts in statuses.items()})
    infer = statuses["POST /v2/models/{name}/infer"]
    assert infer[404] and infer[400]  # unknown names, and served models given fuzzed tensors
    assert set(statuses["POST /v2/repository/models/{name}/unload"]) == {403}  # model control is off by default


def test_the_schema_documents_v2_infer_and_error_bodies(api_schema: schemathesis.schemas.BaseSchema) -> None:
    raw = api_schema.raw_schema
    infer = raw["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferRequest"
    }
    for path, item in raw["paths"].items():
        for operation in item.values():
            codes = set(operation["responses"])
            assert "200" in codes and {"404", "503", "504"} <= codes, path
            for code in codes - {"200"}:
                schema_ref = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema_ref == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
