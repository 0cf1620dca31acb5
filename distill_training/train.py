"""The training loops: the teacher (checkpointed every epoch, resumable) and a student (any `losses.LOSSES` method).

Both read top to bottom: seed, data, net, loop, evaluate, keep the best epoch on the validation split, save.
What they share (optimizer, schedule, best-epoch tracking) is `loop.Fit`.
Weights are saved as state dicts with torch.save and loaded with torch.load(weights_only=True).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from distill_training import distributed
from distill_training.config import DataConfig, StudentConfig, TeacherConfig, lookup, save_config, to_dict
from distill_training.data import Dataset
from distill_training.distributed import SINGLE, World
from distill_training.loop import Fit, accuracy, batches
from distill_training.losses import ALL_VIEWS, LOSSES, StudentLoss
from distill_training.nets import STUDENTS, TEACHERS, count_parameters, set_memory_format
from distill_training.staleness import digest, read_meta, write_meta
from distill_training.views import FIXED_VIEWS, augment

if TYPE_CHECKING:
    from distill_training.logits_cache import Views

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


def autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def build_teacher(cfg: TeacherConfig, data: Dataset) -> nn.Module:
    """The net `cfg.architecture` names in `nets.TEACHERS`, sized for the data."""
    return lookup(TEACHERS, cfg.architecture, "teacher.architecture")(cfg, data.image_shape, len(data.labels))


def build_student(cfg: StudentConfig, data: Dataset) -> nn.Module:
    """The net `cfg.architecture` names in `nets.STUDENTS`, sized for the data."""
    return lookup(STUDENTS, cfg.architecture, "student.architecture")(cfg, data.image_shape, len(data.labels))


def teacher_key(tc: TeacherConfig, data_cfg: DataConfig, data: Dataset) -> str:
    """What a teacher's weights depend on: its recipe (not its name, the ensemble it joins or the budget's floor)
    and the data."""
    recipe = to_dict(tc) | {"name": "", "members": [], "min_epochs": 0}
    return digest({"data": to_dict(data_cfg), "fingerprint": data.fingerprint, "teacher": recipe})


def trained_teacher(tc: TeacherConfig, data_cfg: DataConfig, data: Dataset, out_dir: Path) -> Path | None:
    """The teacher's weights in `out_dir` if they were trained from exactly this recipe and data."""
    if read_meta(out_dir).get("key") == teacher_key(tc, data_cfg, data) and (out_dir / WEIGHTS).is_file():
        return out_dir / WEIGHTS
    return None


def train_teacher(
    tc: TeacherConfig,
    data_cfg: DataConfig,
    data: Dataset,
    out_dir: Path,
    *,
    progress: bool = True,
    deadline: float | None = None,
    world: World = SINGLE,
) -> Path:
    """Train (or resume) one teacher; returns the path of its final weights. Checkpoints every epoch. With a
    `deadline` (wall-clock `time.time()`), the run is fitted to it after every epoch (`_keep_to`).

    With several ranks (`world`, under torchrun) every rank trains the one model under DistributedDataParallel
    on its share of each epoch's shuffle, each taking `batch_size / ranks` images a step (the same global batch
    and schedule as one process); rank 0 alone reads and writes `out_dir` and sends what it read."""
    done = distributed.from_main(world, lambda: trained_teacher(tc, data_cfg, data, out_dir))
    if done is not None:
        return done
    key = teacher_key(tc, data_cfg, data)
    if world.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(tc, out_dir / "config.yaml")
    torch.manual_seed(tc.seed)
    model = build_teacher(tc, data)
    memory = torch.channels_last if tc.channels_last else torch.contiguous_format
    set_memory_format(model, memory)
    batch_size = distributed.share(world, tc.batch_size)
    steps_per_epoch = math.ceil(distributed.share(world, len(data.train_x)) / batch_size)
    fit = Fit(model, lr=tc.lr, weight_decay=tc.weight_decay, epochs=tc.epochs, steps_per_epoch=steps_per_epoch)
    saved = distributed.from_main(world, lambda: _checkpoint(out_dir / CHECKPOINT, key))
    if saved is not None:
        fit.load_state_dict(saved)
    net = distributed.wrap(world, model)
    dtype = autocast_dtype(tc.precision)
    name = f"teacher {tc.architecture} seed {tc.seed}"
    if world.main:
        print(
            f"{name}: {count_parameters(model):,} params, {torch.get_num_threads()} thread(s), "
            f"{'bf16 autocast' if dtype else 'fp32'}, channels_last={tc.channels_last}, {len(data.train_x):,} "
            f"images, epochs {fit.epochs_done + 1}-{tc.epochs}, {distributed.describe(world)}"
        )
    start, first = time.perf_counter(), fit.epochs_done
    while fit.epochs_done < fit.epochs:
        epoch = fit.epochs_done
        seed = (tc.seed * 1000 + epoch) * world.size + world.rank  # one process: the seeds it always had
        torch.manual_seed(seed)  # dropout; resuming repeats the same epoch
        gen = torch.Generator().manual_seed(seed)
        bar = tqdm(
            distributed.epoch_batches(world, len(data.train_x), batch_size, gen, seed=tc.seed * 1000, epoch=epoch),
            desc=f"{name}, epoch {epoch + 1}/{fit.epochs}",
            disable=not (progress and world.main),
        )
        loss = _teacher_epoch(fit, net, tc, data, bar, gen, dtype, memory)
        distributed.sync_buffers(world, model)
        val = (
            distributed.shared_accuracy(world, model, data.val_x, data.val_y)
            if world.distributed
            else accuracy(model, data.val_x, data.val_y)
        )
        fit.end_epoch(val, loss=loss)
        if world.main:
            tqdm.write(f"{name}, epoch {epoch + 1}/{fit.epochs}: val accuracy {val:.4f} (best {fit.best_val:.4f})")
        if deadline is not None:
            _keep_to_on_main(world, fit, deadline, (time.perf_counter() - start) / (fit.epochs_done - first), tc)
        if world.main:
            _save_checkpoint(out_dir / CHECKPOINT, {**fit.state_dict(), "key": key})
    return _finish(world, fit, out_dir, key, tc, f"{name}: trained in {time.perf_counter() - start:.0f} s")


def _keep_to_on_main(world: World, fit: Fit, deadline: float, epoch_s: float, tc: TeacherConfig) -> None:
    """`_keep_to` decided on rank 0 (the ranks' clocks and paces differ) and followed by every rank."""
    if world.main:
        _keep_to(fit, deadline, epoch_s, tc, f"teacher {tc.architecture} seed {tc.seed}")
    epochs = distributed.broadcast(world, fit.epochs if world.main else None)
    if epochs != fit.epochs:
        fit.replan(epochs)


def _finish(world: World, fit: Fit, out_dir: Path, key: str, tc: TeacherConfig, summary: str) -> Path:
    """Check that the ranks ended alike; rank 0 saves the best epoch's weights and the run's record."""
    digests = distributed.gather(world, distributed.weights_digest(fit.model))
    if world.main:
        distributed.ranks_agree(digests)
        torch.save(fit.best_weights(), out_dir / WEIGHTS)
        meta = {"key": key, "val_accuracy": fit.best_val, "epochs": fit.epochs, "planned_epochs": tc.epochs}
        ranks = {"ranks": world.size, "steps_per_epoch": fit.steps_per_epoch, "rank_digests": digests}
        write_meta(out_dir, meta | {"history": fit.history} | ({"distributed": ranks} if world.distributed else {}))
        print(f"{summary}, best val accuracy {fit.best_val:.4f} -> {out_dir / WEIGHTS}")
    return out_dir / WEIGHTS


def _teacher_epoch(
    fit: Fit,
    net: nn.Module,
    tc: TeacherConfig,
    data: Dataset,
    bar: tqdm[torch.Tensor],
    gen: torch.Generator,
    dtype: torch.dtype | None,
    memory: torch.memory_format,
) -> float:
    """One pass over the training split (cross-entropy with the labels); returns the last batch's loss."""
    net.train()
    loss = torch.zeros(())
    for idx in bar:
        x = augment(data.train_x[idx], gen) if tc.augment else data.train_x[idx]  # (B, C, H, W)
        with autocast(dtype):
            loss = F.cross_entropy(net(x.contiguous(memory_format=memory)), data.train_y[idx])
        fit.step(loss)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return float(loss.item())


def _keep_to(fit: Fit, deadline: float, epoch_s: float, tc: TeacherConfig, name: str) -> None:
    """Fit the run to the epochs that still end by `deadline` at the pace measured so far, between `min_epochs`
    and the planned `epochs`: a machine that turned busy gets a shorter teacher, not an overrun budget, and gets
    the epochs back if it speeds up again."""
    fits = fit.epochs_done + math.floor((deadline - time.time()) / epoch_s)
    target = min(tc.epochs, max(tc.min_epochs, fits))
    if target != fit.epochs and target > fit.epochs_done:
        fit.replan(target)
        tqdm.write(f"{name}: {epoch_s:.0f} s per epoch against the time budget; {fit.epochs} of {tc.epochs} epochs")


def _checkpoint(path: Path, key: str) -> dict[str, Any] | None:
    """The state of an epoch checkpoint of the same run, to resume from; None to start fresh."""
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    if saved.get("key") != key:
        return None
    print(f"teacher: resuming after epoch {saved['epoch']} from {path}")
    return dict(saved)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic (temp file + rename) so an interruption never leaves half a checkpoint."""
    torch.save(state, path.with_suffix(".tmp"))
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
    seconds: float  # its training took (the comparison's plan reads the search's)


def train_student(
    cfg: StudentConfig, data: Dataset, views: Views, *, method: str, seed: int, out_dir: Path, progress: bool = True
) -> StudentResult:
    """Train a student on the teacher-scored views with the loss of `method` (`losses.LOSSES`)."""
    loss = lookup(LOSSES, method, "student method")
    done = trained_student(cfg, method=method, seed=seed, logits_key=views.key, out_dir=out_dir)
    if done is not None:
        return done
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        key = _student_key(cfg, method, seed, views.key)
        return _fit_student(
            cfg, data, views, loss, method=method, seed=seed, key=key, out_dir=out_dir, progress=progress
        )
    finally:
        torch.set_num_threads(threads)


# Settings of the search around a student, not of its training: changing them retrains nothing.
_NOT_RECIPE = {
    "name": "",
    "control_name": "",
    "candidates": [],
    "method": "",
    "methods": [],
    "seeds": 0,
    "min_epochs": 0,
}


def _student_key(cfg: StudentConfig, method: str, seed: int, logits_key: str) -> str:
    recipe = to_dict(cfg) | _NOT_RECIPE
    return digest({"student": recipe, "method": method, "seed": seed, "logits": logits_key})


def trained_student(
    cfg: StudentConfig, *, method: str, seed: int, logits_key: str, out_dir: Path
) -> StudentResult | None:
    """The student in `out_dir` if it was trained from exactly these settings and teacher logits."""
    meta = read_meta(out_dir)
    if meta.get("key") != _student_key(cfg, method, seed, logits_key) or not (out_dir / WEIGHTS).is_file():
        return None
    return StudentResult(
        method, seed, out_dir / WEIGHTS, meta["val_accuracy"], meta["test_accuracy"], meta.get("seconds", 0.0)
    )


def _student_epoch(
    fit: Fit, views: Views, loss: StudentLoss, cfg: StudentConfig, method: str, gen: torch.Generator
) -> None:
    """One pass over the training images, each in one of its method's views, drawn at random."""
    fit.model.train()
    shown = views.views.count if method in ALL_VIEWS else FIXED_VIEWS  # (teacher-scored) views it may see
    for idx in batches(len(views.x), cfg.batch_size, gen):
        view = torch.randint(0, shown, (len(idx),), generator=gen)
        xb = views.views.render(views.x, view, idx).contiguous(memory_format=torch.channels_last)  # (B, C, H, W)
        fit.step(loss(fit.model(xb), views.logits[view, idx], views.y[idx], cfg))


def _fit_student(
    cfg: StudentConfig,
    data: Dataset,
    views: Views,
    loss: StudentLoss,
    *,
    method: str,
    seed: int,
    key: str,
    out_dir: Path,
    progress: bool,
) -> StudentResult:
    start = time.perf_counter()
    torch.manual_seed(seed)  # same init and same batch order for every method
    model = set_memory_format(build_student(cfg, data), torch.channels_last)  # faster convolutions on CPU
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(views.x) / cfg.batch_size)
    fit = Fit(model, lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch)
    bar = tqdm(range(cfg.epochs), desc=f"student {cfg.architecture} {method} seed {seed}", disable=not progress)
    for _ in bar:
        _student_epoch(fit, views, loss, cfg, method, gen)
        val = accuracy(model, data.val_x, data.val_y)
        fit.end_epoch(val)
        bar.set_postfix(val=f"{val:.4f}", best=f"{fit.best_val:.4f}")
    best = fit.best_weights()
    model.load_state_dict(best)
    test = accuracy(model, data.test_x, data.test_y)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(best, out_dir / WEIGHTS)
    seconds = time.perf_counter() - start
    meta = {"key": key, "val_accuracy": fit.best_val, "test_accuracy": test, "seconds": seconds}
    write_meta(out_dir, meta | {"history": fit.history})
    save_config(cfg, out_dir / "config.yaml")
    return StudentResult(method, seed, out_dir / WEIGHTS, fit.best_val, test, seconds)
