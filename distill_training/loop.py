"""What the teacher and student loops share: batches, evaluation, and `Fit` (AdamW under a one-cycle schedule
that can be shortened mid-run, and the weights of the best epoch on the validation split)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def batches(n: int, batch_size: int, gen: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index batches over n rows: shuffled by `gen`, else in order."""
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, K) in fp32, in eval mode."""
    model.eval()
    out = [model(x[idx]).float() for idx in batches(len(x), batch_size)]
    return torch.cat(out)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


class OneCycle:
    """The one-cycle policy of Smith and Topin ("Super-Convergence", 2018), as torch's OneCycleLR draws it (30% of
    the steps warming up from peak/25 to the peak, then a cosine down to peak/25e4; Adam's beta1 the other way,
    0.95 -> 0.85 -> 0.95), driven by the fraction of the run done instead of a step count, so that the run can be
    shortened (or lengthened) mid-way (`retarget`): the rest of the curve is then drawn over the steps that are
    left, with no jump in the learning rate."""

    WARMUP, DIV, FINAL_DIV, BETAS = 0.3, 25.0, 1e4, (0.85, 0.95)

    def __init__(self, optimizer: torch.optim.Optimizer, *, peak: float, steps: int) -> None:
        self.optimizer, self.peak = optimizer, peak
        self.done, self.steps_left = 0.0, steps  # fraction of the curve drawn, steps to draw the rest over
        self._apply()

    @staticmethod
    def _cos(start: float, end: float, fraction: float) -> float:
        return end + (start - end) / 2 * (1 + math.cos(math.pi * fraction))

    def _apply(self) -> None:
        low, high = self.BETAS
        if self.done < self.WARMUP:
            f = self.done / self.WARMUP
            lr, beta = self._cos(self.peak / self.DIV, self.peak, f), self._cos(high, low, f)
        else:
            f = (self.done - self.WARMUP) / (1 - self.WARMUP)
            lr, beta = self._cos(self.peak, self.peak / (self.DIV * self.FINAL_DIV), f), self._cos(low, high, f)
        for group in self.optimizer.param_groups:
            group["lr"], group["betas"] = lr, (beta, group["betas"][1])

    def step(self) -> None:
        if self.steps_left > 0:
            self.done += (1 - self.done) / self.steps_left
            self.steps_left -= 1
        self._apply()

    def retarget(self, steps_left: int) -> None:
        """Draw the rest of the curve over `steps_left` steps."""
        self.steps_left = max(1, steps_left)

    def state_dict(self) -> dict[str, float]:
        return {"done": self.done, "steps_left": self.steps_left}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.done, self.steps_left = float(state["done"]), int(state["steps_left"])
        self._apply()


class Fit:
    """AdamW under a one-cycle schedule (peak `lr`) over `epochs` x `steps_per_epoch` steps, the per-epoch
    history, and a copy of the weights of the best epoch on validation (the first one on a tie).

    `state_dict` holds all of it, so a run saved after any epoch resumes to the weights an uninterrupted run
    ends with. `replan` changes the number of epochs mid-run, the schedule finishing its curve over what is
    left."""

    def __init__(self, model: nn.Module, *, lr: float, weight_decay: float, epochs: int, steps_per_epoch: int) -> None:
        self.model, self.epochs, self.steps_per_epoch = model, epochs, steps_per_epoch
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.schedule = OneCycle(self.optimizer, peak=lr, steps=epochs * steps_per_epoch)
        self.history: list[dict[str, float]] = []
        self.best_val = -1.0
        self.best: dict[str, torch.Tensor] | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate `loss`, take an optimizer step, advance the schedule."""
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        self.optimizer.step()
        self.schedule.step()

    def replan(self, epochs: int) -> None:
        """End the run after `epochs` epochs (at least one more than done) instead of the number planned."""
        self.epochs = max(epochs, self.epochs_done + 1)
        self.schedule.retarget((self.epochs - self.epochs_done) * self.steps_per_epoch)

    def end_epoch(self, val_accuracy: float, **record: float) -> None:
        """Record the epoch (with `record`, e.g. its loss); keep its weights if it is the best so far."""
        self.history.append({"epoch": self.epochs_done + 1, **record, "val_accuracy": val_accuracy})
        if val_accuracy > self.best_val:
            self.best_val = val_accuracy
            self.best = {k: v.clone() for k, v in self.model.state_dict().items()}

    def best_weights(self) -> dict[str, torch.Tensor]:
        if self.best is None:
            raise RuntimeError("no epoch has ended yet")
        return self.best

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epochs_done,
            "epochs": self.epochs,
            "history": self.history,
            "best_val": self.best_val,
            "best": self.best,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["scheduler"])
        self.epochs = int(saved.get("epochs", self.epochs))
        self.history = list(saved["history"])
        self.best_val = float(saved["best_val"])
        self.best = saved["best"]
