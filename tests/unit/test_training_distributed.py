"""The torchrun helpers that need no process group: each rank's share of an epoch (torch's DistributedSampler
over one seeded shuffle), the blocks the logits are split into, and one process's world, where every helper
leaves things as they were without torchrun."""

from __future__ import annotations

import pytest
import torch

from distill_training import distributed
from distill_training.distributed import SINGLE, World
from distill_training.loop import batches


def shares(n: int, ranks: int, epoch: int, batch_size: int = 8) -> list[torch.Tensor]:
    worlds = [World(rank, ranks, ranks) for rank in range(ranks)]
    gen = torch.Generator().manual_seed(0)
    return [torch.cat(distributed.epoch_batches(w, n, batch_size, gen, seed=7, epoch=epoch)) for w in worlds]


def test_the_ranks_share_one_shuffle_disjointly_padded_to_equal_steps() -> None:
    first, second = shares(101, 2, epoch=0)
    assert len(first) == len(second) == distributed.share(World(0, 2), 101) == 51  # one row repeated as padding
    assert set(first.tolist()) | set(second.tolist()) == set(range(101))
    assert len(set(first.tolist()) & set(second.tolist())) <= 1
    assert first.tolist() != sorted(first.tolist())  # shuffled


def test_the_shuffle_is_seeded_and_changes_every_epoch() -> None:
    assert [s.tolist() for s in shares(64, 2, epoch=3)] == [s.tolist() for s in shares(64, 2, epoch=3)]
    assert shares(64, 2, epoch=3)[0].tolist() != shares(64, 2, epoch=4)[0].tolist()


def test_one_process_keeps_the_batches_it_always_had() -> None:
    mine = distributed.epoch_batches(SINGLE, 50, 16, torch.Generator().manual_seed(5), seed=7, epoch=0)
    before = list(batches(50, 16, torch.Generator().manual_seed(5)))
    assert [b.tolist() for b in mine] == [b.tolist() for b in before]


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_the_logit_blocks_concatenate_back_to_every_row_in_order(ranks: int) -> None:
    blocks = [distributed.rows_of(World(rank, ranks), 10) for rank in range(ranks)]
    assert torch.cat(blocks).tolist() == list(range(10))


def test_one_process_world_exchanges_nothing() -> None:
    assert not SINGLE.distributed and SINGLE.main and distributed.current() == SINGLE
    assert distributed.broadcast(SINGLE, {"a": 1}) == {"a": 1}
    assert distributed.gather(SINGLE, "x") == ["x"]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(SINGLE, model) is model


def test_ranks_that_ended_apart_are_an_error() -> None:
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    distributed.ranks_agree([distributed.weights_digest(a)] * 2)
    with pytest.raises(RuntimeError, match="different weights"):
        distributed.ranks_agree([distributed.weights_digest(a), distributed.weights_digest(b)])
