"""What the teacher and student loops share: batches, evaluation, and `Fit` (AdamW under a one-cycle schedule,
and the weights of the best epoch on the validation split)."""

from __future__ import annotations

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


class Fit:
    """AdamW under a one-cycle schedule (peak `lr`) over `epochs` x `steps_per_epoch` steps, the per-epoch
    history, and a copy of the weights of the best epoch on validation (the first one on a tie).

    `state_dict` holds all of it, so a run saved after any epoch resumes to the weights an uninterrupted run
    ends with."""

    def __init__(self, model: nn.Module, *, lr: float, weight_decay: float, epochs: int, steps_per_epoch: int) -> None:
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch
        )
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
        self.history = list(saved["history"])
        self.best_val = float(saved["best_val"])
        self.best = saved["best"]
