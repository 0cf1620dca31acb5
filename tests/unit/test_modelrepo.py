"""The model repository contract: cards stay readable across versions in both directions, the writer stays
strict, and the one datatype table agrees with numpy and onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from pydantic import ValidationError

from modelrepo.card import SCHEMA_VERSION, ModelCard, VersionPolicy, unknown_fields
from modelrepo.datatypes import DATATYPES, NUMPY_DTYPES, from_onnx
from modelrepo.layout import read_card, write_card

SHA = "0" * 64


def card_dict(**changes: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": "m",
        "role": "student",
        "teacher": "t",
        "labels": ["a", "b"],
        "input": {"name": "input", "datatype": "FP32", "shape": [-1, 1, 2, 2]},
        "output": {"name": "logits", "datatype": "FP32", "shape": [-1, 2]},
        "preprocessing": {"height": 2, "width": 2, "mean": [0.5], "std": [0.25]},
        "versions": {
            "1": {"sha256": SHA, "size_bytes": 10, "parameters": 5, "test_accuracy": 0.5, "method": "kd"},
        },
    }
    card.update(changes)
    return card


def test_a_card_of_schema_version_1_still_reads() -> None:
    doc = card_dict(schema_version=1)
    card = ModelCard.model_validate(doc)
    assert card.versions[1].architecture == "unknown" and card.platform == "onnxruntime_onnx"
    assert unknown_fields(card) == []


def test_unknown_methods_architectures_and_fields_are_read_and_listed() -> None:
    doc = card_dict(schema_version=SCHEMA_VERSION + 5, serving_hints={"gpu": False})
    doc["versions"]["1"] |= {"method": "future-distillation", "architecture": "vision-mamba", "calibration": "x"}
    doc["preprocessing"]["crop"] = 0.9
    card = ModelCard.model_validate_json(json.dumps(doc))
    record = card.versions[1]
    assert (record.method, record.architecture) == ("future-distillation", "vision-mamba")
    assert sorted(unknown_fields(card)) == ["preprocessing.crop", "serving_hints", "versions.1.calibration"]


def test_what_the_reader_needs_is_still_validated() -> None:
    with pytest.raises(ValidationError, match="labels"):
        ModelCard.model_validate(card_dict(labels=["a", "b", "c"]))  # 3 labels, 2 outputs
    with pytest.raises(ValidationError, match="teacher"):
        ModelCard.model_validate(card_dict(teacher=None))
    bad = card_dict()
    bad["versions"]["1"]["method"] = "Not A Name!"
    with pytest.raises(ValidationError, match="method"):
        ModelCard.model_validate(bad)


def test_unknown_fields_survive_a_round_trip(tmp_path: Path) -> None:
    doc = card_dict(extra_field=[1, 2])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    card = read_card(path)
    assert json.loads(card.model_dump_json())["extra_field"] == [1, 2]


def test_the_writer_refuses_fields_the_schema_does_not_define(tmp_path: Path) -> None:
    card = ModelCard.model_validate(card_dict(typo_field=1))
    with pytest.raises(ValueError, match="typo_field"):
        write_card(tmp_path, card)
    assert not (tmp_path / "m").exists()
    written = write_card(tmp_path, ModelCard.model_validate(card_dict()))
    assert read_card(written) == ModelCard.model_validate(card_dict())


@pytest.mark.parametrize("name", sorted(DATATYPES))
def test_each_datatype_maps_to_the_onnx_type_onnxruntime_reports(tmp_path: Path, name: str) -> None:
    dtype = NUMPY_DTYPES[name]
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem, [2])],
        [helper.make_tensor_value_info("y", elem, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "identity.onnx"
    onnx.save(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert from_onnx(session.get_inputs()[0].type) == name
    assert DATATYPES[name].onnx == session.get_inputs()[0].type
    (out,) = session.run(None, {"x": np.zeros(2, dtype=dtype)})
    assert out.dtype == dtype


def test_an_onnx_type_outside_the_protocol_is_named_as_it_is() -> None:
    assert from_onnx("tensor(string)") == "tensor(string)"


# -- the version policy (schema version 4): its text form in settings, the versions it picks ---------------------
@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("latest", VersionPolicy(latest=1)),
        ("latest:3", VersionPolicy(latest=3)),
        (" pinned:2,5 ", VersionPolicy(pinned=[2, 5])),
    ],
)
def test_the_text_form_parses_and_prints_back(text: str, policy: VersionPolicy) -> None:
    assert VersionPolicy.parse(text) == policy
    assert VersionPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    "text", ["", "newest", "latest:", "latest:0", "latest:-1", "latest:x", "pinned:", "pinned:0", "pinned:1,,2", "all"]
)
def test_bad_text_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="expected 'latest', 'latest:N' or 'pinned:V"):
        VersionPolicy.parse(text)


def test_candidates_are_newest_first_and_count_how_many_to_serve() -> None:
    assert VersionPolicy(latest=1).candidates([1, 3, 2]) == ([3, 2, 1], 1)  # 2 takes 3's place if 3 fails
    assert VersionPolicy(latest=2).candidates([1, 3, 2]) == ([3, 2, 1], 2)
    assert VersionPolicy(pinned=[1, 3, 9]).candidates([1, 2, 3]) == ([3, 1], 2)  # 9 is not there
    assert VersionPolicy(pinned=[9]).candidates([1, 2]) == ([], 0)


def test_a_policy_is_one_rule() -> None:
    with pytest.raises(ValidationError, match="not both"):
        VersionPolicy(latest=1, pinned=[1])
    with pytest.raises(ValidationError, match="not both"):
        VersionPolicy()


def test_cards_carry_a_policy_or_leave_it_to_the_service() -> None:
    assert ModelCard.model_validate(card_dict()).version_policy is None
    card = ModelCard.model_validate(card_dict(version_policy={"pinned": [1]}))
    assert card.version_policy == VersionPolicy(pinned=[1])
    with pytest.raises(ValidationError, match="version_policy"):
        ModelCard.model_validate(card_dict(version_policy={"latest": 0}))


def test_an_ensemble_card_lists_its_members_and_round_trips(tmp_path: Path) -> None:
    member = {"architecture": "conv", "parameters": 3, "test_accuracy": 0.9, "sha256": SHA}
    members = [member | {"name": "t-member0"}, member | {"name": "t-member1"}]
    doc = card_dict(name="t", role="teacher", teacher=None, ensemble={"members": members})
    doc["versions"]["1"] |= {"method": "teacher", "architecture": "ensemble"}
    card = ModelCard.model_validate(doc)
    assert card.ensemble is not None and card.ensemble.combine == "mean-logits"
    assert [m.name for m in card.ensemble.members] == ["t-member0", "t-member1"] and unknown_fields(card) == []
    assert read_card(write_card(tmp_path, card)) == card
    with pytest.raises(ValidationError, match="members"):
        ModelCard.model_validate(doc | {"ensemble": {"members": members[:1]}})  # one net is not an ensemble
