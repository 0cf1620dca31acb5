"""Train/serve skew: the service, given raw pixels, gets exactly the accuracy the card says training measured.

The card's `test_accuracy` is measured at export on the whole test split, normalised by training's loader
(`distill_training.data`). The service normalises raw pixels itself, from the card's `preprocessing`. Sending
the same test images as raw pixels (0..255) to `/v1/classify` must give the same argmax on every image, so the
online accuracy (from the predictions and from the Prometheus counters) equals the card's accuracy exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from servers import wait_ready

from modelrepo.dataset import load_test_split
from modelrepo.layout import card_path, read_card
from service.app import create_app
from service.settings import Settings

pytestmark = pytest.mark.slow

ROWS_PER_REQUEST = 256  # the service's default limit (max_request_rows)


def counters(client: TestClient, model: str) -> tuple[float, float]:
    """(correct, labeled) predictions of `model` from `/metrics`."""
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.labels.get("model") == model:
                found[sample.name] = sample.value
    return found["distill_predictions_correct_total"], found["distill_predictions_labeled_total"]


@pytest.mark.parametrize("name", ["fmnist-teacher", "fmnist-student", "fmnist-teacher-int8", "fmnist-student-int8"])
def test_online_accuracy_on_raw_test_pixels_equals_the_cards_accuracy(quick_build: Path, name: str) -> None:
    repo = quick_build / "models"
    if name.endswith("-int8") and not card_path(repo, name).is_file():
        # The gate decides on the machine that trains; test_quantize_quick checks what it decided.
        pytest.skip(f"the quantize step did not publish {name} on this machine (reports/distillation.json says why)")
    card = read_card(card_path(repo, name))
    record = card.versions[card.latest_version]
    images, labels = load_test_split(record.config["training"]["data"]["data_dir"])  # the split it was measured on
    rows = images.reshape(len(images), -1)  # (N, H*W) uint8, as a client sends them
    settings = Settings(models_dir=repo, intra_op_threads=1, warmup_runs=1, max_request_rows=ROWS_PER_REQUEST)
    predicted: list[int] = []
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        for start in range(0, len(rows), ROWS_PER_REQUEST):
            body = {
                "inputs": rows[start : start + ROWS_PER_REQUEST].tolist(),
                "labels": labels[start : start + ROWS_PER_REQUEST].tolist(),
            }
            response = client.post("/v1/classify", params={"model": name}, json=body)
            assert response.status_code == 200, response.text
            predicted += [p["class_index"] for p in response.json()["predictions"]]
        correct, labeled = counters(client, name)

    hits = int((np.array(predicted) == labels).sum())
    assert len(predicted) == labeled == len(labels)
    assert correct == hits
    assert hits / len(labels) == record.test_accuracy
