"""torch.distributed set-up from torchrun's environment (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun described in the environment (no-op for one process).

    ``device``: ``auto`` takes GPU ``LOCAL_RANK`` when CUDA is available, else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device)
    if world_size > 1 and not dist.is_initialized():
        warn_if_restarts_can_hang()
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            device_id=dev if dev.type == "cuda" else None,
        )
    return DistInfo(rank, world_size, local_rank, dev)


def warn_if_restarts_can_hang() -> None:
    """Warn when torchrun may restart this worker group while the workers share its store.

    torchrun's c10d rendezvous store, shared with the workers by default, outlives a worker
    group: a restarted group can read a dead worker's gloo/NCCL address left there and wait on
    it for the whole process-group timeout (pytorch/pytorch#135712). With
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` in torchrun's environment (``run.sh`` sets it) each
    restart gets a fresh store.
    """
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if shared and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0:
        logging.warning(
            "torchrun --max-restarts with its rendezvous store shared by the workers: a "
            "restarted worker group can wait on a dead worker's address until the process-group "
            "timeout; start torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment "
            "(run.sh does)"
        )


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (identity for one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def all_reduce_sum_by_name(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """Sum scalar tensors over ranks by name; return the sums as floats.

    Every rank packs its values in the sorted order of their names, so a value always meets the
    values of the same name on the other ranks, whatever order each rank made its dict in. A rank
    with other names (a metric only some ranks log) raises a RuntimeError on every rank, naming
    its names, instead of summing unlike values or hanging on tensors of unequal size.
    """
    names = sorted(sums)
    packed = torch.stack([sums[k].double().reshape(()) for k in names])
    if dist.is_initialized() and dist.get_world_size() > 1:
        # count and CRC-32 of the names: < 2^32 each, so their sum over ranks is exact in float64
        own = torch.tensor(
            [len(names), zlib.crc32("\0".join(names).encode())],
            dtype=torch.float64,
            device=packed.device,
        )
        total = all_reduce_sum(own.clone())
        if not torch.equal(total, own * dist.get_world_size()):
            raise RuntimeError(
                f"rank {dist.get_rank()}: the ranks log different metrics (this rank: "
                f"{', '.join(names)}); every rank must report the same names each update"
            )
    all_reduce_sum(packed)
    return dict(zip(names, packed.tolist(), strict=True))


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself for one process); picklable."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    return obj


def all_gather_object(obj):
    """Objects of every rank, in rank order (``[obj]`` for one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]
