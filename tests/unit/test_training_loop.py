"""`loop.Fit`, the helper the teacher and student loops share: best-epoch tracking and a state that resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from distill_training.loop import Fit, OneCycle


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
    assert resumed.history == straight.history and resumed.schedule.state_dict() == straight.schedule.state_dict()


def learning_rates(fit: Fit, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(fit.optimizer.param_groups[0]["lr"])
        one_step(fit)
    return rates


def test_the_schedule_draws_torchs_one_cycle_curve() -> None:
    reference = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1)
    torch_cycle = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=0.1, total_steps=200)
    ours, theirs = [], []
    fit = Fit(nn.Linear(3, 2), lr=0.1, weight_decay=0.0, epochs=20, steps_per_epoch=10)
    for _ in range(200):
        ours.append(fit.optimizer.param_groups[0]["lr"])
        theirs.append(reference.param_groups[0]["lr"])
        one_step(fit)
        reference.step()
        torch_cycle.step()
    np.testing.assert_allclose(ours, theirs, atol=0.1 * 0.02)  # torch counts the warm-up one step shorter
    assert max(ours) == pytest.approx(0.1, rel=1e-3) and ours[-1] < 0.1 / 25


def test_a_shortened_run_finishes_its_curve_over_the_steps_left_without_a_jump() -> None:
    fit = Fit(nn.Linear(3, 2), lr=0.1, weight_decay=0.0, epochs=10, steps_per_epoch=10)
    before = learning_rates(fit, 40)
    for _ in range(4):
        fit.end_epoch(0.5)
    fit.replan(6)  # two epochs left instead of six
    after = learning_rates(fit, 20)
    assert fit.epochs == 6
    assert abs(after[0] - before[-1]) < 0.05 * 0.1  # no jump
    assert after[-1] < 0.1 / 25 and fit.schedule.done == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(after[1:], after, strict=False))  # annealing down all the way


def test_a_run_is_never_replanned_below_one_more_epoch() -> None:
    fit = fit_of()
    fit.end_epoch(0.5)
    fit.replan(0)
    assert fit.epochs == 2 and fit.schedule.steps_left == 2


def test_the_schedule_state_resumes_exactly() -> None:
    optimizer = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1)
    cycle = OneCycle(optimizer, peak=0.1, steps=50)
    for _ in range(17):
        cycle.step()
    again = OneCycle(torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1), peak=0.1, steps=50)
    again.load_state_dict(cycle.state_dict())
    assert again.optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert again.optimizer.param_groups[0]["betas"] == optimizer.param_groups[0]["betas"]
