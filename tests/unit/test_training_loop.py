"""`loop.Fit`, the helper the teacher and student loops share: best-epoch tracking and a state that resumes."""

from __future__ import annotations

import torch
from torch import nn

from distill_training.loop import Fit


def fit_of(seed: int = 0) -> Fit:
    torch.manual_seed(seed)
    return Fit(nn.Linear(3, 2), lr=0.1, weight_decay=0.0, epochs=4, steps_per_epoch=2)


def one_step(fit: Fit) -> None:
    fit.step(fit.model(torch.ones(4, 3)).pow(2).mean())


def test_the_best_epoch_on_validation_is_kept_and_a_tie_keeps_the_earlier_one() -> None:
    fit = fit_of()
    kept = []
    for val in (0.5, 0.7, 0.7, 0.6):
        one_step(fit)
        fit.end_epoch(val, loss=1.0)
        kept.append(fit.model.weight.detach().clone())
    torch.testing.assert_close(fit.best_weights()["weight"], kept[1])
    assert fit.best_val == 0.7 and fit.epochs_done == 4
    assert fit.history[0] == {"epoch": 1, "loss": 1.0, "val_accuracy": 0.5}


def test_a_saved_state_resumes_to_the_weights_of_an_uninterrupted_run() -> None:
    straight, interrupted = fit_of(), fit_of()
    for fit in (straight, interrupted):
        one_step(fit)
        fit.end_epoch(0.5)
    resumed = fit_of(seed=1)  # other initial weights: everything must come from the state
    resumed.load_state_dict(interrupted.state_dict())
    for fit in (straight, resumed):
        for _ in range(3):
            one_step(fit)
    torch.testing.assert_close(resumed.model.state_dict(), straight.model.state_dict(), rtol=0, atol=0)
    assert resumed.history == straight.history and resumed.schedule.last_epoch == straight.schedule.last_epoch
