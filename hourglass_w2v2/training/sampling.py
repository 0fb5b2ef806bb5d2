"""Deals one global stream of batches to ranks and accumulation steps.

Every process iterates the same lhotse sampler (one process's view, so it only reads cut
metadata) and each update takes the next ``num_shards = world_size x accum_grad`` batches:
rank ``r`` gets shards ``r*accum .. r*accum+accum-1``. Since ``num_shards`` is fixed by the
global batch and ``max_duration`` alone, 8 GPUs x accumulation 1 and 1 GPU x accumulation 8
see exactly the same batches in the same updates.

Training from Lhotse Shar shards (:class:`ShardedBatchSampler`) keeps that dealing, but each
rank's batches come from its own shards, so there they depend on the number of ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from lhotse import CutSet
from lhotse.dataset.sampling.base import CutSampler

from hourglass_w2v2.data.datasets import ShardStreams, ShardTicket


class UpdateBatchSampler:
    """Yields this rank's micro-batches (``CutSet`` each), ``accum_grad`` per update.

    ``set_epoch(epoch, skip_steps)`` starts an epoch, skipping the first ``skip_steps``
    updates' worth of batches (exact resume mid-epoch). A trailing partial update at the end
    of an epoch is dropped on every rank alike, so all ranks do the same number of updates.
    """

    def __init__(
        self,
        sampler: CutSampler | ShardedBatchSampler,
        world_size: int,
        rank: int,
        accum_grad: int,
    ) -> None:
        if isinstance(sampler, ShardedBatchSampler):  # it lays out tickets for this dealing
            sampler.deal(world_size, accum_grad)
        self.sampler = sampler
        self.world_size, self.rank, self.accum_grad = world_size, rank, accum_grad
        self.num_shards = world_size * accum_grad
        self.skip_steps = 0

    def set_epoch(self, epoch: int, skip_steps: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip_steps = skip_steps

    def __iter__(self) -> Iterator[CutSet]:
        it = iter(self.sampler)
        first = self.rank * self.accum_grad
        step = 0
        while True:
            group = []
            for _ in range(self.num_shards):
                try:
                    group.append(next(it))
                except StopIteration:
                    return
            if step >= self.skip_steps:
                yield from group[first : first + self.accum_grad]
            step += 1


class ShardedBatchSampler:
    """The global stream of :class:`ShardTicket` s for training from Lhotse Shar shards.

    Each epoch the shards are put in an order drawn from ``(seed, epoch)`` (``shuffle``) and
    dealt out: rank ``r`` of ``world_size`` takes every ``world_size``-th shard from ``r``, and
    splits them the same way into ``streams_per_rank`` streams (one per DataLoader worker), so
    each rank and worker reads its own shards front to back. Rank position ``i`` of an epoch is
    batch ``i // streams_per_rank`` of stream ``i % streams_per_rank``, which the DataLoader's
    round-robin hands to the same worker every time. Every process counts every stream's
    batches from the shards' metadata (as the FLAC path's sampler reads all metadata), so all
    ranks agree on the epoch's length: ``streams_per_rank x`` the shortest stream of a rank,
    the least over ranks, in whole updates; the rest of the longer streams waits for a later
    epoch's shard order. Its items are laid out as :class:`UpdateBatchSampler` deals them, so a
    resumed run skips whole updates by counting tickets, reading no audio.
    """

    def __init__(
        self, streams: ShardStreams, streams_per_rank: int, seed: int, shuffle: bool
    ) -> None:
        if streams_per_rank < 1:
            raise ValueError(f"streams_per_rank must be >= 1, got {streams_per_rank}")
        self.streams = streams
        self.streams_per_rank = streams_per_rank
        self.seed, self.shuffle = seed, shuffle
        self.world_size, self.accum_grad = 1, 1
        self.epoch = 0
        self.dropped_batches = 0  # in the last epoch planned: batches beyond the equal length

    def deal(self, world_size: int, accum_grad: int) -> None:
        """Set how many ranks share the stream and batches each takes per update."""
        streams = world_size * self.streams_per_rank
        if streams > len(self.streams.shards):
            raise ValueError(
                f"data.shar_dir has {len(self.streams.shards)} shards, fewer than the "
                f"{world_size} rank(s) x {self.streams_per_rank} DataLoader worker(s) that "
                "each read their own: write smaller shards (prepare.sh --shar-shard-size) or "
                "lower data.num_workers"
            )
        self.world_size, self.accum_grad = world_size, accum_grad

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rank_streams(self, epoch: int) -> list[list[tuple[int, ...]]]:
        """``[rank][stream]``: the shard indices each stream of each rank reads in ``epoch``."""
        order = self.streams.shard_order(epoch, self.seed, self.shuffle)
        k = self.streams_per_rank
        return [
            [tuple(order[r::self.world_size][w::k]) for w in range(k)]
            for r in range(self.world_size)
        ]

    def __iter__(self) -> Iterator[ShardTicket]:
        plan = self.rank_streams(self.epoch)
        k, accum = self.streams_per_rank, self.accum_grad
        lengths = [[self.streams.count_batches(self.epoch, s) for s in rank] for rank in plan]
        updates = min(k * min(rank) for rank in lengths) // accum
        self.dropped_batches = sum(map(sum, lengths)) - updates * accum * self.world_size
        if self.dropped_batches:
            logging.info(
                "epoch %d: %d updates from %d shards; %d batches beyond the shortest "
                "stream wait for a later epoch's shard order",
                self.epoch, updates, len(self.streams.shards), self.dropped_batches,
            )
        for u in range(updates):
            for rank in plan:
                for a in range(accum):
                    i = u * accum + a
                    yield ShardTicket(self.epoch, rank[i % k], i // k)
