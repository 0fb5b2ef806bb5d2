"""Deals one global stream of batches to ranks and accumulation steps.

Every process iterates the same lhotse sampler (one process's view, so it only reads cut
metadata) and each update takes the next ``num_shards = world_size x accum_grad`` batches:
rank ``r`` gets shards ``r*accum .. r*accum+accum-1``. Since ``num_shards`` is fixed by the
global batch and ``max_duration`` alone, 8 GPUs x accumulation 1 and 1 GPU x accumulation 8
see exactly the same batches in the same updates.
"""

from __future__ import annotations

from collections.abc import Iterator

from lhotse import CutSet
from lhotse.dataset.sampling.base import CutSampler


class UpdateBatchSampler:
    """Yields this rank's micro-batches (``CutSet`` each), ``accum_grad`` per update.

    ``set_epoch(epoch, skip_steps)`` starts an epoch, skipping the first ``skip_steps``
    updates' worth of batches (exact resume mid-epoch). A trailing partial update at the end
    of an epoch is dropped on every rank alike, so all ranks do the same number of updates.
    """

    def __init__(self, sampler: CutSampler, world_size: int, rank: int, accum_grad: int) -> None:
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
