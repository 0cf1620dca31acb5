"""Training on several processes with torchrun: the process group, the ranks, and what they exchange.

`torchrun --nproc-per-node N -m distill_training teacher ...` starts N copies of the CLI with RANK, WORLD_SIZE
and a rendezvous in their environment; `start` joins them into one process group (gloo for the CPU tensors the
nets train with; NCCL for CUDA tensors where CUDA is present). Rank 0 (`World.main`) reads and writes the run
directory, decides what depends on the clock or the disk, and sends it to the others (`broadcast`), so the
ranks never disagree and the other nodes need no shared disk. Without torchrun the world is one process and
every helper is the identity.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import DistributedSampler

from distill_training.loop import batches, predict

T = TypeVar("T")
# How long a rank waits for the others at a collective: rank 0 plans (measures this machine) and exports the
# teacher while the others wait for it, a minute or two on 2 cores; a rank that hangs longer fails the job.
COLLECTIVE_TIMEOUT = timedelta(minutes=15)
RESUME_HINT = "run the same command again to resume from the last checkpoint"


@dataclass(frozen=True)
class World:
    """This process's place among the ranks: `rank` of `size`, `local_size` of them on this machine."""

    rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def launched() -> bool:
    """Started by torchrun with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> World:
    """The world of the process group this process is in; one process where there is none (or no more)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    return World(dist.get_rank(), dist.get_world_size(), local)


def start() -> World:
    """Join the process group torchrun's environment describes (a no-op without torchrun)."""
    if not launched() or dist.is_initialized():
        return current()
    # The nets train on CPU, whose tensors gloo carries; where CUDA is present, CUDA tensors would go by NCCL.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return current()


def stop() -> None:
    """Leave the process group: what this process does next involves no other rank."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(world: World, value: T | None) -> T:
    """Rank 0's `value`, on every rank (the others pass None)."""
    if not world.distributed:
        return value  # type: ignore[return-value]
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def from_main(world: World, compute: Callable[[], T]) -> T:
    """`compute()` run on rank 0 only, its result sent to every rank."""
    return broadcast(world, compute() if world.main else None)


def gather(world: World, value: T) -> list[T]:
    """Every rank's `value`, in rank order, on rank 0 (an empty list on the others)."""
    if not world.distributed:
        return [value]
    out: list[T] | None = [value] * world.size if world.main else None
    dist.gather_object(value, out, dst=0)
    return out or []


def share(world: World, n: int) -> int:
    """How many of n items each rank takes (the sampler pads the last share to this)."""
    return math.ceil(n / world.size)


def epoch_batches(
    world: World, n: int, batch_size: int, gen: torch.Generator, *, seed: int, epoch: int
) -> list[torch.Tensor]:
    """This rank's index batches of one epoch. One process shuffles with `gen` (as it always did); several
    take their shares of one shuffle seeded by `seed` and `epoch`, the same on every rank (torch's
    `DistributedSampler`: disjoint shares, padded to equal length so that every rank takes as many steps)."""
    if not world.distributed:
        return list(batches(n, batch_size, gen))
    rows = cast("TorchDataset[int]", range(n))
    sampler: DistributedSampler[int] = DistributedSampler(
        rows, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return list(torch.split(torch.tensor(list(sampler), dtype=torch.int64), batch_size))


def rows_of(world: World, n: int) -> torch.Tensor:
    """This rank's contiguous block of n rows (blocks in rank order concatenate back to 0..n-1)."""
    return torch.tensor_split(torch.arange(n), world.size)[world.rank]


def wrap(world: World, model: nn.Module) -> nn.Module:
    """The model as the training loop calls it: under DistributedDataParallel where there are several ranks
    (which averages the gradients over the ranks in every backward pass)."""
    if not world.distributed:
        return model
    return nn.parallel.DistributedDataParallel(model)


def sync_buffers(world: World, model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank: each rank's last forward pass updated its
    own, from its own batch."""
    if world.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def shared_accuracy(world: World, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy on (x, y), each rank scoring its block of the rows; the same figure on every rank."""
    rows = rows_of(world, len(x))
    correct = torch.tensor([float((predict(model, x[rows]).argmax(1) == y[rows]).sum())], dtype=torch.float64)
    dist.all_reduce(correct)
    return float(correct.item()) / len(x)


def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's state (parameters and buffers), to check that the ranks ended alike."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def peer_lost(err: BaseException) -> str:
    """The message for a collective that failed: a rank died, hung or could not be reached."""
    cause = str(err).splitlines()[0].split(". This is typically")[0]  # gloo's first sentence says what broke
    return f"rank {os.environ.get('RANK', '?')}: lost contact with another rank ({cause}); {RESUME_HINT}"


def peer_failure(err: BaseException) -> bool:
    """A collective that failed because another rank is gone: torch's DistError, or gloo's RuntimeError (which
    names gloo's transport, e.g. "Connection closed by peer")."""
    return launched() and (isinstance(err, dist.DistError) or "gloo" in str(err))


def describe(world: World) -> str:
    return f"rank {world.rank} of {world.size}" if world.distributed else "one process"


def ranks_agree(digests: list[str]) -> None:
    """Raise where the ranks' final weights differ (DistributedDataParallel keeps them identical)."""
    if len(set(digests)) > 1:
        raise RuntimeError(f"the ranks ended with different weights: {digests}")
