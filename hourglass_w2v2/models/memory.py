"""How much memory a forward pass keeps for backward: the measure behind activation
checkpointing's tests and ``benchmarks/encoder_speed.py``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def saved_activation_bytes(fn: Callable[[], object], module: nn.Module) -> int:
    """Bytes of the distinct tensor storages autograd saves for backward while ``fn()`` runs,
    ``module``'s parameters excluded (activations only).

    Counted through ``torch.autograd.graph.saved_tensors_hooks``, so it works on any device;
    a storage saved by several operations (a view, a shared input) counts once. Tensors saved
    inside an activation-checkpointed region are not kept, hence not counted.
    """
    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
