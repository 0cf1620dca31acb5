"""The training loops: the teacher (checkpointed every epoch, resumable) and a student (KD or label-only).

Both read top to bottom: seed, data, net, loop, evaluate, keep the best epoch on the validation split, save.
Weights are saved as state dicts with torch.save and loaded with torch.load(weights_only=True).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from distill_training.config import PipelineConfig, StudentConfig, TeacherConfig, save_config, to_dict
from distill_training.data import Dataset
from distill_training.losses import distillation_loss
from distill_training.nets import Student, Teacher, set_memory_format
from distill_training.staleness import digest, read_meta, write_meta

CHECKPOINT = "checkpoint.pt"  # resumable state of the teacher, rewritten every epoch
WEIGHTS = "model.pt"  # final weights (the best epoch on the validation split)


def cpu_supports_bf16() -> bool:
    """bf16 pays off only with native support (AVX512-BF16 or AMX); detect it, never assume it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(precision: str) -> torch.dtype | None:
    if precision == "bf16" or (precision == "auto" and cpu_supports_bf16()):
        return torch.bfloat16
    return None


def _autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def augment(x: torch.Tensor, gen: torch.Generator, *, flip: bool = True, max_shift: int = 2) -> torch.Tensor:
    """Random horizontal flips and shifts of up to `max_shift` pixels (edge filled with the background)."""
    b, c, h, w = x.shape
    if flip:
        flipped = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (max_shift,) * 4, value=float(x.min()))  # (B, C, H+2s, W+2s)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]  # (B, 1, H, 1)
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]  # (B, 1, 1, W)
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def batches(n: int, batch_size: int, gen: torch.Generator | None = None) -> Iterator[torch.Tensor]:
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


def build_teacher(cfg: TeacherConfig, data: Dataset) -> Teacher:
    return Teacher(data.image_shape, len(data.labels), width=cfg.width, hidden=cfg.hidden, dropout=cfg.dropout)


def build_student(cfg: StudentConfig, data: Dataset) -> Student:
    return Student(data.image_shape, len(data.labels), hidden=tuple(cfg.hidden))


def teacher_key(cfg: PipelineConfig, data: Dataset) -> str:
    return digest(
        {"data": to_dict(cfg.data), "fingerprint": data.fingerprint, "teacher": to_dict(cfg.teacher) | {"name": ""}}
    )


def train_teacher(cfg: PipelineConfig, data: Dataset, out_dir: Path) -> Path:
    """Train (or resume) the teacher; returns the path of its final weights. Checkpoints every epoch."""
    tc, key = cfg.teacher, teacher_key(cfg, data)
    if read_meta(out_dir).get("key") == key and (out_dir / WEIGHTS).is_file():
        return out_dir / WEIGHTS
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    torch.manual_seed(tc.seed)
    model = build_teacher(tc, data)
    memory = torch.channels_last if tc.channels_last else torch.contiguous_format
    set_memory_format(model, memory)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    total_steps = tc.epochs * math.ceil(len(data.train_x) / tc.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=total_steps)
    parts: dict[str, Any] = {"model": model, "optimizer": opt, "scheduler": sched}
    state = _resume(out_dir / CHECKPOINT, key, parts)
    dtype = autocast_dtype(tc.precision)
    print(
        f"teacher: {sum(p.numel() for p in model.parameters()):,} params, {'bf16 autocast' if dtype else 'fp32'}, "
        f"channels_last={tc.channels_last}, {len(data.train_x):,} images, epochs {state['epoch'] + 1}-{tc.epochs}"
    )
    start = time.perf_counter()
    for epoch in range(state["epoch"], tc.epochs):
        torch.manual_seed(tc.seed * 1000 + epoch)  # dropout; resuming repeats the same epoch
        gen = torch.Generator().manual_seed(tc.seed * 1000 + epoch)
        loss = _teacher_epoch(model, opt, sched, data, tc, gen, dtype, memory, desc=f"teacher {epoch + 1}/{tc.epochs}")
        val = accuracy(model, data.val_x, data.val_y)
        state["history"].append({"epoch": epoch + 1, "loss": loss, "val_accuracy": val})
        if val > state["best_val"]:
            state["best_val"], state["best"] = val, {k: v.clone() for k, v in model.state_dict().items()}
        state["epoch"] = epoch + 1
        tqdm.write(f"teacher epoch {epoch + 1}: val accuracy {val:.4f} (best {state['best_val']:.4f})")
        _save_checkpoint(out_dir / CHECKPOINT, state, parts)
    torch.save(state["best"], out_dir / WEIGHTS)
    write_meta(out_dir, {"key": key, "val_accuracy": state["best_val"], "history": state["history"]})
    print(
        f"teacher: best val accuracy {state['best_val']:.4f}, trained in {time.perf_counter() - start:.0f} s "
        f"-> {out_dir / WEIGHTS}"
    )
    return out_dir / WEIGHTS


def _teacher_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    data: Dataset,
    tc: TeacherConfig,
    gen: torch.Generator,
    dtype: torch.dtype | None,
    memory: torch.memory_format,
    *,
    desc: str,
) -> float:
    """One pass over the training split; returns the last batch's loss."""
    model.train()
    loss = torch.zeros(())
    bar = tqdm(list(batches(len(data.train_x), tc.batch_size, gen)), desc=desc)
    for idx in bar:
        x = augment(data.train_x[idx], gen) if tc.augment else data.train_x[idx]  # (B, C, H, W)
        with _autocast(dtype):
            loss = F.cross_entropy(model(x.contiguous(memory_format=memory)), data.train_y[idx])
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return float(loss.item())


def _resume(path: Path, key: str, parts: dict[str, Any]) -> dict[str, Any]:
    """Load model/optimizer/scheduler state from an epoch checkpoint of the same run, else start fresh."""
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_val": -1.0, "best": None, "key": key}
    if not path.is_file():
        return state
    saved = torch.load(path, weights_only=True)
    if saved.get("key") != key:
        return state
    for name, part in parts.items():
        part.load_state_dict(saved[name])
    print(f"teacher: resuming after epoch {saved['epoch']} from {path}")
    return {k: saved[k] for k in state}


def _save_checkpoint(path: Path, state: dict[str, Any], parts: dict[str, Any]) -> None:
    """Atomic (temp file + rename) so an interruption never leaves half a checkpoint."""
    torch.save({**state, **{name: part.state_dict() for name, part in parts.items()}}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    model.load_state_dict(torch.load(path, weights_only=True))
    return set_memory_format(model, torch.contiguous_format).eval()


@dataclass(frozen=True)
class StudentResult:
    method: str
    seed: int
    weights: Path
    val_accuracy: float
    test_accuracy: float  # PyTorch, for the seed comparison; the served number is measured on the ONNX model


def train_student(
    cfg: StudentConfig,
    data: Dataset,
    views: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    method: str,
    seed: int,
    logits_key: str,
    out_dir: Path,
    progress: bool = True,
) -> StudentResult:
    """Train a student on (images, labels, teacher logits) views; method `kd` or `none` (label-only)."""
    done = trained_student(cfg, method=method, seed=seed, logits_key=logits_key, out_dir=out_dir)
    if done is not None:
        return done
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        key = _student_key(cfg, method, seed, logits_key)
        return _fit_student(cfg, data, views, method=method, seed=seed, key=key, out_dir=out_dir, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _student_key(cfg: StudentConfig, method: str, seed: int, logits_key: str) -> str:
    student = to_dict(cfg) | {"name": "", "control_name": "", "seeds": 0}
    return digest({"student": student, "method": method, "seed": seed, "logits": logits_key})


def trained_student(
    cfg: StudentConfig, *, method: str, seed: int, logits_key: str, out_dir: Path
) -> StudentResult | None:
    """The student in `out_dir` if it was trained from exactly these settings and teacher logits."""
    meta = read_meta(out_dir)
    if meta.get("key") != _student_key(cfg, method, seed, logits_key) or not (out_dir / WEIGHTS).is_file():
        return None
    return StudentResult(method, seed, out_dir / WEIGHTS, meta["val_accuracy"], meta["test_accuracy"])


def _fit_student(
    cfg: StudentConfig,
    data: Dataset,
    views: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    method: str,
    seed: int,
    key: str,
    out_dir: Path,
    progress: bool,
) -> StudentResult:
    x, y, teacher_logits = views  # (N, C, H, W), (N,), (N, K)
    kd_weight = cfg.kd_weight if method == "kd" else 0.0
    torch.manual_seed(seed)  # same init and same batch order for both methods
    model = build_student(cfg, data)
    gen = torch.Generator().manual_seed(seed)
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    best_val, best, history = -1.0, model.state_dict(), []
    bar = tqdm(range(cfg.epochs), desc=f"student {method} seed {seed}", disable=not progress)
    for epoch in bar:
        model.train()
        for idx in batches(len(x), cfg.batch_size, gen):
            xb = augment(x[idx], gen, flip=False, max_shift=cfg.shift) if cfg.shift else x[idx]  # (B, C, H, W)
            loss = distillation_loss(
                model(xb), teacher_logits[idx], y[idx], temperature=cfg.temperature, kd_weight=kd_weight
            )
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            opt.step()
            sched.step()
        val = accuracy(model, data.val_x, data.val_y)
        history.append({"epoch": epoch + 1, "val_accuracy": val})
        if val > best_val:
            best_val, best = val, {k: v.clone() for k, v in model.state_dict().items()}
        bar.set_postfix(val=f"{val:.4f}", best=f"{best_val:.4f}")
    model.load_state_dict(best)
    test = accuracy(model, data.test_x, data.test_y)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(best, out_dir / WEIGHTS)
    write_meta(out_dir, {"key": key, "val_accuracy": best_val, "test_accuracy": test, "history": history})
    save_config(cfg, out_dir / "config.yaml")
    return StudentResult(method, seed, out_dir / WEIGHTS, best_val, test)
