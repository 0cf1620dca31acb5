"""The answer's class on tied scores (an INT8 model's scores are quantized, so ties are common): the lower class
index, as argmax gives it, so the answer, the accuracy counters and the accuracy measured at export agree."""

from __future__ import annotations

import numpy as np

from service.classification import predictions


def test_a_tie_goes_to_the_lower_class_index_like_argmax() -> None:
    probs = np.array([[0.1, 0.4, 0.4, 0.1], [0.3, 0.1, 0.3, 0.3], [0.1, 0.2, 0.3, 0.4]])
    answers = predictions(probs, ["a", "b", "c", "d"], ["m"] * 3)
    assert [p["class_index"] for p in answers] == probs.argmax(axis=1).tolist() == [1, 0, 3]
    assert [t["label"] for t in answers[1]["top"]] == ["a", "c", "d"]  # tied scores in class order
