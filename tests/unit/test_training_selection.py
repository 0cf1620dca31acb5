"""Which student seed is exported: the best on the validation split, never chosen by the test set."""

from __future__ import annotations

from distill_training.comparison import best_seed


def test_the_best_validation_seed_is_exported_and_ties_go_to_the_lowest_seed() -> None:
    assert best_seed([0.901, 0.910, 0.904]) == 1
    assert best_seed([0.905, 0.902, 0.905]) == 0
    assert best_seed([0.9]) == 0
